package network

import (
	"errors"
	"fmt"
	"os"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// ensureNetnsDir makes dir a shared mount point, as ip-netns does, so netns
// bind mounts made later propagate to mount namespaces cloned from this one.
func ensureNetnsDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("network: create %s: %w", dir, err)
	}
	err := unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if errors.Is(err, unix.EINVAL) { // not a mount point yet
		if err = unix.Mount(dir, dir, "none", unix.MS_BIND|unix.MS_REC, ""); err == nil {
			err = unix.Mount("", dir, "none", unix.MS_SHARED|unix.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("network: make %s a shared mount: %w", dir, err)
	}
	return nil
}

// createNetns creates a network namespace bind-mounted at path and runs
// inside(hostNS) with the calling OS thread in it, then returns to hostNS.
// It runs on a dedicated goroutine so that, should switching back fail, the
// tainted OS thread dies with it instead of serving other goroutines.
func createNetns(path string, hostNS netns.NsHandle, inside func() error) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, path)
		}
		return fmt.Errorf("network: create %s: %w", path, err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		err := func() error {
			if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
				return fmt.Errorf("network: unshare netns: %w", err)
			}
			src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
			if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("network: bind netns to %s: %w", path, err)
			}
			return inside()
		}()
		if serr := netns.Set(hostNS); serr != nil {
			// Keep the thread locked: the runtime discards it when we return.
			errc <- errors.Join(err, fmt.Errorf("network: return to host netns: %w", serr))
			return
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		_ = deleteNetns(path)
		return err
	}
	return nil
}

// deleteNetns unmounts and removes a named netns; a missing one is not an error.
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
