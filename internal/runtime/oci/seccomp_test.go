package oci

import (
	"slices"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// allowedBy reports whether some allow rule names syscall, and whether one
// does so without conditions on its arguments.
func allowedBy(sc *specs.LinuxSeccomp, syscall string) (some, unconditional bool) {
	for _, r := range sc.Syscalls {
		if r.Action == specs.ActAllow && slices.Contains(r.Names, syscall) {
			some = true
			unconditional = unconditional || len(r.Args) == 0
		}
	}
	return some, unconditional
}

func TestRuncSeccompIsAllowlist(t *testing.T) {
	sc, err := runcSeccomp(capabilities)
	if err != nil {
		t.Fatal(err)
	}
	if sc.DefaultAction != specs.ActErrno {
		t.Fatalf("default action %s, want %s (deny what is not listed)", sc.DefaultAction, specs.ActErrno)
	}
	for _, name := range append(slices.Clone(deniedSyscalls), "socketcall") {
		if some, _ := allowedBy(sc, name); some {
			t.Errorf("%s is allowed", name)
		}
	}
	// Never listed by Docker for a container without CAP_SYS_ADMIN.
	for _, name := range []string{"io_uring_setup", "keyctl", "bpf", "mount", "unshare", "setns", "init_module"} {
		if some, _ := allowedBy(sc, name); some {
			t.Errorf("%s is allowed", name)
		}
	}
	for _, name := range []string{"read", "write", "openat", "execve", "wait4", "futex", "mmap", "epoll_wait"} {
		if _, unconditional := allowedBy(sc, name); !unconditional {
			t.Errorf("%s is not allowed: ordinary programs would break", name)
		}
	}
	// socket is allowed per family only, and never for AF_VSOCK (40) or
	// AF_ALG (38); clone only without namespace flags.
	if some, unconditional := allowedBy(sc, "socket"); !some || unconditional {
		t.Errorf("socket allowed %v, unconditionally %v; want per family", some, unconditional)
	}
	for _, r := range sc.Syscalls {
		if r.Action != specs.ActAllow || !slices.Contains(r.Names, "socket") {
			continue
		}
		for _, a := range r.Args {
			for _, fam := range []uint64{38, 40} {
				if a.Index == 0 && (a.Op == specs.OpEqualTo && a.Value == fam || a.Op == specs.OpLessThan && a.Value > fam) {
					t.Errorf("socket family %d allowed by %+v", fam, a)
				}
			}
		}
	}
	if len(sc.Architectures) != 1 {
		t.Errorf("architectures %v, want the native one only (no 32-bit ABIs)", sc.Architectures)
	}
	if _, unconditional := allowedBy(sc, "clone"); unconditional {
		t.Error("clone is allowed with any flags, namespace ones included")
	}
}
