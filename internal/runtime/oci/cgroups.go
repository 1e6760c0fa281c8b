package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/internal/mountinfo"
	"github.com/airlock-sandbox/airlock/internal/runtime"
)

type cgroupMode string

const (
	cgroupV1     cgroupMode = "v1"
	cgroupV2     cgroupMode = "v2"
	cgroupHybrid cgroupMode = "hybrid" // v1 controllers plus an (often empty) v2 tree
)

// cgroupLayout is where each hierarchy is mounted on this host.
type cgroupLayout struct {
	mode cgroupMode
	// v1 maps a controller ("memory", "cpuacct", "pids", ...) to its mount point.
	v1 map[string]string
	// v2 is the cgroup2 mount point ("" if none).
	v2 string
	// all is every cgroup mount point, for removing leftovers.
	all []string
}

const cgroupRoot = "/sys/fs/cgroup"

func detectCgroups() (cgroupLayout, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(cgroupRoot, &st); err != nil {
		return cgroupLayout{}, fmt.Errorf("oci: statfs %s: %w", cgroupRoot, err)
	}
	l := cgroupLayout{v1: map[string]string{}}
	mounts, err := cgroupMounts()
	if err != nil {
		return l, err
	}
	for _, m := range mounts {
		l.all = append(l.all, m.dir)
		if m.fstype == "cgroup2" {
			l.v2 = m.dir
			continue
		}
		for _, opt := range strings.Split(m.opts, ",") {
			switch opt {
			case "cpu", "cpuacct", "cpuset", "memory", "pids", "freezer", "devices", "blkio", "hugetlb", "net_cls", "net_prio", "perf_event", "rdma", "misc":
				l.v1[opt] = m.dir
			}
		}
	}
	switch {
	case st.Type == unix.CGROUP2_SUPER_MAGIC:
		l.mode = cgroupV2
	case l.v2 != "":
		l.mode = cgroupHybrid
	default:
		l.mode = cgroupV1
	}
	if l.mode != cgroupV2 && l.v1["memory"] == "" {
		return l, errors.New("oci: cgroup v1 without a memory controller mount")
	}
	return l, nil
}

type cgroupMount struct{ dir, fstype, opts string }

// cgroupMounts lists the cgroup and cgroup2 mounts.
func cgroupMounts() ([]cgroupMount, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	var out []cgroupMount
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, cgroupMount{dir: m.Point, fstype: m.FSType, opts: m.SuperOpts})
		}
	}
	return out, nil
}

// cgroupsPath is the absolute path inside each hierarchy. Absolute so that
// runc does not nest it under the server's own cgroup.
func (d *Driver) cgroupsPath(id string) string {
	return "/" + d.cfg.CgroupParent + "/" + id
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	return strconv.ParseUint(s, 10, 64)
}

// readKV reads one key of a flat "key value" cgroup file (memory.stat, cpu.stat).
func readKV(path, key string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && k == key {
			return strconv.ParseUint(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no key %q", path, key)
}

// stats reads usage straight from the cgroup files: much cheaper than
// `runtime events --stats`, which forks a Go binary per sample.
func (l cgroupLayout) stats(path string) (runtime.Stats, error) {
	var s runtime.Stats
	var err error
	if l.mode == cgroupV2 {
		dir := filepath.Join(l.v2, path)
		if _, err := os.Stat(dir); err != nil {
			return s, err
		}
		usec, _ := readKV(filepath.Join(dir, "cpu.stat"), "usage_usec")
		s.CPUUsageNanos = usec * 1000
		s.MemoryBytes, _ = readUint(filepath.Join(dir, "memory.current"))
		s.MemoryLimit, _ = readUint(filepath.Join(dir, "memory.max"))
		s.MemoryCache, _ = readKV(filepath.Join(dir, "memory.stat"), "file")
		s.Pids, _ = readUint(filepath.Join(dir, "pids.current"))
		return s, nil
	}
	mem := filepath.Join(l.v1["memory"], path)
	if s.MemoryBytes, err = readUint(filepath.Join(mem, "memory.usage_in_bytes")); err != nil {
		return s, err
	}
	s.MemoryLimit, _ = readUint(filepath.Join(mem, "memory.limit_in_bytes"))
	s.MemoryCache, _ = readKV(filepath.Join(mem, "memory.stat"), "total_cache")
	if dir := l.v1["cpuacct"]; dir != "" {
		s.CPUUsageNanos, _ = readUint(filepath.Join(dir, path, "cpuacct.usage"))
	}
	if dir := l.v1["pids"]; dir != "" {
		s.Pids, _ = readUint(filepath.Join(dir, path, "pids.current"))
	}
	return s, nil
}

// remove deletes the sandbox's cgroup directories in every hierarchy,
// children first. Cgroup dirs can only be rmdir'ed, never unlinked.
func (l cgroupLayout) remove(path string) error {
	var errs []error
	for _, mnt := range l.all {
		dir := filepath.Join(mnt, path)
		if _, err := os.Stat(dir); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if err := unix.Rmdir(dirs[i]); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], err))
			}
		}
	}
	return errors.Join(errs...)
}

// exists reports whether any hierarchy still has the path.
func (l cgroupLayout) exists(path string) bool {
	for _, mnt := range l.all {
		if _, err := os.Stat(filepath.Join(mnt, path)); err == nil {
			return true
		}
	}
	return false
}

// prepareCpuset makes the sandboxes' parent in the v1 cpuset hierarchy
// usable: a v1 cpuset starts with no CPUs and no memory nodes, and a child
// may only take what its parent has. runc fills new levels from their
// parent itself; runsc does not, and fails to set a sandbox's cpuset under
// an empty parent.
func (l cgroupLayout) prepareCpuset(parent string) error {
	root, ok := l.v1["cpuset"]
	if !ok {
		return nil
	}
	dir := root
	for _, part := range strings.Split(parent, "/") {
		up := dir
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("oci: cpuset parent: %w", err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				return fmt.Errorf("oci: cpuset parent: %w", err)
			}
			if strings.TrimSpace(string(cur)) != "" {
				continue
			}
			from, err := os.ReadFile(filepath.Join(up, f))
			if err != nil {
				return fmt.Errorf("oci: cpuset parent: %w", err)
			}
			if err := os.WriteFile(filepath.Join(dir, f), from, 0o644); err != nil {
				return fmt.Errorf("oci: cpuset parent %s: %w", f, err)
			}
		}
	}
	return nil
}
