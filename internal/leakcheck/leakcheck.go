// Package leakcheck snapshots host resources Airlock could leak (mounts,
// loop devices, network namespaces, links, cgroups, processes, nftables objects) so tests
// can assert that everything they created is gone again.
package leakcheck

import (
	"fmt"
	"sort"
	"strings"
)

// Options say what to look at. The zero value is not useful; start from
// DefaultOptions.
type Options struct {
	// MountRoots: mounts at or below these paths are tracked, as are all
	// mounts of type overlay anywhere.
	MountRoots []string
	// RootsOnly drops the "anywhere" parts (every overlay mount, every
	// sandbox disk image): for tests with private roots that run beside
	// other packages' tests making sandboxes of their own.
	RootsOnly bool
	// NetnsPrefix: named network namespaces in /run/netns with this prefix.
	NetnsPrefix string
	// LinkPrefixes: network links in the host namespace with these prefixes.
	LinkPrefixes []string
	// CgroupParents: children of these directories in every cgroup
	// hierarchy, and processes whose cgroup lies below them.
	CgroupParents []string
	// ProcessNames: processes whose argv mentions one of these binaries.
	ProcessNames []string
	// ProcessArgs: processes whose command line contains one of these
	// substrings (e.g. a test's private state directory).
	ProcessArgs []string
	// NftPrefix: nftables tables and chains whose names start with it.
	NftPrefix string
}

// DefaultOptions matches what Airlock's runtime and network packages create.
func DefaultOptions() Options {
	return Options{
		MountRoots:    []string{"/run/airlock", "/var/lib/airlock"},
		NetnsPrefix:   "airlock",
		LinkPrefixes:  []string{"al", "airlock"},
		CgroupParents: []string{"airlock"},
		ProcessNames:  []string{"runc", "runsc", "envd", "lxcfs"},
		NftPrefix:     "airlock",
	}
}

// State is one snapshot: a set of human-readable item descriptions by kind.
type State struct {
	opts  Options
	items map[string]bool
}

// Snapshot captures the host with DefaultOptions.
func Snapshot() (*State, error) { return SnapshotWith(DefaultOptions()) }

// SnapshotWith captures the host with the given options.
func SnapshotWith(o Options) (*State, error) {
	s := &State{opts: o, items: map[string]bool{}}
	collectors := []struct {
		name string
		fn   func(Options) ([]string, error)
	}{
		{"mounts", mounts},
		{"loops", loops},
		{"netns", netns},
		{"links", links},
		{"cgroups", cgroups},
		{"processes", processes},
		{"nftables", nftables},
	}
	for _, c := range collectors {
		items, err := c.fn(o)
		if err != nil {
			return nil, fmt.Errorf("leakcheck: %s: %w", c.name, err)
		}
		for _, it := range items {
			s.items[it] = true
		}
	}
	return s, nil
}

// Items lists everything in the snapshot, sorted.
func (s *State) Items() []string {
	out := make([]string, 0, len(s.items))
	for it := range s.items {
		out = append(out, it)
	}
	sort.Strings(out)
	return out
}

// Diff lists the items present in after but not in s: the leaks.
func (s *State) Diff(after *State) []string {
	var out []string
	for it := range after.items {
		if !s.items[it] {
			out = append(out, it)
		}
	}
	sort.Strings(out)
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if p != "" && strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
