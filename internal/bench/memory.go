package bench

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// meminfo returns one /proc/meminfo field in KiB.
func meminfo(field string) (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
	}
	return 0, fmt.Errorf("meminfo: no field %s", field)
}

// cgroupMemory sums, over the given sandbox cgroups, the PSS and RSS of
// their processes and the cgroups' own memory.current (all KiB).
func cgroupMemory(cgroups []string) (pss, rss, current int64) {
	for _, cg := range cgroups {
		if b, err := os.ReadFile(filepath.Join(cg, "memory.current")); err == nil {
			if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
				current += v / 1024
			}
		}
		for _, pid := range cgroupPIDs(cg) {
			p, r := processMemory(pid)
			pss += p
			rss += r
		}
	}
	return pss, rss, current
}

// cgroupPIDs lists the processes of a cgroup and its children.
func cgroupPIDs(cg string) []string {
	var pids []string
	_ = filepath.WalkDir(cg, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		pids = append(pids, strings.Fields(string(b))...)
		return nil
	})
	return pids
}

// processMemory reads a process's PSS and RSS from smaps_rollup (KiB).
func processMemory(pid string) (pss, rss int64) {
	f, err := os.Open(filepath.Join("/proc", pid, "smaps_rollup"))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "Pss:":
			pss = v
		case "Rss:":
			rss = v
		}
	}
	return pss, rss
}

// sandboxCgroups finds the cgroups of the containers a server runs, by the
// bundle directories under its data dir (DATA/sandboxes/<container id>).
func sandboxCgroups(dataDir string) []string {
	entries, err := os.ReadDir(filepath.Join(dataDir, "sandboxes"))
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		for _, cg := range []string{"/sys/fs/cgroup/airlock/" + e.Name(), "/sys/fs/cgroup/memory/airlock/" + e.Name()} {
			if _, err := os.Stat(cg); err == nil {
				out = append(out, cg)
				break
			}
		}
	}
	return out
}
