package oci

import (
	"fmt"
	"strconv"
)

// flavor is everything that differs between the OCI runtimes the driver
// runs; the rest of the driver is the same code for all of them.
type flavor struct {
	// globalArgs go before every invocation's command.
	globalArgs []string
	// passFD returns the flags that hand the runtime's descriptor 3 to the
	// container's init as descriptor fd.
	passFD func(fd int) []string
	// hostOverlay mounts the sandbox's overlay on the host, where the
	// runtime's file server reads it; otherwise the runtime mounts it inside
	// the container's mount namespace (config.json's first mount).
	hostOverlay bool
	// killInitFirst kills the container's init and waits for it before
	// `delete --force`, which would otherwise sleep before its first look.
	killInitFirst bool
	// pidsOverhead is host tasks the runtime itself needs in the sandbox's
	// pids cgroup on top of the sandbox's own limit; pidsPerTask is host
	// tasks per guest task (1 when guest tasks are host tasks).
	pidsOverhead int64
	pidsPerTask  int64
	// nprocLimit also sets RLIMIT_NPROC to the pids limit, for runtimes that
	// count the sandbox's tasks themselves.
	nprocLimit bool
	// checkpoint says whether checkpoint/restore works.
	checkpoint bool
	// ownKernel: the runtime's own user-space kernel serves the sandbox's
	// syscalls (gVisor), so config.json's seccomp guards that kernel, not
	// the host's. Rules whose errno runsc's --oci-seccomp turns into EPERM
	// are left out: clone3's ENOSYS (EPERM makes glibc fail every thread
	// instead of falling back to clone) and the socket families, which
	// gVisor does not implement at all.
	ownKernel bool
	// diskArgs are global flags for run/restore that make the runtime
	// itself enforce a sandbox's disk limit of mb, and diskSlackMB is how
	// much larger than mb its image must be for that (nil: none).
	diskArgs    func(mb int) []string
	diskSlackMB func(mb int) int
	// tmpfsOnEmptyTmp: the runtime mounts a tmpfs of its own (memory,
	// outside the disk limit, hidden from `df /`) on /tmp when the rootfs's
	// /tmp is empty.
	tmpfsOnEmptyTmp bool
	// setuidInside lets setuid programs (sudo) raise privileges inside the
	// sandbox (no_new_privs off). Only where sandbox root is not the
	// host's root: gVisor's root is the sentry's; runc's is host uid 0
	// until sandboxes get user namespaces.
	setuidInside bool
}

var flavors = map[string]flavor{
	RuntimeRunc: {
		passFD:        func(int) []string { return []string{"--preserve-fds=1"} },
		killInitFirst: true,
		pidsPerTask:   1,
		// Checkpointing runc needs CRIU, which does not work on these kernels.
	},
	RuntimeRunsc: {
		// systrap works without KVM; sandbox networking joins the netns
		// named in config.json and serves it with gVisor's netstack.
		// --oci-seccomp makes the sentry enforce config.json's profile too.
		// --allow-suid: setuid programs (sudo) work inside, see setuidInside.
		globalArgs: []string{"--platform=systrap", "--network=sandbox", "--oci-seccomp", "--allow-suid"},
		passFD:     func(fd int) []string { return []string{"--pass-fd=3:" + strconv.Itoa(fd)} },
		// runsc's gofer serves the rootfs from the host side.
		hostOverlay: true,
		// The host cgroup also holds the sentry's own threads and one stub
		// process per guest address space; at the bare limit the sentry
		// itself fails to clone and the whole sandbox dies.
		pidsOverhead: runscPidsOverhead,
		// systrap runs each guest address space in a host stub process
		// with threads of its own: a fork bomb stopped at RLIMIT_NPROC
		// guest tasks held 2.3 host tasks per guest task (measured), and
		// at the bare limit the sentry failed to clone and died.
		pidsPerTask: 3,
		// gVisor counts tasks itself: RLIMIT_NPROC stops a fork bomb inside
		// the sentry before the host pids limit would kill the sentry.
		nprocLimit: true,
		checkpoint: true,
		ownKernel:  true,
		// The sentry keeps the rootfs's upper layer in a filestore file in
		// the host's upper dir; sized, it gives the guest ENOSPC (and a
		// true `df /`) before that file fills the sandbox's image, whose
		// slack covers the filestore's own overhead and runsc's log.
		diskArgs:    func(mb int) []string { return []string{"--overlay2=root:self,size=" + strconv.Itoa(mb) + "m"} },
		diskSlackMB: func(mb int) int { return 64 + mb/32 },
		// /tmp stays on the sandbox's disk, as on runc and on E2B.
		tmpfsOnEmptyTmp: true,
		// E2B users run `sudo apt-get install` as the default user.
		setuidInside: true,
	},
}

func flavorOf(runtime string) (flavor, error) {
	f, ok := flavors[runtime]
	if !ok {
		return flavor{}, fmt.Errorf("oci: unknown runtime %q (want runc or runsc)", runtime)
	}
	return f, nil
}
