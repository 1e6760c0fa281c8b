package drivertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/leakcheck"
	"github.com/airlock-sandbox/airlock/internal/runtime"
)

// Options tune the suite for one driver.
type Options struct {
	// NewDriver returns a driver; calling it twice must give two instances
	// over the same host state (that is how a server restart is simulated).
	NewDriver func(t *testing.T) runtime.Driver
	// Rootfs is the template rootfs; it needs busybox (see BusyboxRootfs).
	Rootfs string
	// Leak says which host resources must be back to their prior state
	// after each scenario. Zero value: leakcheck.DefaultOptions().
	Leak *leakcheck.Options
	// StateDir is where the driver keeps its bundles, for checks of what a
	// sandbox costs the host.
	StateDir string
	// ProcView says /proc/meminfo inside shows the sandbox's memory limit
	// (runsc always; runc with LXCFS binds, see oci.Config.ProcView).
	ProcView bool
}

// Run runs every scenario against the driver with default leak checks.
func Run(t *testing.T, newDriver func(t *testing.T) runtime.Driver, rootfs string) {
	RunWithOptions(t, Options{NewDriver: newDriver, Rootfs: rootfs})
}

// RunWithOptions runs every scenario against the driver.
func RunWithOptions(t *testing.T, o Options) {
	if o.Leak == nil {
		def := leakcheck.DefaultOptions()
		o.Leak = &def
	}
	s := &suite{o: o}
	for _, sc := range []struct {
		name string
		fn   func(t *testing.T, h *harness)
	}{
		{"Lifecycle", testLifecycle},
		{"KillUnknown", testKillUnknown},
		{"ReadyFile", testReadyFile},
		{"MemoryLimit", testMemoryLimit},
		{"PidsLimit", testPidsLimit},
		{"MachineView", testMachineView},
		{"DiskLimit", testDiskLimit},
		{"LeastPrivilege", testLeastPrivilege},
		{"CrashedInit", testCrashedInit},
		{"RestartRecovery", testRestartRecovery},
		{"PauseResume", testPauseResume},
		{"CheckpointRestore", testCheckpointRestore},
	} {
		t.Run(sc.name, func(t *testing.T) {
			before := leakcheck.MustSnapshot(t, *o.Leak)
			h := s.harness(t)
			t.Cleanup(func() {
				h.killAll()
				leakcheck.Check(t, before)
			})
			sc.fn(t, h)
		})
	}
}

type suite struct {
	o   Options
	seq atomic.Int64
}

// harness is one scenario's driver, output dir and sandboxes.
type harness struct {
	t   *testing.T
	s   *suite
	d   runtime.Driver
	out string // host dir bind-mounted at /out in every sandbox
	ids []string
}

func (s *suite) harness(t *testing.T) *harness {
	out := t.TempDir()
	// 0777, and its parent passable: in a user namespace sandbox root is
	// an unprivileged host user.
	if err := os.Chmod(out, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(out), 0o711); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, s: s, d: s.o.NewDriver(t), out: out}
}

func (h *harness) newID() string {
	return fmt.Sprintf("dt%d%d", os.Getpid(), h.s.seq.Add(1))
}

// spec runs a shell script as the init process with /out bind-mounted.
func (h *harness) spec(script string) runtime.Spec {
	return runtime.Spec{
		ID:        h.newID(),
		RootfsDir: h.s.o.Rootfs,
		Args:      []string{"/bin/sh", "-c", script},
		Env:       []string{"HOME=/root"},
		Hostname:  "sandbox",
		Mounts:    []runtime.Mount{{Source: h.out, Destination: "/out"}},
		Resources: runtime.Resources{CPUCount: 1, MemoryMB: 128, PidsMax: 64},
		Labels:    map[string]string{"suite": "drivertest"},
	}
}

func (h *harness) create(spec runtime.Spec) runtime.Info {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := h.d.Create(ctx, spec)
	if err != nil {
		h.t.Fatalf("Create(%s): %v", spec.ID, err)
	}
	h.ids = append(h.ids, spec.ID)
	return info
}

// killAll removes whatever a failed scenario left behind.
func (h *harness) killAll() {
	for _, id := range h.ids {
		err := h.d.Kill(context.Background(), id)
		if err != nil && !errors.Is(err, runtime.ErrNotFound) {
			h.t.Errorf("cleanup Kill(%s): %v", id, err)
		}
	}
}

func (h *harness) kill(id string) {
	h.t.Helper()
	if err := h.d.Kill(context.Background(), id); err != nil {
		h.t.Fatalf("Kill(%s): %v", id, err)
	}
}

// waitFile waits until /out/name exists and is non-empty and returns it.
func (h *harness) waitFile(name string, timeout time.Duration) string {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		data, err := os.ReadFile(filepath.Join(h.out, name))
		if err == nil && strings.HasSuffix(string(data), "\n") {
			return strings.TrimSpace(string(data))
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %v waiting for /out/%s (err %v, content %q); sandboxes: %s", timeout, name, err, data, h.describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// describe reports every sandbox's state, for failure messages.
func (h *harness) describe() string {
	var parts []string
	for _, id := range h.ids {
		info, err := h.d.Info(context.Background(), id)
		parts = append(parts, fmt.Sprintf("%s: %s pid %d err %v", id, info.State, info.PID, err))
	}
	return strings.Join(parts, "; ")
}

func (h *harness) info(id string) runtime.Info {
	h.t.Helper()
	info, err := h.d.Info(context.Background(), id)
	if err != nil {
		h.t.Fatalf("Info(%s): %v", id, err)
	}
	return info
}

func (h *harness) waitState(id string, want runtime.State, timeout time.Duration) runtime.Info {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		info := h.info(id)
		if info.State == want {
			return info
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("%s: state %q, want %q after %v", id, info.State, want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}
