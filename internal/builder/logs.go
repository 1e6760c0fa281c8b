package builder

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// LogEntry is one line of a build's log (E2B's BuildLogEntry).
type LogEntry struct {
	Time    time.Time `json:"timestamp"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Step    string    `json:"step,omitempty"`
}

// maxLogEntries bounds one build's log; what comes after is dropped with
// a note.
const maxLogEntries = 20000

// buildLog is a running build's log: in memory for status polls, and in
// a file for after the build (and after a restart).
type buildLog struct {
	mu      sync.Mutex
	entries []LogEntry
	f       *os.File
}

func (s *Service) logPath(buildID string) string {
	return filepath.Join(s.cfg.DataDir, "build-logs", buildID+".jsonl")
}

func (s *Service) openLog(buildID string) *buildLog {
	l := &buildLog{}
	if err := os.MkdirAll(filepath.Dir(s.logPath(buildID)), 0o700); err == nil {
		f, err := os.OpenFile(s.logPath(buildID), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err == nil {
			l.f = f
		} else {
			s.log.Warn("build log file", "build", buildID, "err", err)
		}
	}
	return l
}

// logf appends to a build's log.
func (s *Service) logf(buildID, level, step, format string, args ...any) {
	s.mu.Lock()
	l := s.logs[buildID]
	s.mu.Unlock()
	if l == nil {
		return
	}
	e := LogEntry{Time: time.Now().UTC(), Level: level, Message: fmt.Sprintf(format, args...), Step: step}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch n := len(l.entries); {
	case n > maxLogEntries:
		return
	case n == maxLogEntries:
		e = LogEntry{Time: e.Time, Level: "warn", Message: fmt.Sprintf("the log is over %d lines; the rest is not kept", maxLogEntries)}
	}
	l.entries = append(l.entries, e)
	if l.f != nil {
		b, _ := json.Marshal(e)
		_, _ = l.f.Write(append(b, '\n'))
	}
}

// closeLog ends a build's log: later reads come from its file.
func (s *Service) closeLog(buildID string) {
	s.mu.Lock()
	l := s.logs[buildID]
	delete(s.logs, buildID)
	s.mu.Unlock()
	if l != nil && l.f != nil {
		l.mu.Lock()
		_ = l.f.Sync()
		_ = l.f.Close()
		l.mu.Unlock()
	}
}

// entries returns a build's log so far.
func (s *Service) entries(buildID string) []LogEntry {
	s.mu.Lock()
	l := s.logs[buildID]
	s.mu.Unlock()
	if l != nil {
		l.mu.Lock()
		defer l.mu.Unlock()
		return append([]LogEntry(nil), l.entries...)
	}
	f, err := os.Open(s.logPath(buildID))
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []LogEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() && len(out) <= maxLogEntries {
		var e LogEntry
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			out = append(out, e)
		}
	}
	return out
}

var levels = map[string]int{"debug": 0, "info": 1, "warn": 2, "error": 3}

// Status is a build's state and a page of its log.
type Status struct {
	Build   *store.TemplateBuild
	Entries []LogEntry
}

// Status returns a build's state and its log entries from offset (at
// most limit, 0 for 100), at level or above ("" for all).
func (s *Service) Status(ctx context.Context, team, templateID, buildID string, offset, limit int, level string) (*Status, error) {
	b, err := s.build(ctx, team, templateID, buildID)
	if err != nil {
		return nil, err
	}
	all := s.entries(buildID)
	if min, ok := levels[level]; ok {
		kept := all[:0:0]
		for _, e := range all {
			if levels[e.Level] >= min {
				kept = append(kept, e)
			}
		}
		all = kept
	}
	if limit <= 0 || limit > 100 {
		limit = 100
	}
	offset = max(offset, 0)
	if offset > len(all) {
		offset = len(all)
	}
	page := all[offset:min(offset+limit, len(all))]
	return &Status{Build: b, Entries: page}, nil
}
