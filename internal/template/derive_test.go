package template

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/roottest"
	"github.com/airlock-sandbox/airlock/internal/runtime/drivertest"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// deriveFixture is a Manager over a temp data dir whose store holds one
// ready template, "tiny", a busybox rootfs.
type deriveFixture struct {
	m    *Manager
	st   store.Store
	from *store.Template
}

func newDeriveFixture(t *testing.T) *deriveFixture {
	t.Helper()
	roottest.Require(t, "Derive (tree copies with owners)")
	st := openStore(t)
	m := NewManager(Config{DataDir: t.TempDir(), Steps: &layerSteps{}}, st, nil)
	root := drivertest.BusyboxRootfs(t)
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=tiny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from := &store.Template{
		ID: "tinytemplate00000000", Aliases: []string{"tiny"}, RootfsDir: root, BuildStatus: StatusReady,
		CPUCount: 1, MemoryMB: 256, DiskSizeMB: 512, StartCmd: "echo from-start", CreatedAt: time.Now().UTC(),
	}
	if err := st.PutTemplate(context.Background(), from); err != nil {
		t.Fatalf("record tiny: %v", err)
	}
	return &deriveFixture{m: m, st: st, from: from}
}

// leftovers lists everything under the templates dir except the lock and
// the rootfs dirs given.
func (f *deriveFixture) leftovers(t *testing.T, keep ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(f.m.templatesDir(), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		for _, k := range keep {
			if p == k {
				return filepath.SkipDir
			}
			if strings.HasPrefix(k, p+"/") {
				return nil // a parent of a kept tree
			}
		}
		if p == f.m.templatesDir() || d.Name() == ".lock" || d.Name() == ".leases.lock" {
			return nil
		}
		out = append(out, p)
		if d.IsDir() {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return out
}

var idPattern = regexp.MustCompile(`^[a-z0-9]{20}$`)

// layerSteps stands in for a build sandbox (internal/buildbox runs real
// ones): each step "write PATH TEXT" becomes a file of the layer, "delete
// PATH" a whiteout, "say TEXT" output, "exit N" a failure.
type layerSteps struct{ requests []StepRequest }

func (l *layerSteps) RunSteps(ctx context.Context, req StepRequest) error {
	l.requests = append(l.requests, req)
	upper, err := os.MkdirTemp("", "layer-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(upper)
	for i, step := range req.Steps {
		req.Step(i)
		verb, rest, _ := strings.Cut(step, " ")
		path, text, _ := strings.Cut(rest, " ")
		switch verb {
		case "write":
			p := filepath.Join(upper, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(text+"\n"), 0o644); err != nil {
				return err
			}
		case "delete":
			p := filepath.Join(upper, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := syscall.Mknod(p, syscall.S_IFCHR, 0); err != nil {
				return err
			}
		case "say":
			fmt.Fprintln(req.Output, rest)
		case "exit":
			return fmt.Errorf("%w: step %d (%s)", ErrStepFailed, i+1, step)
		}
	}
	return req.Apply(upper, 0)
}

func TestDerive(t *testing.T) {
	f := newDeriveFixture(t)
	ctx := context.Background()
	var progress syncBuffer
	start := "python3 -m http.server"
	rec, err := f.m.Derive(ctx, DeriveOptions{
		Name:     "derived",
		From:     "tiny",
		Run:      []string{"write etc/derived derived", "say home=/root", "delete etc/os-release", "say backgrounded"},
		StartCmd: &start,
		MemoryMB: 512,
	}, &progress)
	if err != nil {
		t.Fatalf("Derive: %v\nprogress:\n%s", err, progress.String())
	}
	if !idPattern.MatchString(rec.ID) || rec.ID == f.from.ID {
		t.Errorf("ID %q: want a fresh 20-char [a-z0-9] ID", rec.ID)
	}
	got, err := f.st.GetTemplate(ctx, "derived")
	if err != nil {
		t.Fatalf("derived not recorded: %v", err)
	}
	want := store.Template{ID: rec.ID, BuildStatus: StatusReady, StartCmd: start, CPUCount: 1, MemoryMB: 512, DiskSizeMB: 512}
	if got.ID != want.ID || got.BuildStatus != want.BuildStatus || got.StartCmd != want.StartCmd ||
		got.CPUCount != want.CPUCount || got.MemoryMB != want.MemoryMB || got.DiskSizeMB != want.DiskSizeMB {
		t.Errorf("record = %+v, want %+v", got, want)
	}
	if !strings.HasPrefix(got.RootfsDir, f.m.templatesDir()+"/"+rec.ID+"/") {
		t.Errorf("rootfs %s is not under the template's dir", got.RootfsDir)
	}
	data, err := os.ReadFile(filepath.Join(got.RootfsDir, "etc/derived"))
	if err != nil || string(data) != "derived\n" {
		t.Errorf("etc/derived = %q, %v; want \"derived\\n\"", data, err)
	}
	if _, err := os.Stat(filepath.Join(f.from.RootfsDir, "etc/derived")); !os.IsNotExist(err) {
		t.Errorf("the step wrote into the source template: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(got.RootfsDir, "etc/os-release")); !os.IsNotExist(err) {
		t.Errorf("a whiteout in the layer left etc/os-release: %v", err)
	}
	// The steps' output was streamed, each step announced.
	for _, s := range []string{"$ write etc/derived derived", "home=/root", "backgrounded", "template derived:"} {
		if !strings.Contains(progress.String(), s) {
			t.Errorf("progress lacks %q:\n%s", s, progress.String())
		}
	}
	if left := f.leftovers(t, got.RootfsDir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if mps, _ := mountsUnder(got.RootfsDir); len(mps) > 0 {
		t.Errorf("mounts left in the rootfs: %v", mps)
	}

	t.Run("rebuild replaces", func(t *testing.T) {
		again, err := f.m.Derive(ctx, DeriveOptions{Name: "derived", From: "tiny", Run: []string{"write etc/derived v2"}}, nil)
		if err != nil {
			t.Fatalf("rebuild: %v", err)
		}
		if again.ID != rec.ID || again.RootfsDir == got.RootfsDir {
			t.Fatalf("rebuild: id %s rootfs %s; want id %s and a new rootfs", again.ID, again.RootfsDir, rec.ID)
		}
		if again.StartCmd != f.from.StartCmd {
			t.Errorf("StartCmd %q, want the source's %q when not given", again.StartCmd, f.from.StartCmd)
		}
		data, err := os.ReadFile(filepath.Join(again.RootfsDir, "etc/derived"))
		if err != nil || string(data) != "v2\n" {
			t.Errorf("etc/derived = %q, %v; want v2", data, err)
		}
		if _, err := os.Stat(got.RootfsDir); !os.IsNotExist(err) {
			t.Errorf("old rootfs not pruned: %v", err)
		}
		if left := f.leftovers(t, again.RootfsDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})

	t.Run("failed rebuild keeps the old template", func(t *testing.T) {
		before, err := f.st.GetTemplate(ctx, "derived")
		if err != nil {
			t.Fatal(err)
		}
		_, err = f.m.Derive(ctx, DeriveOptions{Name: "derived", From: "derived", Run: []string{"exit 7"}}, nil)
		if !errors.Is(err, ErrStepFailed) {
			t.Fatalf("err = %v, want ErrStepFailed", err)
		}
		after, err := f.st.GetTemplate(ctx, "derived")
		if err != nil || after.RootfsDir != before.RootfsDir || after.BuildStatus != StatusReady {
			t.Fatalf("after a failed rebuild: %+v, %v; want the old record %+v", after, err, before)
		}
		if left := f.leftovers(t, before.RootfsDir); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
}

func TestDeriveFailure(t *testing.T) {
	f := newDeriveFixture(t)
	ctx := context.Background()
	tests := []struct {
		name    string
		opts    DeriveOptions
		wantErr error
		wantMsg string
	}{
		{"failing step", DeriveOptions{Name: "broken", From: "tiny", Run: []string{"write etc/partial partial", "say boom-output", "exit 3"}},
			ErrStepFailed, "boom-output"},
		{"steps without a runner", DeriveOptions{Name: "norunner", From: "tiny", Run: []string{"say x"}}, ErrNoStepRunner, "sandbox"},
		{"missing source", DeriveOptions{Name: "orphan", From: "nosuch"}, ErrNotFound, "nosuch"},
		{"bad name", DeriveOptions{Name: "Bad/Name", From: "tiny"}, ErrInvalidName, "Bad/Name"},
		{"built-in name", DeriveOptions{Name: BaseAlias, From: "tiny"}, ErrInvalidName, "built-in"},
	}
	// "base" exists as a built-in record, so it may not be replaced.
	if err := f.st.PutTemplate(ctx, &store.Template{ID: stableID(BaseAlias), Aliases: []string{BaseAlias},
		RootfsDir: f.from.RootfsDir, BuildStatus: StatusReady, CreatedAt: time.Now().UTC()}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if errors.Is(tt.wantErr, ErrNoStepRunner) {
				saved := f.m.cfg.Steps
				f.m.cfg.Steps = nil
				defer func() { f.m.cfg.Steps = saved }()
			}
			rec, err := f.m.Derive(ctx, tt.opts, nil)
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("Derive = %v, %v; want %v mentioning %q", rec, err, tt.wantErr, tt.wantMsg)
			}
			if tt.opts.Name != BaseAlias {
				if _, err := f.st.GetTemplate(ctx, tt.opts.Name); !errors.Is(err, store.ErrNotFound) {
					t.Errorf("%s recorded after failure: %v", tt.opts.Name, err)
				}
			}
			if left := f.leftovers(t); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}
