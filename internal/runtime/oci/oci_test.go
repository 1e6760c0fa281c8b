package oci_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
	"github.com/airlock-sandbox/airlock/internal/leakcheck"
	"github.com/airlock-sandbox/airlock/internal/procview"
	"github.com/airlock-sandbox/airlock/internal/roottest"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/runtime/drivertest"
	"github.com/airlock-sandbox/airlock/internal/runtime/oci"
)

const runscBinary = "/usr/local/bin/runsc"

// env is one test's private driver configuration: its own state dir,
// runtime root and cgroup parent, so parallel tests of other packages
// cannot be mistaken for leaks.
type env struct {
	cfg  oci.Config
	leak leakcheck.Options
}

func newEnv(t testing.TB, rt string) env {
	t.Helper()
	roottest.Require(t, "the OCI driver tests (mounts, cgroups, runc)")
	base, err := os.MkdirTemp("", "airlock-oci-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	parent := fmt.Sprintf("airlocktest%d", os.Getpid())
	t.Cleanup(func() {
		// The per-run parent is ours alone; leakcheck already verified
		// that nothing below it is left.
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
		if d := "/sys/fs/cgroup/" + parent; dirExists(d) {
			dirs = append(dirs, d)
		}
		for _, d := range dirs {
			if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Errorf("remove cgroup parent: %v", err)
			}
		}
	})
	cfg := oci.Config{
		Runtime:      rt,
		StateDir:     filepath.Join(base, "state"),
		RuntimeRoot:  filepath.Join(base, "root"),
		CgroupParent: parent,
	}
	if rt == oci.RuntimeRunsc {
		cfg.Binary = runscBinary
	}
	return env{cfg: cfg, leak: leakcheck.Options{
		MountRoots:    []string{base},
		RootsOnly:     true, // other packages' tests run sandboxes meanwhile
		CgroupParents: []string{parent},
		ProcessArgs:   []string{base},
	}}
}

func (e env) driver(t testing.TB) *oci.Driver {
	t.Helper()
	d, err := oci.New(e.cfg, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		t.Fatalf("oci.New(%+v): %v", e.cfg, err)
	}
	return d
}

func runSuite(t *testing.T, rt string) {
	e := newEnv(t, rt)
	drivertest.RunWithOptions(t, drivertest.Options{
		NewDriver: func(t *testing.T) runtime.Driver { return e.driver(t) },
		Rootfs:    drivertest.BusyboxRootfs(t),
		Leak:      &e.leak,
		StateDir:  e.cfg.StateDir,
		ProcView:  rt == oci.RuntimeRunsc, // gVisor's own /proc
	})
}

func TestConformanceRunc(t *testing.T) { runSuite(t, oci.RuntimeRunc) }

// withProcView gives the env's runc sandboxes an LXCFS view of their
// limits, as airlock serve does, stopped when the test ends.
func withProcView(t *testing.T, e *env) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(e.cfg.StateDir), "lxcfs")
	v, err := procview.Start(context.Background(), procview.Config{Dir: dir}, nil)
	if err != nil {
		t.Fatalf("procview: %v", err)
	}
	t.Cleanup(func() {
		if err := v.Close(nil); err != nil {
			t.Errorf("procview close: %v", err)
		}
	})
	for _, m := range v.Mounts() {
		e.cfg.ProcView = append(e.cfg.ProcView, runtime.Mount{Source: m.Source, Destination: m.Destination, ReadOnly: true})
	}
}

// testUserNS is the host id range of the user-namespace tests' sandboxes.
var testUserNS = oci.IDRange{HostID: 1 << 30, Size: 65536}

// TestConformanceRuncUserns runs the suite with user namespaces.
func TestConformanceRuncUserns(t *testing.T) {
	e := newEnv(t, oci.RuntimeRunc)
	e.cfg.UserNS = &testUserNS
	// Sandbox root (an unprivileged host user) must pass the test's dirs.
	if err := os.Chmod(filepath.Dir(e.cfg.StateDir), 0o711); err != nil {
		t.Fatal(err)
	}
	withProcView(t, &e) // as airlock serve runs runc
	drivertest.RunWithOptions(t, drivertest.Options{
		NewDriver: func(t *testing.T) runtime.Driver { return e.driver(t) },
		Rootfs:    drivertest.BusyboxRootfs(t),
		Leak:      &e.leak,
		StateDir:  e.cfg.StateDir,
		ProcView:  true,
	})
}

// TestConformanceRunsc runs when AIRLOCK_TEST_RUNSC=1 (CI sets it) or when
// runsc is installed; with the variable set, a missing binary is a failure.
func TestConformanceRunsc(t *testing.T) {
	_, statErr := os.Stat(runscBinary)
	if os.Getenv("AIRLOCK_TEST_RUNSC") == "1" && statErr != nil {
		t.Fatalf("AIRLOCK_TEST_RUNSC=1 but %s is missing: %v", runscBinary, statErr)
	}
	if statErr != nil {
		t.Skipf("%s not installed and AIRLOCK_TEST_RUNSC is not 1", runscBinary)
	}
	runSuite(t, oci.RuntimeRunsc)
}

// TestRuncHostView checks what only the host can see for runc: the write
// lands in the per-sandbox upper dir, the cgroup files carry the limits,
// and Checkpoint says it is not supported.
func TestRuncHostView(t *testing.T) {
	e := newEnv(t, oci.RuntimeRunc)
	before := leakcheck.MustSnapshot(t, e.leak)
	t.Cleanup(func() { leakcheck.Check(t, before) })
	d := e.driver(t)
	rootfs := drivertest.BusyboxRootfs(t)
	ctx := context.Background()
	spec := runtime.Spec{
		ID:        "hostview",
		RootfsDir: rootfs,
		// The init floods its stdout: none of it may land in a host file.
		Args:      []string{"/bin/sh", "-c", "head -c 4000000 /dev/zero; echo ok > /tmp/x; exec sleep 1000"},
		Resources: runtime.Resources{CPUCount: 2, MemoryMB: 256, PidsMax: 100},
	}
	var phases phaseRecorder
	if _, err := d.Create(runtime.WithPhaseMarker(ctx, &phases), spec); err != nil {
		t.Fatal(err)
	}
	defer d.Kill(ctx, spec.ID)
	if !slices.Equal(phases, phaseRecorder{"rootfs"}) {
		t.Errorf("Create marked phases %q, want [rootfs]", phases)
	}

	upper := filepath.Join(e.cfg.StateDir, spec.ID, "disk", "upper", "tmp", "x")
	waitFor(t, func() bool { b, _ := os.ReadFile(upper); return string(b) == "ok\n" })
	if _, err := os.Stat(filepath.Join(rootfs, "tmp", "x")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("write reached the template: %v", err)
	}
	filepath.WalkDir(filepath.Join(e.cfg.StateDir, spec.ID), func(p string, de fs.DirEntry, err error) error {
		if fi, ierr := de.Info(); err == nil && ierr == nil && fi.Mode().IsRegular() && fi.Size() > 64<<10 {
			t.Errorf("the init's stdout grew host file %s to %d bytes", p, fi.Size())
		}
		return nil
	})
	// The overlay lives only in the container's mount namespace: host
	// mounts per sandbox would slow down every later create.
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bundle := filepath.Join(e.cfg.StateDir, spec.ID); strings.Contains(string(mi), bundle) {
		t.Errorf("host mount table has a mount under %s", bundle)
	}

	cg := "/" + e.cfg.CgroupParent + "/" + spec.ID
	files := map[string]string{
		"memory.limit_in_bytes":       fmt.Sprint(256 << 20),
		"memory.memsw.limit_in_bytes": fmt.Sprint(256 << 20),
		"cpu.cfs_quota_us":            "200000",
		"cpu.cfs_period_us":           "100000",
		"pids.max":                    "100",
	}
	if d.CgroupMode() == "v2" {
		files = map[string]string{"memory.max": fmt.Sprint(256 << 20), "memory.swap.max": "0", "cpu.max": "200000 100000", "pids.max": "100"}
	}
	for file, want := range files {
		if got := readCgroupFile(t, d.CgroupMode(), cg, file); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}

	if st, err := d.Stats(ctx, spec.ID); err != nil || st.Pids == 0 || st.Pids > 100 || st.MemoryLimit != 256<<20 || st.CPUUsageNanos == 0 {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	if d.Capabilities().Checkpoint {
		t.Error("runc claims checkpoint support")
	}
	if err := d.Checkpoint(ctx, spec.ID, t.TempDir()); !errors.Is(err, runtime.ErrNotSupported) {
		t.Errorf("Checkpoint = %v, want ErrNotSupported", err)
	}
	if err := d.Kill(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.StateDir, spec.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("bundle dir survived Kill: %v", err)
	}
}

func readCgroupFile(t *testing.T, mode, path, file string) string {
	t.Helper()
	dir := "/sys/fs/cgroup" + path
	if mode != "v2" {
		dir = "/sys/fs/cgroup/" + strings.SplitN(file, ".", 2)[0] + path
	}
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Errorf("read cgroup file: %v", err)
	}
	return strings.TrimSpace(string(b))
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

func waitFor(t *testing.T, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// phaseRecorder is a runtime.PhaseMarker that remembers the phase names.
type phaseRecorder []string

func (p *phaseRecorder) MarkPhase(name string) { *p = append(*p, name) }

// TestDiskReserve: with less free host disk than the reserve, a sandbox
// with a disk limit is refused with ErrHostDiskLow and leaves nothing.
func TestDiskReserve(t *testing.T) {
	e := newEnv(t, oci.RuntimeRunc)
	before := leakcheck.MustSnapshot(t, e.leak)
	t.Cleanup(func() { leakcheck.Check(t, before) })
	e.cfg.DiskReserveMB = 1 << 40 // a petabyte and more: never free
	d := e.driver(t)
	spec := runtime.Spec{
		ID:        "reserve",
		RootfsDir: drivertest.BusyboxRootfs(t),
		Args:      []string{"/bin/sh", "-c", "exec sleep 1000"},
		Resources: runtime.Resources{CPUCount: 1, MemoryMB: 64, PidsMax: 16, DiskMB: 64},
	}
	_, err := d.Create(context.Background(), spec)
	if !errors.Is(err, runtime.ErrHostDiskLow) || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Create with the host below its reserve = %v, want ErrHostDiskLow (unavailable)", err)
	}
	if _, err := os.Stat(filepath.Join(e.cfg.StateDir, spec.ID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refused create left its bundle: %v", err)
	}
	if low, err := d.HostDiskLow(); !low || err != nil {
		t.Errorf("HostDiskLow = %v, %v; want true below the reserve", low, err)
	}
	e.cfg.DiskReserveMB = 1 // a MiB is always free here
	if low, err := e.driver(t).HostDiskLow(); low || err != nil {
		t.Errorf("HostDiskLow with a 1 MiB reserve = %v, %v; want false", low, err)
	}
	spec.Resources.DiskMB = 0 // no disk of its own: nothing to reserve for
	if _, err := d.Create(context.Background(), spec); err != nil {
		t.Fatalf("Create without a disk limit: %v", err)
	}
	if err := d.Kill(context.Background(), spec.ID); err != nil {
		t.Fatal(err)
	}
}

// TestRuncUsernsLimits: a sandbox's user namespace has per-user limits of
// its own (set from the host right after start), so it cannot use up host
// root's, and its root cannot raise them.
func TestRuncUsernsLimits(t *testing.T) {
	e := newEnv(t, oci.RuntimeRunc)
	e.cfg.UserNS = &testUserNS
	if err := os.Chmod(filepath.Dir(e.cfg.StateDir), 0o711); err != nil {
		t.Fatal(err)
	}
	before := leakcheck.MustSnapshot(t, e.leak)
	t.Cleanup(func() { leakcheck.Check(t, before) })
	d := e.driver(t)
	out := t.TempDir()
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(out), 0o711); err != nil {
		t.Fatal(err)
	}
	f := "/proc/sys/user/max_inotify_instances"
	script := `while [ "$(cat ` + f + `)" = 2147483647 ]; do sleep 0.05; done; cat ` + f + ` > /out/v.tmp
echo 100000 > ` + f + ` 2>/dev/null && echo raised >> /out/v.tmp; mv /out/v.tmp /out/v; exec sleep 1000`
	spec := runtime.Spec{
		ID: "limits", RootfsDir: drivertest.BusyboxRootfs(t),
		Args:      []string{"/bin/sh", "-c", script},
		Mounts:    []runtime.Mount{{Source: out, Destination: "/out"}},
		Resources: runtime.Resources{CPUCount: 1, MemoryMB: 64, PidsMax: 16},
	}
	ctx := context.Background()
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	defer d.Kill(ctx, spec.ID)
	var got []byte
	waitFor(t, func() bool { got, _ = os.ReadFile(filepath.Join(out, "v")); return len(got) > 0 })
	if string(got) != "128\n" {
		t.Errorf("inside the sandbox %s = %q, want 128 and not raisable", f, got)
	}
	if host, _ := os.ReadFile("/proc/sys/fs/inotify/max_user_instances"); strings.TrimSpace(string(host)) == "128" {
		t.Error("the host's own inotify instance limit is still 128: sandboxes' 128 each would use it up")
	}
	if err := d.Kill(ctx, spec.ID); err != nil {
		t.Fatal(err)
	}
}
