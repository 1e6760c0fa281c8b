// Package procview runs LXCFS for the server, so that /proc files read
// inside runc sandboxes (meminfo, cpuinfo, stat, uptime, ...) report the
// reader's own cgroup limits instead of the host's.
//
// runc sandboxes share the host kernel, whose /proc describes the whole
// machine; agents size their work from free, nproc and /proc/meminfo.
// gVisor (runsc) needs none of this: its kernel has its own /proc.
//
// LXCFS outlives the server on purpose: sandboxes keep running across a
// server restart and their bind mounts point at this one FUSE connection,
// which dies with the daemon. The next server adopts the daemon it finds.
package procview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ErrNoLXCFS is returned when the lxcfs binary is not installed.
var ErrNoLXCFS = errors.New("procview: lxcfs is not installed (apt-get install lxcfs)")

// Files are the LXCFS files bound over the sandbox's own, relative to the
// LXCFS mount and to the sandbox's root. runc allows binds over exactly
// these /proc files. loadavg stays the host's: LXCFS would walk every
// cgroup each second to compute it.
var Files = []string{
	"proc/cpuinfo",
	"proc/diskstats",
	"proc/meminfo",
	"proc/stat",
	"proc/swaps",
	"proc/uptime",
	"sys/devices/system/cpu/online",
}

const (
	fuseMagic     = 0x65735546
	startTimeout  = 10 * time.Second
	watchInterval = 5 * time.Second
	maxLogBytes   = 1 << 20
)

// Config says where the view lives.
type Config struct {
	// Dir holds the mount point, pid file and log: Dir/mnt, Dir/lxcfs.pid,
	// Dir/lxcfs.log. Each server keeps its own (on tmpfs, so a reboot,
	// which ends every sandbox, also ends the view).
	Dir string
	// Binary is lxcfs's path; default looked up on PATH.
	Binary string
	// Cgroup names the cgroup the daemon runs in, at the top of the cpu
	// hierarchy, with CPUQuota: sandboxes' reads are served on the host,
	// outside their own limits, so a sandbox reading /proc/meminfo in a
	// loop must not get the host's CPUs through it. "" uses Dir's name.
	Cgroup string
	// CPUQuota is the daemon's CPU share in CPUs; default DefaultCPUQuota.
	CPUQuota float64
}

// DefaultCPUQuota bounds LXCFS to half a CPU: ample for the reads of
// thousands of sandboxes, and all that a read flood can take.
const DefaultCPUQuota = 0.5

// Mount is one file to bind read-only into a sandbox.
type Mount struct {
	Source      string // on the host, under the LXCFS mount
	Destination string // absolute, inside the sandbox
}

// View is a running LXCFS daemon serving Dir/mnt.
type View struct {
	cfg Config
	bin string
	log *slog.Logger

	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	done    chan struct{}
}

// Start adopts the LXCFS daemon already serving cfg.Dir (left by an earlier
// server) or starts one, and watches it: a daemon that dies is restarted
// and the event logged. Sandboxes started before such a restart read
// "Transport endpoint is not connected" from the bound files until they
// end: a FUSE connection cannot be handed over.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*View, error) {
	if log == nil {
		log = slog.Default()
	}
	bin := cfg.Binary
	if bin == "" {
		p, err := exec.LookPath("lxcfs")
		if err != nil {
			return nil, ErrNoLXCFS
		}
		bin = p
	}
	if err := os.MkdirAll(filepath.Join(cfg.Dir, "mnt"), 0o755); err != nil {
		return nil, fmt.Errorf("procview: %w", err)
	}
	if cfg.Cgroup == "" {
		cfg.Cgroup = "airlock-lxcfs-" + filepath.Base(filepath.Dir(filepath.Clean(cfg.Dir)))
	}
	if cfg.CPUQuota <= 0 {
		cfg.CPUQuota = DefaultCPUQuota
	}
	v := &View{cfg: cfg, bin: bin, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if err := v.ensure(ctx); err != nil {
		return nil, err
	}
	go v.watch()
	return v, nil
}

func (v *View) mnt() string     { return filepath.Join(v.cfg.Dir, "mnt") }
func (v *View) pidFile() string { return filepath.Join(v.cfg.Dir, "lxcfs.pid") }
func (v *View) logFile() string { return filepath.Join(v.cfg.Dir, "lxcfs.log") }

// Mounts lists the binds a sandbox needs.
func (v *View) Mounts() []Mount {
	ms := make([]Mount, len(Files))
	for i, f := range Files {
		ms[i] = Mount{Source: filepath.Join(v.mnt(), f), Destination: "/" + f}
	}
	return ms
}

// Healthy reports whether the daemon answers.
func (v *View) Healthy() bool { return v.serving() == nil }

// serving checks the mount is LXCFS's and answers a read.
func (v *View) serving() error {
	var st unix.Statfs_t
	if err := unix.Statfs(v.mnt(), &st); err != nil {
		return err
	}
	if st.Type != fuseMagic {
		return errors.New("not mounted")
	}
	_, err := os.ReadFile(filepath.Join(v.mnt(), "proc/uptime"))
	return err
}

// ensure leaves a serving daemon, starting one if needed.
func (v *View) ensure(ctx context.Context) error {
	if v.serving() == nil {
		// Adopted: (re)confine it, in case an older server started it.
		if pid := v.recordedPid(); pid > 0 {
			return v.confine(pid)
		}
		return nil
	}
	// A dead daemon leaves its mount behind (reads fail with ENOTCONN);
	// detach it so a new one can mount in its place.
	v.killRecorded()
	if err := v.detach(); err != nil {
		return err
	}
	return v.spawn(ctx)
}

func (v *View) spawn(ctx context.Context) error {
	logf, err := openCappedLog(v.logFile())
	if err != nil {
		return err
	}
	defer logf.Close()
	// --enable-cfs: cpuinfo, stat and cpu/online also follow the CPU quota,
	// not only the cpuset.
	cmd := exec.Command(v.bin, "--foreground", "--enable-cfs", "--pidfile", v.pidFile(), v.mnt())
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own session: the server's signals (Ctrl-C) do not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("procview: start lxcfs: %w", err)
	}
	if err := v.confine(cmd.Process.Pid); err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // reaps it; after the server exits, init does
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("procview: lxcfs exited at start (%v); see %s", err, v.logFile())
		case <-deadline.C:
			_ = cmd.Process.Kill()
			return fmt.Errorf("procview: lxcfs did not mount %s within %s; see %s", v.mnt(), startTimeout, v.logFile())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return ctx.Err()
		case <-tick.C:
			if v.serving() == nil {
				v.log.Debug("procview: lxcfs serving", "pid", cmd.Process.Pid, "dir", v.mnt())
				return nil
			}
		}
	}
}

// watch restarts a daemon that stopped answering.
func (v *View) watch() {
	defer close(v.done)
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	for {
		select {
		case <-v.stop:
			return
		case <-t.C:
		}
		err := v.serving()
		if err == nil {
			continue
		}
		v.log.Error("procview: lxcfs stopped answering; restarting it (runc sandboxes started before now read errors from /proc/meminfo and the like until they end)", "err", err)
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		if err := v.ensure(ctx); err != nil {
			v.log.Error("procview: restart lxcfs", "err", err)
		}
		cancel()
	}
}

// Close stops watching. When inUse reports false (no sandbox can still
// hold a bind of the view) it also stops the daemon and unmounts;
// otherwise the daemon stays for the sandboxes and the next server.
func (v *View) Close(inUse func() bool) error {
	v.mu.Lock()
	if v.stopped {
		v.mu.Unlock()
		return nil
	}
	v.stopped = true
	v.mu.Unlock()
	close(v.stop)
	<-v.done
	if inUse != nil && inUse() {
		v.log.Info("procview: lxcfs keeps serving the sandboxes left running", "dir", v.mnt())
		return nil
	}
	v.killRecorded()
	if err := v.detach(); err != nil {
		return err
	}
	_ = os.Remove(v.pidFile())
	if dir := v.cgroupDir(); dir != "" {
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("procview: remove cgroup: %w", err)
		}
	}
	return nil
}

// cgroupDir is the daemon's cgroup in the cpu hierarchy (v1's cpu
// controller, else the unified one), "" when neither has one.
func (v *View) cgroupDir() string {
	for _, root := range []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup"} {
		if _, err := os.Stat(filepath.Join(root, "cpu.cfs_quota_us")); err == nil {
			return filepath.Join(root, v.cfg.Cgroup)
		}
		if _, err := os.Stat(filepath.Join(root, "cgroup.subtree_control")); err == nil {
			if ctl, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control")); slices.Contains(strings.Fields(string(ctl)), "cpu") {
				return filepath.Join(root, v.cfg.Cgroup)
			}
		}
	}
	return ""
}

// confine moves the daemon into its CPU-limited cgroup.
func (v *View) confine(pid int) error {
	dir := v.cgroupDir()
	if dir == "" {
		return errors.New("procview: no cpu cgroup controller to bound lxcfs with")
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("procview: %w", err)
	}
	const period = 100000
	quota := int(v.cfg.CPUQuota * period)
	var err error
	if _, statErr := os.Stat(filepath.Join(dir, "cpu.cfs_quota_us")); statErr == nil {
		err = os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte(strconv.Itoa(period)), 0o644)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "cpu.cfs_quota_us"), []byte(strconv.Itoa(quota)), 0o644)
		}
	} else {
		err = os.WriteFile(filepath.Join(dir, "cpu.max"), []byte(fmt.Sprintf("%d %d", quota, period)), 0o644)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
	}
	if err != nil {
		return fmt.Errorf("procview: confine lxcfs: %w", err)
	}
	return nil
}

// detach unmounts every mount stacked on the mount point; EINVAL means
// nothing (more) is mounted there.
func (v *View) detach() error {
	for {
		err := unix.Unmount(v.mnt(), unix.MNT_DETACH)
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("procview: unmount %s: %w", v.mnt(), err)
		}
	}
}

// killRecorded stops the daemon named in the pid file, if it is lxcfs,
// and waits (briefly) for it to go.
func (v *View) killRecorded() {
	pid := v.recordedPid()
	if pid <= 0 {
		return
	}
	_ = unix.Kill(pid, unix.SIGTERM)
	for i := 0; i < 100; i++ {
		if unix.Kill(pid, 0) != nil {
			return
		}
		if st, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat")); err == nil && zombie(st) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = unix.Kill(pid, unix.SIGKILL)
}

// recordedPid is the pid in the pid file if it is a live lxcfs, else 0
// (gone, or the pid was reused).
func (v *View) recordedPid() int {
	raw, err := os.ReadFile(v.pidFile())
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || pid <= 1 {
		return 0
	}
	comm, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
	if err != nil || strings.TrimSpace(string(comm)) != "lxcfs" {
		return 0
	}
	return pid
}

func zombie(stat []byte) bool {
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] == 'Z'
}

// openCappedLog appends to the log, starting it over past maxLogBytes.
func openCappedLog(p string) (*os.File, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_APPEND
	if fi, err := os.Stat(p); err == nil && fi.Size() > maxLogBytes {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(p, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("procview: %w", err)
	}
	return f, nil
}
