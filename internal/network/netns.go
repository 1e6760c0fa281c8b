package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// newNetns creates an unnamed network namespace and runs inside() with the
// calling OS thread in it, then returns to hostNS. The namespace lives as
// long as the returned file (and, later, the sandbox's processes) hold it:
// unlike a bind mount under /run/netns it adds nothing to the host's mount
// table, which every later container start would have to copy and walk.
// It runs on a dedicated goroutine so that, should switching back fail, the
// tainted OS thread dies with it instead of serving other goroutines.
func newNetns(hostNS netns.NsHandle, inside func() error) (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	res := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		var f *os.File
		err := func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("network: unshare netns: %w", err)
			}
			var err error
			if f, err = os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())); err != nil {
				return fmt.Errorf("network: open new netns: %w", err)
			}
			return inside()
		}()
		if serr := netns.Set(hostNS); serr != nil {
			// Keep the thread locked: the runtime discards it when we return.
			err = errors.Join(err, fmt.Errorf("network: return to host netns: %w", serr))
		} else {
			runtime.UnlockOSThread()
		}
		if err != nil && f != nil {
			f.Close()
			f = nil
		}
		res <- result{f, err}
	}()
	r := <-res
	return r.f, r.err
}

// netnsFilePath names an open netns file in a way other processes (the
// OCI runtime) can open while this process holds it.
func netnsFilePath(f *os.File) string {
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd())
}

// deleteNetns unmounts and removes a named netns (made by versions that
// bind-mounted them); a missing one is not an error.
func deleteNetns(path string) error {
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("network: unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("network: remove %s: %w", path, err)
	}
	return nil
}

// writeSysctl writes a /proc/sys value; the netns that applies is the calling thread's.
func writeSysctl(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0o644); err != nil {
		return fmt.Errorf("network: sysctl %s=%s: %w", path, value, err)
	}
	return nil
}
