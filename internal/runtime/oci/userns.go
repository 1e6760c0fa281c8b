package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// IDRange is the block of host uids and gids a sandbox's ids 0..Size-1 map
// to, so that root in the sandbox is an unprivileged host user.
type IDRange struct {
	HostID uint32
	Size   uint32
}

// userns is a runc driver's user-namespace set-up: every sandbox gets a
// user namespace with the same mapping, and sees the (host-root-owned)
// template through an idmapped mount that shows its files as the
// sandbox's root. The mount is made per create and detached once the
// runtime has mounted the sandbox's overlay, which keeps its own reference:
// the host mount table does not grow with the number of sandboxes.
type userns struct {
	ids IDRange
	fd  int // a user namespace with the mapping, for mount_setattr
}

// newUserns makes a user namespace with ids' mapping and keeps a descriptor
// of it. Creating one needs a process, so a shell that waits on its stdin
// is started in it and let go once the namespace is open.
func newUserns(ids IDRange) (*userns, error) {
	if ids.Size < 65536 {
		return nil, fmt.Errorf("oci: user namespace range of %d ids; want at least 65536 (uid 65534 is nobody)", ids.Size)
	}
	if uint64(ids.HostID)+uint64(ids.Size) > 1<<32-1 || ids.HostID == 0 {
		return nil, fmt.Errorf("oci: user namespace range %d+%d is not a range of unprivileged host ids", ids.HostID, ids.Size)
	}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(ids.HostID), Size: int(ids.Size)}}
	cmd := exec.Command("/bin/sh", "-c", "read _")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("oci: start a process in a new user namespace: %w", err)
	}
	fd, err := unix.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	stdin.Close()
	_ = cmd.Wait()
	if err != nil {
		return nil, fmt.Errorf("oci: open user namespace: %w", err)
	}
	return &userns{ids: ids, fd: fd}, nil
}

// mountLower mounts src at dst read-only with the namespace's id mapping.
func (u *userns) mountLower(src, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("oci: %w", err)
	}
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("oci: open_tree %s: %w", src, err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NODEV, Userns_fd: uint64(u.fd)}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("oci: idmap %s: %w", src, err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("oci: mount idmapped %s on %s: %w", src, dst, err)
	}
	return nil
}

// unmountLower detaches the idmapped view; a sandbox's overlay holds its
// own reference to it.
func unmountLower(dst string) error {
	if err := unix.Unmount(dst, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("oci: unmount %s: %w", dst, err)
	}
	_ = os.Remove(dst)
	return nil
}

// chownTree gives the sandbox's root everything under dir (its upper
// layer, made by the host as root before the sandbox starts).
func (u *userns) chownTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		return os.Lchown(p, int(u.ids.HostID+st.Uid), int(u.ids.HostID+st.Gid))
	})
}

// letPass lets the sandbox's root (host gid HostID) search dir, and
// nobody else on the host more than before: group HostID, mode 0710. runc
// resolves the overlay's and bind mounts' paths as that user before the
// sandbox's root is switched away from the host's tree.
func (u *userns) letPass(dir string) error {
	if err := os.Chown(dir, -1, int(u.ids.HostID)); err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	if err := os.Chmod(dir, 0o710); err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	return nil
}

// checkPassable fails unless the sandbox's root may search every directory
// above dir (which letPass opens itself).
func (u *userns) checkPassable(dir string) error {
	for p := filepath.Dir(filepath.Clean(dir)); ; p = filepath.Dir(p) {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			return fmt.Errorf("oci: %w", err)
		}
		if st.Mode&0o001 == 0 && !(st.Gid == u.ids.HostID && st.Mode&0o010 != 0) {
			return fmt.Errorf("oci: with user namespaces, sandbox root (host gid %d) must be able to pass %s (mode %o): make it o+x, or group %d with g+x", u.ids.HostID, p, st.Mode&0o7777, u.ids.HostID)
		}
		if p == "/" {
			return nil
		}
	}
}

// Per-user kernel limits count up the user-namespace tree, against the
// namespace's creator too (host root: a sandbox holding 128 inotify
// instances left host root none). Each sandbox's namespace gets limits of
// its own, which its root cannot raise (it lacks CAP_SYS_RESOURCE), and
// the host's are raised so that sandboxes together do not exhaust them.
const (
	sandboxInotifyInstances = 128
	sandboxInotifyWatches   = 65536
	hostInotifyInstances    = 65536
)

// limitSandbox sets the per-user limits inside the user namespace of the
// sandbox whose init is pid. Writing a namespace's user.* sysctls takes a
// process in that namespace: nsenter joins it (it must be single-threaded
// to, which a Go program is not) and the host's shell writes them.
func (u *userns) limitSandbox(ctx context.Context, pid int) error {
	script := fmt.Sprintf("echo %d > /proc/sys/user/max_inotify_instances && echo %d > /proc/sys/user/max_inotify_watches",
		sandboxInotifyInstances, sandboxInotifyWatches)
	out, err := exec.CommandContext(ctx, "nsenter", "--user", "--target", strconv.Itoa(pid), "--", "/bin/sh", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Errorf("oci: set the sandbox's per-user limits: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// raiseHostLimits makes room at the host level for every sandbox's share.
func raiseHostLimits(log *slog.Logger) {
	const p = "/proc/sys/fs/inotify/max_user_instances"
	data, err := os.ReadFile(p)
	if err != nil {
		return
	}
	if cur, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil && cur < hostInotifyInstances {
		if err := os.WriteFile(p, []byte(strconv.Itoa(hostInotifyInstances)), 0o644); err != nil {
			log.Warn("oci: cannot raise the host's inotify instance limit; sandboxes share host root's", "limit", cur, "err", err)
			return
		}
		log.Info("oci: raised the host's inotify instance limit: sandboxes' count against host root's", "from", cur, "to", hostInotifyInstances)
	}
}

// mappings are config.json's uid and gid mappings.
func (u *userns) mappings() []specs.LinuxIDMapping {
	return []specs.LinuxIDMapping{{ContainerID: 0, HostID: u.ids.HostID, Size: u.ids.Size}}
}

// usernsMaskedPaths are hidden in addition: runc cannot mount a sysfs of
// its own in a user namespace that does not own the sandbox's (host-made)
// network namespace and binds the host's /sys instead, whose network
// entries name the host's interfaces.
var usernsMaskedPaths = []string{"/sys/class/net", "/sys/devices/virtual/net"}
