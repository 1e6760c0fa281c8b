package template

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/airlock-sandbox/airlock/internal/roottest"
)

// TestRemoveTreeDetachesMounts checks that a leftover mount inside a build
// directory (as a killed debootstrap could leave) is detached, not walked into.
func TestRemoveTreeDetachesMounts(t *testing.T) {
	roottest.Require(t, "mounting")
	tree := filepath.Join(t.TempDir(), "rootfs.tmp-1")
	mp := filepath.Join(tree, "my dir", "proc")
	if err := os.MkdirAll(mp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mp, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mp, syscall.MNT_DETACH) })
	if err := os.WriteFile(filepath.Join(mp, "keep"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if mps, err := mountsUnder(tree); err != nil || len(mps) != 1 || mps[0] != mp {
		t.Fatalf("mountsUnder = %v, %v; want [%s]", mps, err, mp)
	}
	if err := removeTree(tree); err != nil {
		t.Fatalf("removeTree: %v", err)
	}
	if _, err := os.Lstat(tree); !os.IsNotExist(err) {
		t.Errorf("tree still exists: %v", err)
	}
	if mps, _ := mountsUnder(tree); len(mps) != 0 {
		t.Errorf("mounts left: %v", mps)
	}
}

func TestDirSizeCountsHardLinksOnce(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 64<<10)
	if err := os.WriteFile(filepath.Join(dir, "a"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	size, err := dirSize(dir)
	if err != nil {
		t.Fatal(err)
	}
	if size < 64<<10 || size >= 2*64<<10 {
		t.Errorf("dirSize = %d, want one copy of 64 KiB plus the directory", size)
	}
}
