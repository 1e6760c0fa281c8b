package leakcheck

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/internal/diskimg"
	"github.com/airlock-sandbox/airlock/internal/roottest"
)

func TestParseRuleset(t *testing.T) {
	ruleset := `table inet filter { # handle 1
	chain forward { # handle 1
		type filter hook forward priority filter; policy accept;
		jump airlock-fwd # handle 4
		ip saddr 10.0.0.1 accept # handle 5
	}
	chain airlock-fwd { # handle 2
		iifname "al1" accept # handle 3
	}
}
table ip airlock { # handle 2
	chain postrouting { # handle 1
		masquerade # handle 2
	}
}
table ip other { # handle 3
}
`
	got := parseRuleset(ruleset, "airlock")
	want := []string{
		"nft rule inet filter forward: jump airlock-fwd # handle 4",
		"nft chain inet filter airlock-fwd",
		`nft rule inet filter airlock-fwd: iifname "al1" accept # handle 3`,
		"nft table ip airlock",
		"nft rule ip airlock postrouting: masquerade # handle 2",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseRuleset =\n%q\nwant\n%q", got, want)
	}
}

// TestCheckFindsMountAndCgroup leaks a tmpfs mount and a cgroup on
// purpose and expects Diff to name both, then cleans up and expects none.
func TestCheckFindsMountAndCgroup(t *testing.T) {
	roottest.Require(t, "mounting and creating cgroups")
	root := t.TempDir()
	parent := "leakchecktest"
	o := Options{MountRoots: []string{root}, CgroupParents: []string{parent}}
	before, err := SnapshotWith(o)
	if err != nil {
		t.Fatal(err)
	}
	mnt := filepath.Join(root, "m")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	cg := "/sys/fs/cgroup/pids/" + parent + "/x1"
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		cg = "/sys/fs/cgroup/" + parent + "/x1"
	}
	if err := os.MkdirAll(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(mnt, unix.MNT_DETACH)
		_ = os.Remove(cg)
		_ = os.Remove(filepath.Dir(cg))
	})
	after, err := SnapshotWith(o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cgroup " + cg, "mount " + mnt + " (tmpfs)"}
	if got := before.Diff(after); !reflect.DeepEqual(got, want) {
		t.Errorf("Diff = %q, want %q", got, want)
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(cg); err != nil {
		t.Fatal(err)
	}
	Check(t, before)
}

// TestCheckFindsLoopDevice leaves a disk image attached and mounted and
// expects Diff to name the loop device and the mount, and nothing once it
// is unmounted (the device clears itself).
func TestCheckFindsLoopDevice(t *testing.T) {
	roottest.Require(t, "loop devices")
	root := t.TempDir()
	o := Options{MountRoots: []string{root}}
	before, err := SnapshotWith(o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := diskimg.NewMaker(filepath.Join(root, "cache"))
	if err != nil {
		t.Fatal(err)
	}
	img, mnt := filepath.Join(root, "disk.img"), filepath.Join(root, "disk")
	if err := m.Make(context.Background(), img, diskimg.MinMB); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := diskimg.Mount(img, mnt); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = diskimg.Unmount(mnt) })
	after, err := SnapshotWith(o)
	if err != nil {
		t.Fatal(err)
	}
	var loop, mount bool
	for _, it := range before.Diff(after) {
		loop = loop || strings.HasPrefix(it, "loop loop") && strings.HasSuffix(it, "("+img+")")
		mount = mount || it == "mount "+mnt+" (ext4)"
	}
	if !loop || !mount {
		t.Errorf("Diff = %q, want the loop device backed by %s and the ext4 mount", before.Diff(after), img)
	}
	if err := diskimg.Unmount(mnt); err != nil {
		t.Fatal(err)
	}
	final, err := SnapshotWith(o)
	if err != nil {
		t.Fatal(err)
	}
	if d := before.Diff(final); len(d) != 0 {
		t.Errorf("after unmount, Diff = %q, want nothing", d)
	}
}
