// Package drivertest is the conformance suite every runtime.Driver runs:
// the same scenarios (lifecycle, limits, least privilege, crash and restart
// recovery, pause, checkpoint) against each implementation.
package drivertest

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BusyboxBinary is the static busybox from Debian's busybox-static package.
const BusyboxBinary = "/bin/busybox"

// BusyboxRootfs builds a tiny rootfs (static busybox and its applet
// symlinks) in a temp dir, so tests need no template image.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	if err := checkStatic(BusyboxBinary); err != nil {
		t.Fatalf("drivertest: need a static busybox at %s (apt-get install -y busybox-static): %v", BusyboxBinary, err)
	}
	out, err := exec.Command(BusyboxBinary, "--list").Output()
	if err != nil {
		t.Fatalf("drivertest: busybox --list: %v", err)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	for _, d := range []string{"bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "proc", "sys", "dev", "mnt", "out"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, applet := range strings.Fields(string(out)) {
		if applet == "busybox" || strings.ContainsAny(applet, "/[") {
			continue
		}
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
		"etc/group":  "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// checkStatic fails for a dynamically linked binary, which would not run
// in a rootfs without libc.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return os.ErrInvalid
		}
	}
	return nil
}
