// Package oci implements runtime.Driver on top of an OCI runtime binary
// (runc or gVisor's runsc): Airlock writes a bundle (config.json plus an
// overlay rootfs) and drives the binary's CLI, as containerd does.
package oci

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/airlock-sandbox/airlock/internal/diskimg"
	"github.com/airlock-sandbox/airlock/internal/runtime"
)

// Supported runtime names.
const (
	RuntimeRunc  = "runc"
	RuntimeRunsc = "runsc"
)

// ErrNoBinary means the runtime binary could not be found or does not run.
var ErrNoBinary = errors.New("oci: runtime binary not usable")

// Config selects the runtime binary and where the driver keeps its files.
type Config struct {
	Runtime      string // "runc" (default) or "runsc"
	Binary       string // path; default looked up on PATH and known locations
	StateDir     string // per-sandbox bundles: StateDir/<id>/...; default /var/lib/airlock/<runtime>
	RuntimeRoot  string // --root for the runtime; default /run/airlock/<runtime>
	CgroupParent string // default "airlock"
	// DiskCacheDir keeps one blank disk image per size, copied for each
	// sandbox with a disk limit; default StateDir + ".disks". Drivers
	// sharing a state dir may share it.
	DiskCacheDir string
	// DiskReserveMB is free space the state dir's filesystem keeps for the
	// server (its store, logs): below it no sandbox disk is made. Sandbox
	// images are sparse, so together they may promise more than is free.
	// 0 means DefaultDiskReserveMB; negative means no reserve.
	DiskReserveMB int
	// UserNS, for runc, gives every sandbox a user namespace mapping its
	// ids 0..Size-1 to host ids HostID..: sandbox root is then an
	// unprivileged host user, and setuid programs (sudo) may raise
	// privileges inside. nil: sandbox root is host root (runsc has its own).
	UserNS *IDRange
	// ProcView, for runc, are read-only binds over /proc files that show
	// the reader's own limits (LXCFS, see internal/procview). runsc's
	// kernel has its own /proc and ignores them.
	ProcView []runtime.Mount
}

// DefaultDiskReserveMB is the host disk space kept free for the server.
const DefaultDiskReserveMB = 2048

// Driver runs sandboxes as OCI containers. It keeps no state of its own
// beyond per-ID locks: everything else is rediscovered from bundle
// directories and the runtime's own state.
type Driver struct {
	cfg     Config
	flavor  flavor
	log     *slog.Logger
	cgroups cgroupLayout
	limits  hostLimits
	disks   *diskimg.Maker
	seccomp *specs.LinuxSeccomp // every sandbox's profile, built once
	userns  *userns             // nil: no user namespaces
	cpus    cpuSet              // the CPUs sandboxes' cpusets are drawn from

	mu    sync.Mutex
	locks map[string]*sync.Mutex
}

var binaryLocations = []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin", "/bin"}

// New validates the runtime binary and detects the host's cgroup layout.
func New(cfg Config, log *slog.Logger) (*Driver, error) {
	if log == nil {
		log = slog.Default()
	}
	if cfg.Runtime == "" {
		cfg.Runtime = RuntimeRunc
	}
	fl, err := flavorOf(cfg.Runtime)
	if err != nil {
		return nil, err
	}
	if cfg.CgroupParent == "" {
		cfg.CgroupParent = "airlock"
	}
	if strings.Contains(cfg.CgroupParent, "..") {
		return nil, fmt.Errorf("oci: invalid cgroup parent %q", cfg.CgroupParent)
	}
	cfg.CgroupParent = strings.Trim(cfg.CgroupParent, "/")
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join("/var/lib/airlock", cfg.Runtime)
	}
	if cfg.RuntimeRoot == "" {
		cfg.RuntimeRoot = filepath.Join("/run/airlock", cfg.Runtime)
	}
	bin, err := findBinary(cfg.Runtime, cfg.Binary)
	if err != nil {
		return nil, err
	}
	cfg.Binary = bin
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), cfg.Runtime) {
		return nil, fmt.Errorf("%w: %s --version: %v: %s", ErrNoBinary, bin, err, strings.TrimSpace(string(out)))
	}
	cg, err := detectCgroups()
	if err != nil {
		return nil, err
	}
	for _, dir := range []string{cfg.StateDir, cfg.RuntimeRoot} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("oci: %w", err)
		}
	}

	if cfg.DiskReserveMB == 0 {
		cfg.DiskReserveMB = DefaultDiskReserveMB
	}
	if cfg.DiskCacheDir == "" {
		cfg.DiskCacheDir = filepath.Clean(cfg.StateDir) + ".disks"
	}
	disks, err := diskimg.NewMaker(cfg.DiskCacheDir)
	if err != nil {
		return nil, err
	}
	sc := denyListSeccomp(fl)
	if !fl.ownKernel {
		if sc, err = runcSeccomp(capabilities); err != nil {
			return nil, err
		}
	}
	var uns *userns
	if cfg.UserNS != nil {
		if fl.ownKernel {
			return nil, fmt.Errorf("oci: user namespaces are for runc; %s isolates with its own kernel", cfg.Runtime)
		}
		if uns, err = newUserns(*cfg.UserNS); err != nil {
			return nil, err
		}
		if err := uns.checkPassable(cfg.StateDir); err != nil {
			return nil, err
		}
		if err := uns.letPass(cfg.StateDir); err != nil {
			return nil, err
		}
		raiseHostLimits(log)
	}
	limits := detectHostLimits()
	if !limits.sysResource {
		log.Warn("oci: no CAP_SYS_RESOURCE: sandbox init keeps the server's oom_score_adj and file limit",
			"oom_score_adj", limits.oomScoreAdj, "nofile", limits.nofile)
	}
	cpus, err := hostCPUs()
	if err != nil {
		return nil, err
	}
	if err := cg.prepareCpuset(cfg.CgroupParent); err != nil {
		return nil, err
	}
	log.Debug("oci driver ready", "runtime", cfg.Runtime, "binary", bin, "cgroups", cg.mode, "cpus", len(cpus))
	return &Driver{cfg: cfg, flavor: fl, log: log, cgroups: cg, limits: limits, disks: disks, seccomp: sc, userns: uns, cpus: cpus, locks: map[string]*sync.Mutex{}}, nil
}

// FindBinary locates an installed runtime the way New does.
func FindBinary(runtime string) (string, error) { return findBinary(runtime, "") }

func findBinary(name, path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("%w: %v", ErrNoBinary, err)
		}
		return path, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range binaryLocations {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("%w: %s not found on PATH or in %v", ErrNoBinary, name, binaryLocations)
}

// Name reports the runtime's name ("runc" or "runsc").
func (d *Driver) Name() string { return d.cfg.Runtime }

// Capabilities lists which optional capabilities actually work with this
// runtime, so callers need not try and fail.
type Capabilities struct {
	Pause      bool
	Checkpoint bool
}

// Capabilities reports what this driver supports. Checkpoint needs runsc:
// runc would need CRIU, which does not work on these kernels.
func (d *Driver) Capabilities() Capabilities {
	return Capabilities{Pause: true, Checkpoint: d.flavor.checkpoint}
}

// UserNamespaces reports whether sandboxes get user namespaces (runc with
// Config.UserNS), so sandbox root is not the host's.
func (d *Driver) UserNamespaces() bool { return d.userns != nil }

// setuidInside says whether setuid programs may raise privileges inside.
func (d *Driver) setuidInside() bool { return d.flavor.setuidInside || d.userns != nil }

// CgroupMode reports the detected cgroup layout: "v1", "v2" or "hybrid".
func (d *Driver) CgroupMode() string { return string(d.cgroups.mode) }

// lock serialises operations on one sandbox ID.
func (d *Driver) lock(id string) func() {
	d.mu.Lock()
	m, ok := d.locks[id]
	if !ok {
		m = &sync.Mutex{}
		d.locks[id] = m
	}
	d.mu.Unlock()
	m.Lock()
	return m.Unlock
}

func (d *Driver) forget(id string) {
	d.mu.Lock()
	delete(d.locks, id)
	d.mu.Unlock()
}

func validID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("oci: invalid sandbox id %q", id)
	}
	for i, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_')
		if !ok {
			return fmt.Errorf("oci: invalid sandbox id %q", id)
		}
	}
	return nil
}

var (
	_ runtime.Driver       = (*Driver)(nil)
	_ runtime.Pauser       = (*Driver)(nil)
	_ runtime.Checkpointer = (*Driver)(nil)
	_ runtime.HostDisk     = (*Driver)(nil)
)
