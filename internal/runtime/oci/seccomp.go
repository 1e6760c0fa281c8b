package oci

import (
	"fmt"
	goruntime "runtime"
	"slices"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// runcSeccomp is the profile of a sandbox whose syscalls reach the host
// kernel: default deny, with Docker's maintained allowlist (moby/profiles)
// for the sandbox's capabilities, and on top of it none of deniedSyscalls
// even where Docker allows them (the clock, for one) and no socketcall,
// whose arguments seccomp cannot see (it would reopen the socket families
// the allowlist closes, AF_VSOCK and AF_ALG among them, to 32-bit code).
// Syscalls newer than the list get ENOSYS from runc, so libc falls back.
// Only the native ABI is allowed (see below).
func runcSeccomp(caps []string) (*specs.LinuxSeccomp, error) {
	sc, err := mobyseccomp.GetDefaultProfile(&specs.Spec{Process: &specs.Process{
		Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
	}})
	if err != nil {
		return nil, fmt.Errorf("oci: seccomp allowlist: %w", err)
	}
	if sc.DefaultAction == specs.ActAllow {
		return nil, fmt.Errorf("oci: seccomp allowlist allows by default")
	}
	denied := append(slices.Clone(deniedSyscalls), "socketcall")
	var rules []specs.LinuxSyscall
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow {
			r.Names = slices.DeleteFunc(slices.Clone(r.Names), func(n string) bool { return slices.Contains(denied, n) })
			if len(r.Names) == 0 {
				continue
			}
		}
		rules = append(rules, r)
	}
	sc.Syscalls = rules
	// The native ABI only: 32-bit (x86, x32) syscalls are refused outright,
	// which closes the int 0x80 route around the filter, and compiling the
	// allowlist for three ABIs cost runc 30 ms a start (measured: create +
	// kill 85-100 ms with three, 59-69 ms with one, 57-65 ms for the old
	// deny-list).
	if archs := seccompArchs(); len(archs) > 0 {
		sc.Architectures = archs[:1]
	}
	return sc, nil
}

// deniedSyscalls fail with EPERM. For runsc the profile allows by default
// and denies these; for runc the allowlist never lets them through. They
// are what lets a process reach kernel surface a sandbox has no use for:
// mounts and namespaces (escape routes), modules and kexec, bpf and perf
// (large attack surface), the kernel keyring, swap, reboot, the clock, raw
// I/O ports, io_uring (a steady source of kernel CVEs) and file-handle
// opens (the "shocker" escape).
//
// ptrace stays allowed: debuggers and strace are normal in a code sandbox,
// since Linux 4.8 seccomp is re-checked after a tracer changes a syscall so
// it cannot be used to bypass this filter, the pid namespace limits the
// targets, and without CAP_SYS_PTRACE only same-uid processes can be traced.
var deniedSyscalls = []string{
	// mounts and namespaces
	"mount", "umount", "umount2", "pivot_root",
	"move_mount", "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
	"unshare", "setns",
	// kernel code
	"kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
	"create_module", "query_module", "get_kernel_syms",
	// big attack surface
	"bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
	"lookup_dcookie", "fanotify_init", "nfsservctl", "uselib", "_sysctl", "sysfs", "ustat", "vm86", "vm86old",
	// keyring (not namespaced)
	"keyctl", "add_key", "request_key",
	// host-wide state
	"swapon", "swapoff", "reboot", "acct", "quotactl", "quotactl_fd", "syslog", "vhangup",
	"settimeofday", "stime", "clock_settime", "clock_settime64", "clock_adjtime", "clock_adjtime64", "adjtimex",
	"iopl", "ioperm",
	"open_by_handle_at",
}

// Namespace flags that clone may not carry (unshare is denied outright).
var cloneNSFlags = []uint64{
	0x00020000, // CLONE_NEWNS
	0x02000000, // CLONE_NEWCGROUP
	0x04000000, // CLONE_NEWUTS
	0x08000000, // CLONE_NEWIPC
	0x10000000, // CLONE_NEWUSER
	0x20000000, // CLONE_NEWPID
	0x40000000, // CLONE_NEWNET
}

// Socket families a sandbox never needs and whose kernel code is a
// recurring source of escapes: AF_VSOCK (host/guest sockets) and AF_ALG
// (the kernel crypto API).
var deniedSocketFamilies = []uint64{
	40, // AF_VSOCK
	38, // AF_ALG
}

// Personality bits that weaken memory protections: mapping page zero (the
// classic NULL-dereference exploit aid) and making all mappings executable.
var deniedPersonality = []uint64{
	0x0100000, // MMAP_PAGE_ZERO
	0x0400000, // READ_IMPLIES_EXEC
}

func seccompArchs() []specs.Arch {
	switch goruntime.GOARCH {
	case "amd64":
		return []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	case "arm64":
		return []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	default:
		return nil // native architecture only
	}
}

// denyListSeccomp is the profile for a runtime with its own kernel
// (gVisor): there config.json's rules guard the sentry, which implements
// syscalls in user space, so a deny-list of the dangerous ones suffices.
func denyListSeccomp(fl flavor) *specs.LinuxSeccomp {
	eperm := uint(1) // EPERM
	enosys := uint(38)
	eafnosupport := uint(97) // as a kernel without the family answers
	sc := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: seccompArchs(),
		Syscalls: []specs.LinuxSyscall{
			{Names: deniedSyscalls, Action: specs.ActErrno, ErrnoRet: &eperm},
		},
	}
	if !fl.ownKernel {
		// clone3 passes flags in a struct seccomp cannot inspect; ENOSYS
		// makes libc fall back to clone, whose flags we can check. (In
		// gVisor a namespace is the sentry's own, see flavor.ownKernel.)
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys})
	}
	for _, f := range cloneNSFlags {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"clone"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: f, ValueTwo: f, Op: specs.OpMaskedEqual}},
		})
	}
	for _, f := range deniedSocketFamilies {
		if fl.ownKernel {
			break // gVisor implements neither family; see flavor.ownKernel
		}
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"socket", "socketpair"}, Action: specs.ActErrno, ErrnoRet: &eafnosupport,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: f, Op: specs.OpEqualTo}},
		})
	}
	for _, f := range deniedPersonality {
		sc.Syscalls = append(sc.Syscalls, specs.LinuxSyscall{
			Names: []string{"personality"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: f, ValueTwo: f, Op: specs.OpMaskedEqual}},
		})
	}
	return sc
}
