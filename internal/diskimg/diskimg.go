// Package diskimg makes size-limited ext4 images for sandboxes' writable
// layers and mounts them through loop devices, so a sandbox that fills its
// disk gets ENOSPC from its own filesystem and the host's disk is untouched.
//
// The kernel here has no quota support (neither XFS project quotas nor
// ext4's), so a filesystem of its own per sandbox is the hard limit. Making
// one with mkfs costs 40-60 ms; a blank image per size is made once and each
// sandbox gets a sparse copy of it (a few MB of metadata).
package diskimg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// MinMB is the smallest image: below it ext4's own metadata takes most of
// the space.
const MinMB = 32

// MaxMB bounds one image (1 TiB); a sparse file costs nothing until
// written, but the number is still the operator's promise of space.
const MaxMB = 1 << 20

// blankRecipe names how blank images are made; bump it with the mkfs
// options, so a cache made by an older build is not used (and is removed).
const blankRecipe = "r2"

// ErrSize is returned for sizes outside [MinMB, MaxMB].
var ErrSize = errors.New("diskimg: size out of range")

// Maker makes images from blank ones it caches in a directory.
type Maker struct {
	dir  string
	mkfs string

	mu    sync.Mutex
	ready map[int]bool
}

// NewMaker caches blank images in dir. It fails when mkfs.ext4 is missing
// (setup installs e2fsprogs).
func NewMaker(dir string) (*Maker, error) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"} {
			if _, serr := os.Stat(p); serr == nil {
				mkfs, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("diskimg: mkfs.ext4 not found (install e2fsprogs): %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("diskimg: %w", err)
	}
	// Blanks of an older recipe go.
	if imgs, err := filepath.Glob(filepath.Join(dir, "*.img")); err == nil {
		for _, p := range imgs {
			if !strings.HasSuffix(p, "-"+blankRecipe+".img") {
				_ = os.Remove(p)
			}
		}
	}
	// Half-made blanks of a crashed run; a minute is far longer than mkfs
	// takes, so none of these is being written now.
	if tmps, err := filepath.Glob(filepath.Join(dir, "*.tmp")); err == nil {
		for _, p := range tmps {
			if fi, err := os.Stat(p); err == nil && time.Since(fi.ModTime()) > time.Minute {
				_ = os.Remove(p)
			}
		}
	}
	return &Maker{dir: dir, mkfs: mkfs, ready: map[int]bool{}}, nil
}

// Make writes a blank ext4 image of sizeMB at path.
func (m *Maker) Make(ctx context.Context, path string, sizeMB int) error {
	if sizeMB < MinMB || sizeMB > MaxMB {
		return fmt.Errorf("%w: %d MB (want %d..%d)", ErrSize, sizeMB, MinMB, MaxMB)
	}
	blank, err := m.blank(ctx, sizeMB)
	if err != nil {
		return err
	}
	return sparseCopy(blank, path)
}

// blank returns the cached blank image of sizeMB, making it on first use.
func (m *Maker) blank(ctx context.Context, sizeMB int) (string, error) {
	path := filepath.Join(m.dir, strconv.Itoa(sizeMB)+"-"+blankRecipe+".img")
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ready[sizeMB] {
		return path, nil
	}
	// A blank left by an earlier run is trusted only if it was finished:
	// it is renamed into place after mkfs succeeds.
	if _, err := os.Stat(path); err == nil {
		m.ready[sizeMB] = true
		return path, nil
	}
	// A unique temporary name: drivers sharing the cache may make the same
	// size at once, and either finished copy is as good as the other.
	f, err := os.CreateTemp(m.dir, strconv.Itoa(sizeMB)+".*.tmp")
	if err != nil {
		return "", fmt.Errorf("diskimg: %w", err)
	}
	tmp := f.Name()
	err = f.Truncate(int64(sizeMB) << 20)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("diskimg: %w", err)
	}
	// No journal: a sandbox's disk does not outlive a host crash in a state
	// worth replaying, and the journal would be the first 64 MB written.
	// No resize inode: it reserves 4 MB of descriptor blocks for online
	// growth, and copying (then flushing) them was most of a create's
	// disk set-up (14 ms → 2 ms).
	// No blocks reserved for root: root in the sandbox owns all of it
	// anyway. The inode tables of a sparse file read as zeros, so lazy
	// initialisation is safe and mounts skip the background zeroing.
	cmd := exec.CommandContext(ctx, m.mkfs, "-q", "-F", "-O", "^has_journal,^resize_inode", "-m", "0",
		"-E", "lazy_itable_init=1,root_owner=0:0", "-L", "airlock", tmp)
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("diskimg: mkfs.ext4 %d MB: %w: %s", sizeMB, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("diskimg: %w", err)
	}
	m.ready[sizeMB] = true
	return path, nil
}

// sparseCopy copies src to a new file dst, data extents only, so holes stay
// holes.
func sparseCopy(src, dst string) (err error) {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("diskimg: %w", err)
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return fmt.Errorf("diskimg: %w", err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("diskimg: %w", err)
	}
	defer func() {
		if cerr := out.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("diskimg: %w", cerr)
		}
		if err != nil {
			_ = os.Remove(dst)
		}
	}()
	size := fi.Size()
	if err := out.Truncate(size); err != nil {
		return fmt.Errorf("diskimg: %w", err)
	}
	inFd := int(in.Fd())
	for off := int64(0); off < size; {
		data, err := unix.Seek(inFd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return fmt.Errorf("diskimg: seek data: %w", err)
		}
		hole, err := unix.Seek(inFd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("diskimg: seek hole: %w", err)
		}
		if _, err := io.Copy(io.NewOffsetWriter(out, data), io.NewSectionReader(in, data, hole-data)); err != nil {
			return fmt.Errorf("diskimg: copy: %w", err)
		}
		off = hole
	}
	return nil
}

// Mount attaches image to a free loop device and mounts its filesystem on
// dir. The loop device is set to clear itself when the filesystem is
// unmounted, so Unmount (or a lazy detach) is all the cleanup there is.
func Mount(image, dir string) error {
	img, err := os.OpenFile(image, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("diskimg: %w", err)
	}
	defer img.Close()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("diskimg: %w", err)
	}
	defer ctl.Close()
	cfg := unix.LoopConfig{Fd: uint32(img.Fd())}
	cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
	copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], image)
	// Another attach can take the device between GET_FREE and CONFIGURE;
	// that one then reports EBUSY and we ask again.
	for attempt := 0; ; attempt++ {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return fmt.Errorf("diskimg: no free loop device: %w", err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		loop, err := os.OpenFile(dev, os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("diskimg: %w", err)
		}
		err = unix.IoctlLoopConfigure(int(loop.Fd()), &cfg)
		if errors.Is(err, unix.EBUSY) && attempt < 20 {
			loop.Close()
			continue
		}
		if err != nil {
			loop.Close()
			return fmt.Errorf("diskimg: attach %s to %s: %w", image, dev, err)
		}
		// nodev/nosuid/noexec: the host never needs to run or open
		// anything a sandbox wrote; the sandbox sees this filesystem only
		// through its overlay, whose own flags apply there.
		err = unix.Mount(dev, dir, "ext4", unix.MS_NODEV|unix.MS_NOSUID|unix.MS_NOEXEC|unix.MS_NOATIME, "errors=remount-ro")
		// Closing the last descriptor of an autoclear device detaches it
		// unless the filesystem now holds it.
		loop.Close()
		if err != nil {
			return fmt.Errorf("diskimg: mount %s on %s: %w", dev, dir, err)
		}
		return nil
	}
}

// Unmount unmounts dir, retrying while it is busy and detaching lazily as
// the last resort. A dir that is not a mount point is not an error.
func Unmount(dir string) error {
	var err error
	for i := 0; i < 20; i++ {
		err = unix.Unmount(dir, 0)
		if err == nil || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) {
			break
		}
		time.Sleep(time.Duration(i+1) * 10 * time.Millisecond)
	}
	if lerr := unix.Unmount(dir, unix.MNT_DETACH); lerr != nil && !errors.Is(lerr, unix.EINVAL) {
		return fmt.Errorf("diskimg: unmount %s: %w (lazy: %v)", dir, err, lerr)
	}
	return nil
}

// Usage reports the bytes used and the total of the filesystem at dir.
func Usage(dir string) (used, total uint64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, 0, fmt.Errorf("diskimg: %w", err)
	}
	bs := uint64(st.Bsize)
	return (st.Blocks - st.Bfree) * bs, st.Blocks * bs, nil
}
