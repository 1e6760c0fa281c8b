package diskimg_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/internal/diskimg"
	"github.com/airlock-sandbox/airlock/internal/roottest"
)

func allocated(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Blocks * 512
}

func TestMakeIsSparseCopyOfBlank(t *testing.T) {
	dir := t.TempDir()
	m, err := diskimg.NewMaker(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, name := range []string{"a.img", "b.img"} {
		if err := m.Make(ctx, filepath.Join(dir, name), 128); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a.img", "b.img"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() != 128<<20 {
			t.Errorf("%s: size %d, want %d", name, fi.Size(), 128<<20)
		}
		if a := allocated(t, p); a > 8<<20 {
			t.Errorf("%s: %d bytes allocated for a blank 128 MiB image; holes were not kept", name, a)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.img"))
	b, _ := os.ReadFile(filepath.Join(dir, "b.img"))
	if string(a) != string(b) {
		t.Error("two images of one size differ: the copy is not faithful")
	}
	if err := m.Make(ctx, filepath.Join(dir, "a.img"), 128); err == nil {
		t.Error("Make over an existing file succeeded; it must not overwrite")
	}
	for _, mb := range []int{0, diskimg.MinMB - 1, diskimg.MaxMB + 1} {
		if err := m.Make(ctx, filepath.Join(dir, "bad.img"), mb); !errors.Is(err, diskimg.ErrSize) {
			t.Errorf("Make(%d MB) = %v, want ErrSize", mb, err)
		}
	}
}

// TestMountFillsToENOSPC fills a mounted image and checks the writer gets
// ENOSPC near the image's size, the host file never grows past it, inodes
// run out too, and unmounting releases the loop device.
func TestMountFillsToENOSPC(t *testing.T) {
	roottest.Require(t, "loop devices and mounts")
	dir := t.TempDir()
	m, err := diskimg.NewMaker(filepath.Join(dir, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	img, mnt := filepath.Join(dir, "disk.img"), filepath.Join(dir, "mnt")
	if err := m.Make(context.Background(), img, 64); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := diskimg.Mount(img, mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = diskimg.Unmount(mnt) })
	if loops := loopsBackedBy(t, img); len(loops) != 1 {
		t.Fatalf("loop devices backed by the image: %v, want exactly one", loops)
	}
	_, total, err := diskimg.Usage(mnt)
	if err != nil {
		t.Fatal(err)
	}
	if total < 50<<20 || total > 64<<20 {
		t.Errorf("filesystem total %d, want about 64 MiB", total)
	}

	f, err := os.Create(filepath.Join(mnt, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var written int64
	for written < 256<<20 {
		n, err := f.Write(buf)
		written += int64(n)
		if err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("write after %d bytes: %v, want ENOSPC", written, err)
			}
			break
		}
	}
	f.Close()
	if written >= 64<<20 {
		t.Fatalf("wrote %d bytes into a 64 MiB image without ENOSPC", written)
	}
	if written < 40<<20 {
		t.Errorf("ENOSPC after only %d bytes of a 64 MiB image", written)
	}
	if a := allocated(t, img); a > 64<<20 {
		t.Errorf("image file holds %d bytes on the host, more than its 64 MiB size", a)
	}
	if err := os.Remove(filepath.Join(mnt, "fill")); err != nil {
		t.Fatal(err)
	}

	// Inodes are bounded too: empty files stop at the inode count.
	var files int
	for ; files < 1<<20; files++ {
		f, err := os.Create(filepath.Join(mnt, "i"+strconv.Itoa(files)))
		if err != nil {
			if !errors.Is(err, unix.ENOSPC) {
				t.Fatalf("create after %d files: %v, want ENOSPC", files, err)
			}
			break
		}
		f.Close()
	}
	if files >= 1<<20 {
		t.Fatal("a million empty files fit in a 64 MiB image: inodes are not bounded")
	}

	if err := diskimg.Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	if loops := loopsBackedBy(t, img); len(loops) != 0 {
		t.Errorf("loop devices still backed by the image after unmount: %v", loops)
	}
	if err := diskimg.Unmount(mnt); err != nil {
		t.Errorf("second Unmount: %v, want nil", err)
	}
}

func loopsBackedBy(t *testing.T, img string) []string {
	t.Helper()
	ds, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ds {
		data, err := os.ReadFile(p)
		if err != nil {
			continue // detached between glob and read
		}
		if strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)") == img {
			out = append(out, p)
		}
	}
	return out
}
