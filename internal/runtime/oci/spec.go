package oci

import (
	"encoding/json"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/airlock-sandbox/airlock/internal/runtime"
)

// capabilities is the least-privilege set envd needs to run user processes
// as other users (setuid/setgid), own their files and signal them. Notably
// absent: NET_RAW, MKNOD, SYS_ADMIN, SYS_PTRACE, SYS_MODULE, NET_ADMIN.
var capabilities = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_AUDIT_WRITE", "CAP_SETFCAP",
}

// Paths hidden from, or read-only in, the sandbox (the same list Docker uses).
var (
	maskedPaths = []string{
		"/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
		"/sys/firmware", "/sys/devices/virtual/powercap",
	}
	readonlyPaths = []string{
		"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
		// On cgroup v1 hosts runc puts the hierarchies on a tmpfs it leaves
		// writable even when the cgroup mount is "ro".
		"/sys/fs/cgroup",
	}
)

const (
	cpuPeriod = 100_000 // µs
	// runscPidsOverhead is host tasks a gVisor sandbox needs besides the
	// guest's: sentry threads (GOMAXPROCS-bound plus blocking syscalls).
	runscPidsOverhead = 128
	oomScoreAdj       = -998 // envd is the init; it lowers its children back to 0
	defaultPath       = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// ociSpec builds config.json for a sandbox.
func (d *Driver) ociSpec(spec runtime.Spec, b bundle) *specs.Spec {
	env := append([]string(nil), spec.Env...)
	if !hasEnv(env, "PATH") {
		env = append(env, defaultPath)
	}
	oom := d.limits.oomScoreAdj
	s := &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: b.rootfs()},
		Process: &specs.Process{
			Args: spec.Args,
			Env:  env,
			Cwd:  "/",
			User: specs.User{UID: 0, GID: 0},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  capabilities,
				Effective: capabilities,
				Permitted: capabilities,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: d.limits.nofile, Soft: d.limits.nofile}},
			NoNewPrivileges: !d.setuidInside(),
			OOMScoreAdj:     &oom,
		},
		Hostname: spec.Hostname,
		Mounts:   d.mounts(spec, b),
		Linux: &specs.Linux{
			CgroupsPath:   d.cgroupsPath(spec.ID),
			Resources:     d.resources(spec.ID, spec.Resources),
			Namespaces:    d.namespaces(spec),
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			Seccomp:       d.seccomp,
		},
	}
	if d.userns != nil {
		s.Linux.UIDMappings, s.Linux.GIDMappings = d.userns.mappings(), d.userns.mappings()
		s.Linux.MaskedPaths = append(append([]string(nil), maskedPaths...), usernsMaskedPaths...)
	}
	if !d.flavor.ownKernel {
		// Pending signals and message-queue bytes are counted per user and
		// charged up the user-namespace tree to its creator, host root, whose
		// own limits they would otherwise share (96k signals, 800 KB):
		// bound each sandbox's share.
		s.Process.Rlimits = append(s.Process.Rlimits,
			specs.POSIXRlimit{Type: "RLIMIT_SIGPENDING", Hard: sandboxSigPending, Soft: sandboxSigPending},
			specs.POSIXRlimit{Type: "RLIMIT_MSGQUEUE", Hard: sandboxMsgQueue, Soft: sandboxMsgQueue})
	}
	if d.flavor.nprocLimit && spec.Resources.PidsMax > 0 {
		n := uint64(spec.Resources.PidsMax)
		s.Process.Rlimits = append(s.Process.Rlimits, specs.POSIXRlimit{Type: "RLIMIT_NPROC", Hard: n, Soft: n})
	}
	return s
}

// Per-sandbox bounds of per-user kernel counts on runc, about what a 1 GiB
// VM's kernel gives its users (E2B's sandboxes are such VMs).
const (
	sandboxSigPending = 4096
	sandboxMsgQueue   = 819200 / 8
)

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if strings.HasPrefix(kv, key+"=") {
			return true
		}
	}
	return false
}

func (d *Driver) namespaces(spec runtime.Spec) []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.NetworkNamespace, Path: spec.NetNSPath},
	}
	if d.cgroups.mode == cgroupV2 {
		ns = append(ns, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	if d.userns != nil {
		ns = append(ns, specs.LinuxNamespace{Type: specs.UserNamespace})
	}
	return ns
}

func (d *Driver) resources(id string, r runtime.Resources) *specs.LinuxResources {
	res := &specs.LinuxResources{
		// Deny every device node; the runtime adds back its safe defaults
		// (null, zero, full, random, urandom, tty, ptmx, pts).
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if r.MemoryMB > 0 {
		limit := int64(r.MemoryMB) << 20
		swap := limit // memory+swap == memory: no swap beyond the limit
		res.Memory = &specs.LinuxMemory{Limit: &limit, Swap: &swap}
	}
	if r.CPUCount > 0 {
		period := uint64(cpuPeriod)
		quota := int64(r.CPUCount) * cpuPeriod
		res.CPU = &specs.LinuxCPU{Period: &period, Quota: &quota, Cpus: d.cpus.pick(id, r.CPUCount)}
	}
	if r.PidsMax > 0 {
		limit := r.PidsMax*max(d.flavor.pidsPerTask, 1) + d.flavor.pidsOverhead
		res.Pids = &specs.LinuxPids{Limit: limit}
	}
	return res
}

func (d *Driver) mounts(spec runtime.Spec, b bundle) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
		{Destination: "/etc/hostname", Type: "bind", Source: b.hostnameFile(), Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}},
		{Destination: "/etc/hosts", Type: "bind", Source: b.hostsFile(), Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}},
	}
	if d.userns != nil {
		// A user namespace may not mount a sysfs for a network namespace
		// it does not own (ours are made by the host): bind the host's
		// read-only (recursively: a mount namespace of a user namespace
		// may not uncover what is under the host's submounts). Its
		// network entries are masked (usernsMaskedPaths) and its files
		// belong to host root, which the sandbox's root is not.
		for i := range ms {
			if ms[i].Type == "sysfs" {
				ms[i] = specs.Mount{Destination: "/sys", Type: "bind", Source: "/sys", Options: []string{"rbind", "ro", "nosuid", "noexec", "nodev"}}
			}
		}
	}
	if !d.flavor.ownKernel {
		// The host kernel's /proc describes the host: bind the view of
		// the sandbox's own limits (LXCFS) over the files it answers.
		for _, m := range d.cfg.ProcView {
			ms = append(ms, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
		}
	}
	if !d.flavor.hostOverlay {
		// Mounted on the (empty) rootfs dir before anything else, so the
		// sandbox's root exists only in its own mount namespace.
		opts, _ := b.overlayOptions(d.lowerDir(spec, b)) // validated by prepareBundle
		root := specs.Mount{Destination: "/", Type: "overlay", Source: "overlay", Options: append(strings.Split(opts, ","), "nodev")}
		ms = append([]specs.Mount{root}, ms...)
	}
	for _, m := range spec.Mounts {
		opts := []string{"rbind", "nosuid", "nodev"}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		ms = append(ms, specs.Mount{Destination: m.Destination, Type: "bind", Source: m.Source, Options: opts})
	}
	return ms
}

func marshalSpec(s *specs.Spec) ([]byte, error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("oci: marshal config.json: %w", err)
	}
	return data, nil
}
