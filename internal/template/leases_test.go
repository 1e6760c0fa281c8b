package template

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// builtTree makes a finished-looking rootfs tree under templates/<id>/.
func builtTree(t *testing.T, m *Manager, id, name string) string {
	t.Helper()
	p := filepath.Join(m.templatesDir(), id, name)
	if err := os.MkdirAll(filepath.Join(p, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "etc", "os-release"), []byte("ID=debian\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// TestLeaseKeepsRetiredTree: a rebuild retires the old tree but leaves it
// while a sandbox holds it; new sandboxes cannot lease it; the last release
// removes it, and a tree nobody holds goes at once.
func TestLeaseKeepsRetiredTree(t *testing.T) {
	m, _ := newTestManager(t, openStore(t), &fakePopulate{})
	old := builtTree(t, m, "tplx", "rootfs-d-old")
	idle := builtTree(t, m, "tplx", "rootfs-d-idle")
	cur := builtTree(t, m, "tplx", "rootfs-d-new")
	for _, id := range []string{"sb1", "sb2"} {
		if err := m.Lease(old, id); err != nil {
			t.Fatalf("Lease(%s): %v", id, err)
		}
	}
	m.pruneOldRootfs(filepath.Dir(cur), cur)
	if !exists(filepath.Join(old, "etc", "os-release")) {
		t.Fatal("a rebuild removed the tree two sandboxes run on")
	}
	if exists(idle) {
		t.Error("an old tree nobody uses survived the rebuild")
	}
	if !exists(cur) {
		t.Fatal("the rebuild removed its own tree")
	}
	if err := m.Lease(old, "sb3"); !errors.Is(err, ErrRetired) {
		t.Errorf("Lease on a retired tree = %v, want ErrRetired", err)
	}
	if err := m.Release("sb1"); err != nil {
		t.Fatal(err)
	}
	if !exists(old) {
		t.Fatal("the first release removed a tree another sandbox still holds")
	}
	if err := m.Release("sb2"); err != nil {
		t.Fatal(err)
	}
	if exists(old) || exists(leasesDir(old)) || exists(retiredMark(old)) {
		t.Error("the last release left the retired tree, its leases or its mark")
	}
	if err := m.Release("sb2"); err != nil {
		t.Errorf("a second release: %v", err)
	}
	if err := m.Lease(cur, "sb4"); err != nil {
		t.Errorf("Lease on the current tree: %v", err)
	}
}

// TestRemoveFilesWaitsForLeases: deleting a template whose tree a sandbox
// still runs on keeps the tree until that sandbox is released.
func TestRemoveFilesWaitsForLeases(t *testing.T) {
	m, _ := newTestManager(t, openStore(t), &fakePopulate{})
	tree := builtTree(t, m, "tpldel", "rootfs-d-1")
	if err := m.Lease(tree, "sb1"); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveFiles(&store.Template{ID: "tpldel", RootfsDir: tree}); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(tree, "etc", "os-release")) {
		t.Fatal("RemoveFiles removed a tree a sandbox runs on")
	}
	if err := m.Release("sb1"); err != nil {
		t.Fatal(err)
	}
	if exists(filepath.Dir(tree)) {
		t.Error("the deleted template's directory outlived its last sandbox")
	}
}

// TestReconcileLeases drops the leases of sandboxes that are gone after a
// restart and removes retired trees they were keeping.
func TestReconcileLeases(t *testing.T) {
	m, _ := newTestManager(t, openStore(t), &fakePopulate{})
	old := builtTree(t, m, "tplr", "rootfs-d-old")
	cur := builtTree(t, m, "tplr", "rootfs-d-cur")
	for _, l := range []struct{ tree, id string }{{old, "gone1"}, {cur, "alive"}, {cur, "gone2"}} {
		if err := m.Lease(l.tree, l.id); err != nil {
			t.Fatal(err)
		}
	}
	m.pruneOldRootfs(filepath.Dir(cur), cur)
	if err := m.ReconcileLeases(func(id string) bool { return id == "alive" }); err != nil {
		t.Fatal(err)
	}
	if exists(old) {
		t.Error("a retired tree whose only sandbox is gone survived reconciliation")
	}
	if !exists(filepath.Join(leasesDir(cur), "alive")) || exists(filepath.Join(leasesDir(cur), "gone2")) {
		t.Error("reconciliation did not keep exactly the live sandbox's lease")
	}
}

func TestLeaseRefusesOutsidePaths(t *testing.T) {
	m, _ := newTestManager(t, openStore(t), &fakePopulate{})
	tree := builtTree(t, m, "tplo", "rootfs-d-1")
	for _, tc := range []struct{ tree, holder string }{
		{t.TempDir(), "sb"},
		{filepath.Join(m.templatesDir(), "tplo"), "sb"},
		{tree, "../escape"},
		{tree, ""},
		{tree, "*"},
	} {
		if err := m.Lease(tc.tree, tc.holder); err == nil {
			t.Errorf("Lease(%q, %q) succeeded", tc.tree, tc.holder)
		}
	}
	if err := m.Release("../x"); err == nil {
		t.Error("Release of a path-like holder succeeded")
	}
}

// A build's lease on its source survives reconciliation while the build's
// process lives, and goes once it is gone.
func TestBuildLeaseReconcile(t *testing.T) {
	if !buildAlive(buildHolder()) {
		t.Fatalf("buildAlive(%s) = false for this process", buildHolder())
	}
	if buildAlive("build-999999999") || buildAlive("build-x") || buildAlive("sandbox1") {
		t.Error("buildAlive true for a holder that is no running build")
	}
}
