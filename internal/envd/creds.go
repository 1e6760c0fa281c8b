package envd

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// errCannotSwitchUser is returned when envd lacks the privilege to act as
// another user (it normally runs as root inside the sandbox).
var errCannotSwitchUser = errors.New("cannot act as another user")

// runAs runs fn with the filesystem credentials of u, so the kernel applies
// u's permissions to every path lookup and new files and directories are
// owned by u without a separate chown.
//
// Linux credentials are per thread and x/sys/unix issues setfsuid, setfsgid
// and setgroups as raw syscalls on the calling thread only, so fn runs on a
// locked OS thread whose fsuid/fsgid/groups are switched and restored
// afterwards. If restoring fails the thread stays locked and the Go runtime
// discards it when the goroutine exits, so it can never serve other work with
// the wrong identity. fn must not hand file work to other goroutines.
func runAs(u *User, fn func() error) error {
	euid, egid := os.Geteuid(), os.Getegid()
	if int(u.UID) == euid && (euid != 0 || u.GID == uint32(egid)) {
		// Already this user (root keeps its own groups): nothing to switch.
		return fn()
	}
	if euid != 0 {
		return fmt.Errorf("%w %q: envd is not running as root", errCannotSwitchUser, u.Name)
	}

	runtime.LockOSThread()
	groups, err := unix.Getgroups()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("getgroups: %w", err)
	}
	if err := switchCreds(u); err != nil {
		if restoreCreds(euid, egid, groups) == nil {
			runtime.UnlockOSThread()
		}
		return err
	}
	defer func() {
		if err := restoreCreds(euid, egid, groups); err != nil {
			return // leave the thread locked: the runtime will kill it
		}
		runtime.UnlockOSThread()
	}()
	return fn()
}

// fsidsMissing reports, once, whether the kernel lacks setfsuid/setfsgid:
// gVisor does not implement them, so there the thread's effective IDs are
// switched instead (saved IDs stay root, so they can be switched back).
var fsidsMissing = sync.OnceValue(func() bool {
	return errors.Is(unix.Setfsgid(os.Getegid()), unix.ENOSYS)
})

// setresThread changes IDs of the calling thread only: x/sys's Setresuid
// applies to every thread of the process, which must not happen here.
func setresThread(nr uintptr, id int) error {
	keep := ^uintptr(0) // -1: leave real and saved IDs alone
	if _, _, errno := unix.RawSyscall(nr, keep, uintptr(id), keep); errno != 0 {
		return errno
	}
	return nil
}

func switchCreds(u *User) error {
	if fsidsMissing() {
		return switchEffective(u)
	}
	groups := make([]int, 0, len(u.Groups)+1)
	groups = append(groups, int(u.GID))
	for _, g := range u.Groups {
		groups = append(groups, int(g))
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups for %q: %w", u.Name, err)
	}
	if err := unix.Setfsgid(int(u.GID)); err != nil {
		return fmt.Errorf("setfsgid for %q: %w", u.Name, err)
	}
	if err := unix.Setfsuid(int(u.UID)); err != nil {
		return fmt.Errorf("setfsuid for %q: %w", u.Name, err)
	}
	// setfsuid reports failure only through its return value: read it back
	// (an invalid id changes nothing and returns the current fsuid).
	if cur, _ := unix.SetfsuidRetUid(-1); cur != int(u.UID) {
		return fmt.Errorf("%w %q: fsuid is %d", errCannotSwitchUser, u.Name, cur)
	}
	return nil
}

// switchEffective is switchCreds for kernels without setfsuid. Groups and
// gid first: once the euid is not root the thread has no capabilities.
func switchEffective(u *User) error {
	groups := make([]int, 0, len(u.Groups)+1)
	groups = append(groups, int(u.GID))
	for _, g := range u.Groups {
		groups = append(groups, int(g))
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("setgroups for %q: %w", u.Name, err)
	}
	if err := setresThread(unix.SYS_SETRESGID, int(u.GID)); err != nil {
		return fmt.Errorf("setresgid for %q: %w", u.Name, err)
	}
	if err := setresThread(unix.SYS_SETRESUID, int(u.UID)); err != nil {
		return fmt.Errorf("setresuid for %q: %w", u.Name, err)
	}
	return nil
}

func restoreCreds(uid, gid int, groups []int) error {
	if fsidsMissing() {
		// euid back to root first: that restores the capabilities needed
		// to reset the groups.
		if err := setresThread(unix.SYS_SETRESUID, uid); err != nil {
			return fmt.Errorf("restore euid: %w", err)
		}
		if err := setresThread(unix.SYS_SETRESGID, gid); err != nil {
			return fmt.Errorf("restore egid: %w", err)
		}
		if err := unix.Setgroups(groups); err != nil {
			return fmt.Errorf("restore groups: %w", err)
		}
		return nil
	}
	if err := unix.Setfsuid(uid); err != nil {
		return fmt.Errorf("restore fsuid: %w", err)
	}
	if cur, _ := unix.SetfsuidRetUid(-1); cur != uid {
		return fmt.Errorf("restore fsuid: still %d", cur)
	}
	if err := unix.Setfsgid(gid); err != nil {
		return fmt.Errorf("restore fsgid: %w", err)
	}
	if err := unix.Setgroups(groups); err != nil {
		return fmt.Errorf("restore groups: %w", err)
	}
	return nil
}
