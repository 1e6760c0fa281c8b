package template

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A sandbox holds a lease on the rootfs tree it runs on, from before its
// container starts until it is gone: a file named after the sandbox in the
// tree's leases directory. Rebuilding or deleting a template retires its old
// trees instead of removing them while leased; the last release removes a
// retired tree. Leases are files, so they outlive a server restart (recovery
// drops those of sandboxes that did not survive it) and are seen by a
// `template build` running in another process; the host mount table is
// never consulted (runc mounts a sandbox's overlay in its own namespace,
// where the host cannot see it).

// ErrRetired means a rootfs tree was replaced or deleted: no new sandbox
// may start on it.
var ErrRetired = errors.New("template rootfs was replaced or deleted")

func leasesDir(rootfs string) string { return rootfs + ".leases" }
func retiredMark(rootfs string) string {
	return rootfs + ".retired"
}

// lockLeases serialises leasing and retiring, across processes.
func (m *Manager) lockLeases() (func(), error) {
	if err := os.MkdirAll(m.templatesDir(), 0o755); err != nil {
		return nil, err
	}
	return lockFile(filepath.Join(m.templatesDir(), ".leases.lock"))
}

// checkRootfs makes sure rootfs is a tree under templates/, so a lease or
// a removal never lands elsewhere.
func (m *Manager) checkRootfs(rootfs string) error {
	rel, err := filepath.Rel(m.templatesDir(), rootfs)
	if err != nil || strings.HasPrefix(rel, "..") || strings.Count(rel, string(filepath.Separator)) != 1 {
		return fmt.Errorf("template: %q is not a template rootfs", rootfs)
	}
	return nil
}

// checkHolder makes sure a lease holder is a plain file name.
func checkHolder(holder string) error {
	if holder == "" || holder != filepath.Base(holder) || strings.HasPrefix(holder, ".") || strings.ContainsAny(holder, "*?[\\") {
		return fmt.Errorf("template: bad lease holder %q", holder)
	}
	return nil
}

// Lease records that holder (a sandbox ID) uses rootfs.
func (m *Manager) Lease(rootfs, holder string) error {
	rootfs = filepath.Clean(rootfs)
	if err := m.checkRootfs(rootfs); err != nil {
		return err
	}
	if err := checkHolder(holder); err != nil {
		return err
	}
	unlock, err := m.lockLeases()
	if err != nil {
		return err
	}
	defer unlock()
	if _, err := os.Lstat(retiredMark(rootfs)); err == nil || !isBuilt(rootfs) {
		return fmt.Errorf("template: %s: %w", rootfs, ErrRetired)
	}
	if err := os.MkdirAll(leasesDir(rootfs), 0o700); err != nil {
		return fmt.Errorf("template: lease: %w", err)
	}
	if err := os.WriteFile(filepath.Join(leasesDir(rootfs), holder), nil, 0o600); err != nil {
		return fmt.Errorf("template: lease: %w", err)
	}
	return nil
}

// Release drops every lease holder has, removing retired trees nobody
// uses any more.
func (m *Manager) Release(holder string) error {
	if err := checkHolder(holder); err != nil {
		return err
	}
	unlock, err := m.lockLeases()
	if err != nil {
		return err
	}
	defer unlock()
	leases, err := filepath.Glob(filepath.Join(m.templatesDir(), "*", "*.leases", holder))
	if err != nil {
		return err
	}
	var errs []error
	for _, l := range leases {
		if err := os.Remove(l); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		_ = os.Remove(filepath.Dir(l)) // only if it was the last lease (under the lock)
		errs = append(errs, m.removeIfUnused(strings.TrimSuffix(filepath.Dir(l), ".leases")))
	}
	return errors.Join(errs...)
}

// ReconcileLeases drops the leases of holders that are not live (sandboxes
// that did not survive a restart) and removes retired trees left unused.
func (m *Manager) ReconcileLeases(live func(holder string) bool) error {
	unlock, err := m.lockLeases()
	if err != nil {
		return err
	}
	defer unlock()
	dirs, err := filepath.Glob(filepath.Join(m.templatesDir(), "*", "*.leases"))
	if err != nil {
		return err
	}
	var errs []error
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if !live(e.Name()) && !buildAlive(e.Name()) {
				m.log.Info("dropping the lease of a sandbox that is gone", "rootfs", strings.TrimSuffix(d, ".leases"), "sandbox", e.Name())
				if err := os.Remove(filepath.Join(d, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	marks, err := filepath.Glob(filepath.Join(m.templatesDir(), "*", "*.retired"))
	if err != nil {
		return err
	}
	for _, mark := range marks {
		errs = append(errs, m.removeIfUnused(strings.TrimSuffix(mark, ".retired")))
	}
	return errors.Join(errs...)
}

// retire removes rootfs now if no sandbox holds a lease on it, or marks it
// for removal by the last release. It reports whether the tree is gone.
func (m *Manager) retire(rootfs string) (gone bool, err error) {
	rootfs = filepath.Clean(rootfs)
	if err := m.checkRootfs(rootfs); err != nil {
		return false, err
	}
	unlock, err := m.lockLeases()
	if err != nil {
		return false, err
	}
	defer unlock()
	if leased(rootfs) {
		if err := os.WriteFile(retiredMark(rootfs), nil, 0o600); err != nil {
			return false, fmt.Errorf("template: retire %s: %w", rootfs, err)
		}
		m.log.Info("template rootfs retired; removed when its last sandbox is gone", "rootfs", rootfs)
		return false, nil
	}
	if err := m.removeRootfs(rootfs); err != nil {
		return false, err
	}
	return true, nil
}

// removeIfUnused removes a retired tree without leases. Callers hold the
// leases lock.
func (m *Manager) removeIfUnused(rootfs string) error {
	if _, err := os.Lstat(retiredMark(rootfs)); err != nil || leased(rootfs) {
		return nil
	}
	m.log.Info("removing retired template rootfs: its last sandbox is gone", "rootfs", rootfs)
	if err := m.removeRootfs(rootfs); err != nil {
		return err
	}
	// A deleted template's directory goes with its last tree.
	_ = os.Remove(filepath.Dir(rootfs))
	return nil
}

// removeRootfs deletes a tree with its leases dir and retired mark.
func (m *Manager) removeRootfs(rootfs string) error {
	if err := removeTree(rootfs); err != nil {
		return err
	}
	_ = os.RemoveAll(leasesDir(rootfs))
	if err := os.Remove(retiredMark(rootfs)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func leased(rootfs string) bool {
	entries, err := os.ReadDir(leasesDir(rootfs))
	return err == nil && len(entries) > 0
}

// buildHolder names the lease a template build in this process holds on
// its source tree while the build sandbox runs on it.
func buildHolder() string { return "build-" + strconv.Itoa(os.Getpid()) }

// buildHolderFor is the lease holder of one of several builds running in
// this process at once: each releases only its own lease.
func buildHolderFor(id string) string { return buildHolder() + "-" + id }

// buildAlive says whether holder is the lease of a build whose process
// still runs (a reused pid only keeps a tree longer).
func buildAlive(holder string) bool {
	pid, ok := strings.CutPrefix(holder, "build-")
	if !ok {
		return false
	}
	pid, _, _ = strings.Cut(pid, "-")
	if _, err := strconv.Atoi(pid); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join("/proc", pid))
	return err == nil
}
