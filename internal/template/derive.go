package template

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// ErrInvalidName means a template name cannot be used as an alias.
var ErrInvalidName = errors.New("invalid template name")

// ErrStepFailed means one of a derived template's --run commands failed.
var ErrStepFailed = errors.New("build step failed")

// StepError is a build step that exited non-zero; it is ErrStepFailed.
type StepError struct {
	Index    int // 0-based
	Cmd      string
	ExitCode int
}

func (e *StepError) Error() string {
	return fmt.Sprintf("%v: step %d (%s): exit status %d", ErrStepFailed, e.Index+1, e.Cmd, e.ExitCode)
}

func (e *StepError) Unwrap() error { return ErrStepFailed }

// DeriveOptions says how to derive a template from an existing one.
type DeriveOptions struct {
	Name string   // alias of the new template; an existing template of that name is replaced
	From string   // ID or alias of the ready template to start from
	Run  []string // shell commands run in order, as root, inside the copy
	// StartCmd is the new template's start command; nil keeps From's.
	StartCmd *string
	CPUCount int // 0 keeps From's
	MemoryMB int // 0 keeps From's
	// TeamID owns the new template ("" is store.DefaultTeamID); only that
	// team sees it unless Public.
	TeamID string
	Public bool
	// Runtime is the runtime its sandboxes use unless a create names one:
	// "runc" or "runsc"; "" keeps From's ("" there = the server's default).
	Runtime string
	// FromTree, if set, is started from instead of From: a tree that is no
	// template (an image flattened by internal/ociimage).
	FromTree *store.Template
	// Lend are host files the build sandbox sees read-only.
	Lend []Lend
}

// namePattern is what a derived template may be called: an alias usable in
// a URL path and a hostname-like label, and never mistaken for a path.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Derive builds a template from a copy of a ready template's rootfs with
// opts.Run executed inside it, and records it ready under opts.Name.
// Rebuilding an existing name keeps its ID and swaps in a new rootfs; the
// old tree is removed once no sandbox uses it. Progress, and each command's
// output, go to progress. On failure nothing is recorded or left on disk.
func (m *Manager) Derive(ctx context.Context, opts DeriveOptions, progress io.Writer) (*store.Template, error) {
	if !namePattern.MatchString(opts.Name) {
		return nil, fmt.Errorf("%w %q: use lowercase letters, digits, '.', '_' and '-' (at most 63)", ErrInvalidName, opts.Name)
	}
	if !slices.Contains([]string{"", "runc", "runsc"}, opts.Runtime) {
		return nil, fmt.Errorf("%w: runtime %q (want runc or runsc)", ErrInvalidName, opts.Runtime)
	}
	if err := os.MkdirAll(m.templatesDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create templates dir: %w", err)
	}
	if progress == nil {
		progress = io.Discard
	}
	// The lock keeps a starting server's removeStale off our build dir.
	unlock, err := m.lockTemplates(progress)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if opts.TeamID == "" {
		opts.TeamID = store.DefaultTeamID
	}
	from := opts.FromTree
	if from == nil {
		if from, err = m.Resolve(ctx, opts.From); err != nil {
			return nil, err
		}
	}
	if from.TeamID != "" && from.TeamID != opts.TeamID && !from.Public {
		return nil, fmt.Errorf("template %q: %w", opts.From, ErrNotFound)
	}
	if !isDir(from.RootfsDir) {
		return nil, fmt.Errorf("template %q: rootfs %s is missing", opts.From, from.RootfsDir)
	}

	rec, err := m.derivedRecord(ctx, opts, from)
	if err != nil {
		return nil, err
	}
	fill := func(ctx context.Context, dir string, rep *reporter) error {
		return m.fillDerived(ctx, from, opts.Run, opts.Lend, rec.Runtime, dir, rep)
	}
	if err := m.build(ctx, rec, progress, fill); err != nil {
		_ = os.Remove(filepath.Dir(rec.RootfsDir)) // only if empty: a new template's dir
		return nil, err
	}
	if err := m.put(ctx, rec, StatusReady); err != nil {
		if rerr := removeTree(rec.RootfsDir); rerr != nil {
			m.log.Error("remove unrecorded template rootfs", "dir", rec.RootfsDir, "err", rerr)
		}
		_ = os.Remove(filepath.Dir(rec.RootfsDir))
		return nil, err
	}
	m.pruneOldRootfs(filepath.Dir(rec.RootfsDir), rec.RootfsDir)
	return rec, nil
}

// derivedRecord returns the record the new template will have: the existing
// one of that name with a new rootfs, or a new one with a fresh ID.
func (m *Manager) derivedRecord(ctx context.Context, opts DeriveOptions, from *store.Template) (*store.Template, error) {
	now := time.Now().UTC()
	rec := &store.Template{
		Aliases:    []string{opts.Name},
		CPUCount:   from.CPUCount,
		MemoryMB:   from.MemoryMB,
		DiskSizeMB: from.DiskSizeMB,
		StartCmd:   from.StartCmd,
		ReadyCmd:   from.ReadyCmd,
		User:       from.User,
		Workdir:    from.Workdir,
		Envs:       from.Envs,
		Runtime:    from.Runtime,
		TeamID:     opts.TeamID,
		Public:     opts.Public,
		CreatedAt:  now,
	}
	old, err := m.st.GetTemplate(ctx, opts.Name)
	switch {
	case err == nil:
		if old.ID == stableID(BaseAlias) || old.ID == stableID(CodeInterpreterAlias) || old.TeamID == "" {
			return nil, fmt.Errorf("%w %q: it is a built-in template", ErrInvalidName, opts.Name)
		}
		if old.TeamID != opts.TeamID {
			return nil, fmt.Errorf("%w %q: another team has a template of that name", ErrInvalidName, opts.Name)
		}
		rec.ID, rec.Aliases, rec.CreatedAt = old.ID, old.Aliases, old.CreatedAt
		rec.SpawnCount, rec.LastSpawnAt = old.SpawnCount, old.LastSpawnAt
	case errors.Is(err, store.ErrNotFound):
		if rec.ID, err = newID(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("get template %q: %w", opts.Name, err)
	}
	if opts.StartCmd != nil {
		rec.StartCmd = *opts.StartCmd
	}
	if opts.Runtime != "" {
		rec.Runtime = opts.Runtime
	}
	if opts.CPUCount > 0 {
		rec.CPUCount = opts.CPUCount
	}
	if opts.MemoryMB > 0 {
		rec.MemoryMB = opts.MemoryMB
	}
	build, err := newID()
	if err != nil {
		return nil, err
	}
	// A new directory per build: sandboxes on the old tree keep it.
	rec.RootfsDir = m.rootfsDir(rec.ID, "d-"+build[:8])
	return rec, nil
}

// fillDerived copies from's rootfs into dir and runs the steps in it.
func (m *Manager) fillDerived(ctx context.Context, from *store.Template, steps []string, lend []Lend, runtimeName, dir string, rep *reporter) error {
	out := &lineWriter{fn: func(line string) {
		m.log.Debug("build output", "template", rep.name, "line", line)
		rep.Println("  " + line)
	}}
	err := m.fillSteps(ctx, from, dir, rep, StepRequest{
		Steps: steps, Runtime: runtimeName, Lend: lend,
		CPUCount: from.CPUCount, MemoryMB: from.MemoryMB, DiskMB: from.DiskSizeMB,
		Output: out,
	}, buildHolder(), func(i int) { rep.Println(fmt.Sprintf("$ %s", steps[i])) })
	out.Flush()
	if err != nil && len(steps) > 0 {
		return fmt.Errorf("%w (last output: %s)", err, out.Tail())
	}
	return err
}

// fillSteps copies from's rootfs into dir and, if req has steps, runs them
// in a build sandbox on from's tree (leased by holder meanwhile) and applies
// its changes to dir. req's Lower, Step and Apply are set here; announce is
// called before each step.
func (m *Manager) fillSteps(ctx context.Context, from *store.Template, dir string, rep *reporter, req StepRequest, holder string, announce func(i int)) error {
	const copyEnd, stepsEnd = 20, 95
	copyPhase := "copy " + from.ID
	if len(from.Aliases) > 0 {
		copyPhase = "copy " + from.Aliases[0]
	}
	rep.Update(copyPhase, 0)
	err := copyTree(ctx, from.RootfsDir, dir, func(frac float64) {
		rep.Update(copyPhase, int(min(max(frac, 0), 1)*copyEnd))
	})
	if err != nil {
		return err
	}
	if n := len(req.Steps); n > 0 {
		if m.cfg.Steps == nil {
			return ErrNoStepRunner
		}
		// The build sandbox runs on the source's tree: a rebuild or delete
		// of the source meanwhile must retire it, not remove it.
		if m.checkRootfs(from.RootfsDir) == nil {
			if err := m.Lease(from.RootfsDir, holder); err != nil {
				return err
			}
			defer func() {
				if err := m.Release(holder); err != nil {
					m.log.Warn("release the build's lease", "err", err)
				}
			}()
		}
		out := req.Output
		req.Lower = from.RootfsDir
		req.Step = func(i int) {
			if f, ok := out.(interface{ Flush() }); ok {
				f.Flush()
			}
			rep.Update(fmt.Sprintf("run %d/%d", i+1, n), copyEnd+i*(stepsEnd-copyEnd)/n)
			if announce != nil {
				announce(i)
			}
		}
		req.Apply = func(upper string, idBase uint32) error {
			rep.Update("apply changes", stepsEnd)
			return applyLayer(upper, dir, idBase)
		}
		if err := m.cfg.Steps.RunSteps(ctx, req); err != nil {
			return err
		}
	}
	rep.Update("finalize", stepsEnd)
	return cleanCaches(dir)
}

// StepRunner runs a derived template's build steps in a sandbox: never on
// the host. The sandbox starts from Lower (read-only) and keeps its
// changes in a layer, which Apply turns into the new tree.
type StepRunner interface {
	RunSteps(ctx context.Context, req StepRequest) error
}

// StepRequest is one build's steps and where their changes go.
type StepRequest struct {
	Lower   string   // the source template's tree
	Steps   []string // run in order with /bin/sh -c, as root
	Runtime string   // "runc", "runsc" or "" (the runner's default)
	// CPUCount, MemoryMB and DiskMB bound the build sandbox.
	CPUCount, MemoryMB, DiskMB int
	// Step is called before each step (0-based); Output gets its output
	// lines.
	Step   func(i int)
	Output io.Writer
	// Apply receives the finished sandbox's upper layer (see applyLayer).
	Apply func(upper string, idBase uint32) error
	// Lend are host paths mounted read-only into the build sandbox (under
	// a directory the template never keeps).
	Lend []Lend
}

// Lend is a host path a build sandbox sees read-only at Dest.
type Lend struct{ Source, Dest string }

// ErrNoStepRunner means a build has steps and nothing can run them.
var ErrNoStepRunner = errors.New("template build steps need a sandbox to run in")

// lockTemplates takes the templates lock (see ensure), saying so on
// progress when another build holds it.
func (m *Manager) lockTemplates(progress io.Writer) (func(), error) {
	path := filepath.Join(m.templatesDir(), ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		fmt.Fprintln(progress, "waiting for another template build to finish...")
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// newID returns a random 20-character [a-z0-9] ID.
func newID() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Println writes a line of build output between progress updates, moving
// the terminal bar out of its way.
func (r *reporter) Println(line string) {
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	fmt.Fprintln(r.w, strings.TrimRight(line, "\n"))
	if r.bar != nil {
		_ = r.bar.RenderBlank()
	}
}
