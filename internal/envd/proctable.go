package envd

import (
	"errors"
	"sync"

	rpc "github.com/airlock-sandbox/airlock/proto/process"
)

// recentLimit is how many finished processes are remembered so that a late
// Connect still gets their end event.
const recentLimit = 128

var errNoProcess = errors.New("process not found")

// procTable indexes running processes and remembers recently finished ones.
type procTable struct {
	mu      sync.Mutex
	running map[int]*proc
	recent  []*proc // oldest first
}

func newProcTable() *procTable {
	return &procTable{running: map[int]*proc{}}
}

func (t *procTable) add(p *proc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.running[p.pid] = p
}

// retire moves a finished process to the recent list.
func (t *procTable) retire(p *proc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.running[p.pid] == p {
		delete(t.running, p.pid)
	}
	t.recent = append(t.recent, p)
	if len(t.recent) > recentLimit {
		t.recent = append(t.recent[:0:0], t.recent[len(t.recent)-recentLimit:]...)
	}
}

// find resolves a selector among running processes, or, when withRecent is
// set, recently finished ones too (newest first).
func (t *procTable) find(sel *rpc.ProcessSelector, withRecent bool) (*proc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	match := func(p *proc) bool {
		switch s := sel.GetSelector().(type) {
		case *rpc.ProcessSelector_Pid:
			return p.pid == int(s.Pid)
		case *rpc.ProcessSelector_Tag:
			return p.tag != nil && *p.tag == s.Tag
		}
		return false
	}
	if s, ok := sel.GetSelector().(*rpc.ProcessSelector_Pid); ok {
		if p, ok := t.running[int(s.Pid)]; ok {
			return p, nil
		}
	} else {
		for _, p := range t.running {
			if match(p) {
				return p, nil
			}
		}
	}
	if withRecent {
		for i := len(t.recent) - 1; i >= 0; i-- {
			if match(t.recent[i]) {
				return t.recent[i], nil
			}
		}
	}
	return nil, errNoProcess
}

func (t *procTable) list() []*proc {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*proc, 0, len(t.running))
	for _, p := range t.running {
		out = append(out, p)
	}
	return out
}
