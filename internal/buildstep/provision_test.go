package buildstep

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeAt(t *testing.T, root, rel, body string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// An image whose uid 1000 is taken, with sudo, a resolv.conf symlink and
// Debian's profile, gets "user" on the next uid, in sudo, and the rest.
func TestProvisionImage(t *testing.T) {
	root := t.TempDir()
	writeAt(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n")
	writeAt(t, root, "etc/group", "root:x:0:\nsudo:x:27:node\nnode:x:1000:\n")
	writeAt(t, root, "etc/skel/.bashrc", "# skel\n")
	writeAt(t, root, "etc/profile", "if [ \"$(id -u)\" -eq 0 ]; then\n  PATH=\"/sbin\"\nelse\n  PATH=\"/bin\"\nfi\n")
	if err := os.MkdirAll(filepath.Join(root, "etc/sudoers.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../run/resolv.conf", filepath.Join(root, "etc/resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := call(t, root, "provision"); code != 0 {
		t.Fatalf("provision: %d %s", code, stderr)
	}
	if got := readFile(t, filepath.Join(root, "etc/passwd")); !strings.Contains(got, "user:x:1001:1001::/home/user:/bin/sh\n") {
		t.Errorf("passwd:\n%s", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/group")); !strings.Contains(got, "sudo:x:27:node,user\n") || !strings.Contains(got, "user:x:1001:\n") {
		t.Errorf("group:\n%s", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/sudoers.d/user")); !strings.Contains(got, "NOPASSWD") {
		t.Errorf("sudoers: %q", got)
	}
	if st, err := os.Lstat(filepath.Join(root, "etc/resolv.conf")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("resolv.conf is not a regular file: %v %v", st, err)
	}
	if got := readFile(t, filepath.Join(root, "home/user/.bashrc")); got != "# skel\n" {
		t.Errorf("home not from skel: %q", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/profile")); !strings.Contains(got, "keep the PATH") {
		t.Errorf("profile not patched:\n%s", got)
	}
	if got := readFile(t, filepath.Join(root, "etc/hostname")); got != "sandbox\n" {
		t.Errorf("hostname %q", got)
	}
	// Twice is the same as once.
	before := readFile(t, filepath.Join(root, "etc/passwd"))
	if code, _, stderr := call(t, root, "provision"); code != 0 {
		t.Fatalf("second provision: %d %s", code, stderr)
	}
	if after := readFile(t, filepath.Join(root, "etc/passwd")); after != before {
		t.Errorf("second provision changed passwd:\n%s", after)
	}
}

// An image with no account files at all (FROM scratch plus a shell) gets
// root and user.
func TestProvisionBareImage(t *testing.T) {
	root := t.TempDir()
	if code, _, stderr := call(t, root, "provision"); code != 0 {
		t.Fatalf("provision: %d %s", code, stderr)
	}
	got := readFile(t, filepath.Join(root, "etc/passwd"))
	if !strings.HasPrefix(got, "root:x:0:0:") || !strings.Contains(got, "\nuser:x:1000:1000:") {
		t.Errorf("passwd:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/shadow")); err == nil {
		t.Error("a shadow file was made for an image without one")
	}
}
