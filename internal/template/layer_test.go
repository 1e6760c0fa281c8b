package template

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/internal/roottest"
)

func mustWrite(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestApplyLayer applies an upper layer as a user-namespaced overlay
// leaves it (host ids from a base) onto a lower copy.
func TestApplyLayer(t *testing.T) {
	roottest.Require(t, "applying layers (owners, device whiteouts, trusted xattrs)")
	const base = 1 << 30
	lower, upper := t.TempDir(), t.TempDir()
	mustWrite(t, filepath.Join(lower, "keep"), "kept")
	mustWrite(t, filepath.Join(lower, "gone/file"), "x")
	mustWrite(t, filepath.Join(lower, "opaque/old"), "old")
	mustWrite(t, filepath.Join(lower, "usr/lib/real"), "lib")
	if err := os.Symlink("usr/lib", filepath.Join(lower, "lib")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(lower, "dir-becomes-file/inner"), "i")

	mustWrite(t, filepath.Join(upper, "new/file"), "new")
	if err := unix.Mknod(filepath.Join(upper, "gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(upper, "opaque/fresh"), "fresh")
	if err := unix.Setxattr(filepath.Join(upper, "opaque"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	// The sandbox replaced the lib symlink with a real directory.
	mustWrite(t, filepath.Join(upper, "lib/own"), "own")
	mustWrite(t, filepath.Join(upper, "dir-becomes-file"), "file now")
	mustWrite(t, filepath.Join(upper, "hard/a"), "linked")
	if err := os.Link(filepath.Join(upper, "hard/a"), filepath.Join(upper, "hard/b")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"new", "new/file", "hard/a"} {
		if err := os.Lchown(filepath.Join(upper, p), base+1000, base+1000); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Lchown(filepath.Join(upper, "opaque/fresh"), 4242, 4242); err != nil { // not a sandbox id
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/shadow", filepath.Join(upper, "new/link")); err != nil {
		t.Fatal(err)
	}
	// A v3 file capability whose namespace root is the build's.
	v3 := make([]byte, 24)
	v3[3], v3[4], v3[20], v3[21], v3[22], v3[23] = 0x03, 0x20, 0, 0, 0, 0x40 // rev 3, CAP_NET_RAW permitted, rootid 2^30
	if err := unix.Lsetxattr(filepath.Join(upper, "new/file"), "security.capability", v3, 0); err != nil {
		t.Fatal(err)
	}

	if err := applyLayer(upper, lower, base); err != nil {
		t.Fatalf("applyLayer: %v", err)
	}
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(lower, p))
		if err != nil {
			return "error: " + err.Error()
		}
		return string(data)
	}
	for p, want := range map[string]string{"keep": "kept", "new/file": "new", "opaque/fresh": "fresh", "lib/own": "own", "dir-becomes-file": "file now", "hard/b": "linked"} {
		if got := read(p); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	for _, p := range []string{"gone", "opaque/old"} {
		if _, err := os.Lstat(filepath.Join(lower, p)); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
	if fi, err := os.Lstat(filepath.Join(lower, "lib")); err != nil || !fi.IsDir() {
		t.Errorf("lib: %v, %v; want a real directory in place of the symlink", fi, err)
	}
	if got := read("usr/lib/real"); got != "lib" {
		t.Errorf("usr/lib/real = %q: a write went through the old symlink", got)
	}
	if link, _ := os.Readlink(filepath.Join(lower, "new/link")); link != "/etc/shadow" {
		t.Errorf("new/link = %q, want the symlink copied as is", link)
	}
	var a, b syscall.Stat_t
	_ = syscall.Stat(filepath.Join(lower, "hard/a"), &a)
	_ = syscall.Stat(filepath.Join(lower, "hard/b"), &b)
	if a.Ino != b.Ino || a.Ino == 0 {
		t.Errorf("hard/a and hard/b are not one file")
	}
	for p, want := range map[string]uint32{"new/file": 1000, "hard/a": 1000, "opaque/fresh": 65534, "keep": 0} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(lower, p), &st); err != nil || st.Uid != want || st.Gid != want {
			t.Errorf("%s owner %d:%d (%v), want %d", p, st.Uid, st.Gid, err, want)
		}
	}
	capv := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(lower, "new/file"), "security.capability", capv); err != nil || n != 20 || capv[3] != 0x02 || capv[4] != 0x20 {
		t.Errorf("capability on new/file: %x (%v), want the v3 one as revision 2", capv[:max(n, 0)], err)
	}
}

func TestApplyLayerRefusesDevices(t *testing.T) {
	roottest.Require(t, "applying layers (device nodes)")
	lower, upper := t.TempDir(), t.TempDir()
	if err := unix.Mknod(filepath.Join(upper, "sda"), unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mknod(filepath.Join(upper, "mem"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 1))); err != nil {
		t.Fatal(err)
	}
	err := applyLayer(upper, lower, 0)
	if err == nil || !strings.Contains(err.Error(), "device") {
		t.Fatalf("applyLayer with device nodes = %v, want refused", err)
	}
	if _, err := os.Lstat(filepath.Join(lower, "sda")); !os.IsNotExist(err) {
		t.Errorf("block device copied: %v", err)
	}
}
