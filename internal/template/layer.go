package template

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Paths of a build sandbox's upper layer that the runtime, not the build
// steps, wrote: they never become part of the template.
var layerSkip = map[string]bool{
	"etc/resolv.conf":   true, // seeded per sandbox by the runtime
	"tmp/.airlock-disk": true, // keeps gVisor from a tmpfs on /tmp
	".airlock-build":    true, // the build's own mounts
}

// layerIDs is how many sandbox ids map to host ids from the layer's base.
const layerIDs = 65536

// applyLayer applies an overlay upper layer written by a build sandbox
// onto dst, a copy of the layer's lower tree: new and changed entries are
// copied, whiteouts delete, opaque directories replace. The layer is the
// sandbox's work and so hostile input: nothing in it is followed (a
// symlink is copied as a symlink, never written through), device nodes
// are refused, and ids are shifted from host ids (idBase + sandbox id) to
// the sandbox ids a template tree holds, anything outside the sandbox's
// range becoming nobody. dst's parents are real directories by
// construction: entries are applied parents first, and a directory in the
// layer replaces whatever dst had at that path.
func applyLayer(upper, dst string, idBase uint32) error {
	links := map[[2]uint64]string{} // (dev, ino) of multiply linked files -> dst path
	type dirTimes struct {
		path string
		st   *unix.Stat_t
	}
	var dirs []dirTimes
	err := filepath.WalkDir(upper, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if layerSkip[filepath.ToSlash(rel)] {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("layer: %w", err)
		}
		target := filepath.Join(dst, rel)
		if err := realParent(dst, target); err != nil {
			return err
		}
		uid, gid := shiftID(st.Uid, idBase), shiftID(st.Gid, idBase)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFBLK:
			return fmt.Errorf("layer: %s: device nodes are not allowed in templates", rel)
		case unix.S_IFCHR:
			if st.Rdev != 0 {
				return fmt.Errorf("layer: %s: device nodes are not allowed in templates", rel)
			}
			return os.RemoveAll(target) // a whiteout
		case unix.S_IFREG:
			if isXWhiteout(p, &st) {
				return os.RemoveAll(target)
			}
			if err := removeNonDir(target, true); err != nil {
				return err
			}
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				return os.Link(first, target)
			}
			if err := copyRegular(p, target, &st, uid, gid, idBase); err != nil {
				return err
			}
			if st.Nlink > 1 {
				links[key] = target
			}
		case unix.S_IFDIR:
			if err := removeNonDir(target, false); err != nil {
				return err
			}
			if isOpaque(p) {
				if err := os.RemoveAll(target); err != nil {
					return fmt.Errorf("layer: %w", err)
				}
			}
			if err := os.Mkdir(target, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("layer: %w", err)
			}
			if err := setMeta(target, &st, uid, gid); err != nil {
				return err
			}
			if err := copyXattrs(p, target, idBase); err != nil {
				return err
			}
			dirs = append(dirs, dirTimes{target, &st})
		case unix.S_IFLNK:
			link, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("layer: %w", err)
			}
			if err := removeNonDir(target, true); err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return fmt.Errorf("layer: %w", err)
			}
			if err := unix.Lchown(target, int(uid), int(gid)); err != nil {
				return fmt.Errorf("layer: %w", err)
			}
			ts := []unix.Timespec{st.Atim, st.Mtim}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return fmt.Errorf("layer: %w", err)
			}
		case unix.S_IFIFO:
			if err := removeNonDir(target, true); err != nil {
				return err
			}
			if err := unix.Mkfifo(target, st.Mode&0o7777); err != nil {
				return fmt.Errorf("layer: %w", err)
			}
			if err := setMeta(target, &st, uid, gid); err != nil {
				return err
			}
		default: // sockets: nothing to keep
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Children changed the directories' times; set them last, deepest first.
	for i := len(dirs) - 1; i >= 0; i-- {
		ts := []unix.Timespec{dirs[i].st.Atim, dirs[i].st.Mtim}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, dirs[i].path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("layer: %w", err)
		}
	}
	return nil
}

// shiftID maps a host id of the layer to the sandbox id a template holds.
func shiftID(id, base uint32) uint32 {
	if base == 0 {
		return id
	}
	if id < base || id-base >= layerIDs {
		return 65534 // nobody: not an id of the sandbox
	}
	return id - base
}

// realParent checks every directory between dst and target is a real
// directory, not a symlink: a write must never leave dst.
func realParent(dst, target string) error {
	rel, err := filepath.Rel(dst, filepath.Dir(target))
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("layer: %s is outside %s", target, dst)
	}
	if rel == "." {
		return nil
	}
	p := dst
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("layer: parent of %s: %w", target, err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("layer: parent %s of %s is not a directory", p, target)
		}
	}
	return nil
}

// removeNonDir clears target for a new entry: anything but a directory
// goes; a directory goes too when the new entry is not one (replace).
func removeNonDir(target string, replaceDir bool) error {
	fi, err := os.Lstat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	if fi.IsDir() && !replaceDir {
		return nil
	}
	if err := os.RemoveAll(target); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	return nil
}

func copyRegular(src, dst string, st *unix.Stat_t, uid, gid, idBase uint32) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("layer: copy %s: %w", dst, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	if err := setMeta(dst, st, uid, gid); err != nil {
		return err
	}
	return copyXattrs(src, dst, idBase) // after chown, which drops file capabilities
}

// setMeta sets owner, then mode (chown clears setuid bits), then times.
func setMeta(p string, st *unix.Stat_t, uid, gid uint32) error {
	if err := unix.Lchown(p, int(uid), int(gid)); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, p, st.Mode&0o7777, 0); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	return nil
}

// Overlay's own markers live in the trusted. namespace (a host mount) or,
// for an overlay mounted in a user namespace, in user.
var overlayXattrPrefixes = []string{"trusted.overlay.", "user.overlay."}

func isOpaque(p string) bool {
	for _, pre := range overlayXattrPrefixes {
		buf := make([]byte, 8)
		if n, err := unix.Lgetxattr(p, pre+"opaque", buf); err == nil && bytes.Equal(buf[:n], []byte("y")) {
			return true
		}
	}
	return false
}

// isXWhiteout recognises the empty file with an overlay.whiteout xattr
// that newer kernels may use instead of a 0/0 device.
func isXWhiteout(p string, st *unix.Stat_t) bool {
	if st.Size != 0 {
		return false
	}
	for _, pre := range overlayXattrPrefixes {
		if _, err := unix.Lgetxattr(p, pre+"whiteout", nil); err == nil {
			return true
		}
	}
	return false
}

// copyXattrs keeps user.* attributes (not overlay's) and file
// capabilities, see capabilityV2.
func copyXattrs(src, dst string, idBase uint32) error {
	size, err := unix.Llistxattr(src, nil)
	if err != nil || size == 0 {
		return nil // none, or a filesystem without them
	}
	names := make([]byte, size)
	if size, err = unix.Llistxattr(src, names); err != nil {
		return nil
	}
	for _, name := range strings.Split(strings.TrimRight(string(names[:size]), "\x00"), "\x00") {
		keep := strings.HasPrefix(name, "user.") && !strings.HasPrefix(name, "user.overlay.") || name == "security.capability"
		if !keep {
			continue
		}
		val := make([]byte, 64<<10)
		n, err := unix.Lgetxattr(src, name, val)
		if err != nil {
			continue
		}
		if name == "security.capability" {
			var ok bool
			if n, ok = capabilityV2(val[:n], idBase); !ok {
				continue
			}
		}
		if err := unix.Lsetxattr(dst, name, val[:n], 0); err != nil {
			return fmt.Errorf("layer: xattr %s on %s: %w", name, dst, err)
		}
	}
	return nil
}

// capabilityV2 rewrites a security.capability value in place to the
// namespace-less revision 2 a template holds. setcap in a user namespace
// writes revision 3, naming the namespace's root as a host id: one whose
// root is the build sandbox's (idBase) becomes revision 2; any other is
// not the build's to give and is dropped (ok false).
func capabilityV2(val []byte, idBase uint32) (int, bool) {
	const v2Len, v3Len = 20, 24
	if len(val) < 4 {
		return 0, false
	}
	switch val[3] { // the revision, in the top byte of a little-endian word
	case 0x02:
		return len(val), len(val) == v2Len
	case 0x03:
		if len(val) != v3Len {
			return 0, false
		}
		root := uint32(val[20]) | uint32(val[21])<<8 | uint32(val[22])<<16 | uint32(val[23])<<24
		if root != idBase {
			return 0, false
		}
		val[3] = 0x02
		return v2Len, true
	}
	return 0, false
}
