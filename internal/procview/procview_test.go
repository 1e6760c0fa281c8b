package procview

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/internal/roottest"
)

func daemonPid(t *testing.T, v *View) int {
	t.Helper()
	raw, err := os.ReadFile(v.pidFile())
	if err != nil {
		t.Fatalf("pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatalf("pid file %q: %v", raw, err)
	}
	return pid
}

func alive(pid int) bool {
	st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	return err == nil && !zombie(st)
}

// TestLifecycle: a view serves every file it lists, a second Start adopts
// the running daemon (as a restarted server must, for the sandboxes bound
// to it), a dead daemon is replaced, and Close stops it and unmounts.
func TestLifecycle(t *testing.T) {
	roottest.Require(t, "LXCFS (FUSE mounts)")
	dir := t.TempDir()
	ctx := context.Background()
	v, err := Start(ctx, Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close(nil) })
	for _, m := range v.Mounts() {
		if !strings.HasPrefix(m.Destination, "/proc/") && !strings.HasPrefix(m.Destination, "/sys/") {
			t.Errorf("mount destination %s outside /proc and /sys", m.Destination)
		}
		if data, err := os.ReadFile(m.Source); err != nil || len(data) == 0 {
			t.Errorf("read %s: %d bytes, %v", m.Source, len(data), err)
		}
	}
	first := daemonPid(t, v)
	if cg, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(first), "cgroup")); err != nil || !strings.Contains(string(cg), "/"+v.cfg.Cgroup) {
		t.Errorf("daemon's cgroups %q (%v), want its CPU-limited %s", cg, err, v.cfg.Cgroup)
	}
	if dir := v.cgroupDir(); dir == "" {
		t.Error("no cpu cgroup for the daemon")
	} else if q, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_quota_us")); err == nil && strings.TrimSpace(string(q)) != "50000" {
		t.Errorf("daemon's cpu.cfs_quota_us = %s, want 50000 (half a CPU)", q)
	}

	// A server restart: the old server leaves the daemon for its sandboxes.
	if err := v.Close(func() bool { return true }); err != nil {
		t.Fatal(err)
	}
	if !alive(first) || !v.Healthy() {
		t.Fatalf("Close with sandboxes left stopped the daemon")
	}
	v2, err := Start(ctx, Config{Dir: dir}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v2.Close(nil) })
	if got := daemonPid(t, v2); got != first {
		t.Errorf("second Start: daemon %d, want the running one (%d) adopted", got, first)
	}

	// A dead daemon leaves a dead mount; the watcher replaces both.
	if err := unix.Kill(first, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * watchInterval)
	for !v2.Healthy() || daemonPid(t, v2) == first {
		if time.Now().After(deadline) {
			t.Fatalf("daemon not replaced within %s", 3*watchInterval)
		}
		time.Sleep(100 * time.Millisecond)
	}
	second := daemonPid(t, v2)

	if err := v2.Close(func() bool { return false }); err != nil {
		t.Fatal(err)
	}
	if alive(second) {
		t.Errorf("daemon %d alive after Close with no sandboxes", second)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(v2.mnt(), &st); err != nil || st.Type == fuseMagic {
		t.Errorf("mount point after Close: statfs type %#x, err %v; want unmounted", st.Type, err)
	}
	if _, err := os.Stat(v2.cgroupDir()); !os.IsNotExist(err) {
		t.Errorf("daemon's cgroup after Close: %v, want removed", err)
	}
}

func TestMissingBinary(t *testing.T) {
	_, err := Start(context.Background(), Config{Dir: t.TempDir(), Binary: "/nonexistent/lxcfs"}, nil)
	if err == nil {
		t.Fatal("Start with a missing binary succeeded")
	}
}
