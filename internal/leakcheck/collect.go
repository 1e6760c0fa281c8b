package leakcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/airlock-sandbox/airlock/internal/mountinfo"
)

// mounts reads /proc/self/mountinfo. Items name the mount point and type,
// not the mount ID, so a re-mount at the same place after a test counts as
// the same (a leak is something that is still there).
func mounts(o Options) ([]string, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if (m.FSType == "overlay" && !o.RootsOnly) || under(m.Point, o.MountRoots) {
			out = append(out, fmt.Sprintf("mount %s (%s)", m.Point, m.FSType))
		}
	}
	return out, nil
}

// loops lists loop devices backed by files below MountRoots, or by any
// sandbox disk image (named disk.img) wherever it lives.
func loops(o Options) ([]string, error) {
	files, err := filepath.Glob("/sys/block/loop*/loop/backing_file")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue // detached since the glob
		}
		backing := strings.TrimSuffix(strings.TrimSpace(string(data)), " (deleted)")
		if under(backing, o.MountRoots) || (filepath.Base(backing) == "disk.img" && !o.RootsOnly) {
			dev := filepath.Base(filepath.Dir(filepath.Dir(f)))
			out = append(out, fmt.Sprintf("loop %s (%s)", dev, backing))
		}
	}
	return out, nil
}

func under(p string, roots []string) bool {
	for _, r := range roots {
		r = filepath.Clean(r)
		if r != "" && (p == r || strings.HasPrefix(p, r+"/")) {
			return true
		}
	}
	return false
}

func netns(o Options) ([]string, error) {
	if o.NetnsPrefix == "" {
		return nil, nil
	}
	entries, err := os.ReadDir("/run/netns")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), o.NetnsPrefix) {
			out = append(out, "netns "+e.Name())
		}
	}
	return out, nil
}

// links lists host-namespace interfaces via sysfs (no netlink needed).
func links(o Options) ([]string, error) {
	entries, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if hasAnyPrefix(e.Name(), o.LinkPrefixes) {
			out = append(out, "link "+e.Name())
		}
	}
	return out, nil
}

// cgroups lists every directory below each parent in every hierarchy
// (v1 controllers and the v2 tree alike), but not the parents themselves:
// those are shared and may stay.
func cgroups(o Options) ([]string, error) {
	roots, err := cgroupMountPoints()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, root := range roots {
		for _, parent := range o.CgroupParents {
			base := filepath.Join(root, parent)
			_ = filepath.WalkDir(base, func(p string, e fs.DirEntry, err error) error {
				if err != nil || !e.IsDir() || p == base {
					return nil
				}
				out = append(out, "cgroup "+p)
				return nil
			})
		}
	}
	return out, nil
}

func cgroupMountPoints() ([]string, error) {
	ms, err := mountinfo.Read()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range ms {
		if m.FSType == "cgroup" || m.FSType == "cgroup2" {
			out = append(out, m.Point)
		}
	}
	return out, nil
}

// processes lists processes that run one of the named binaries or live in
// a cgroup below one of the parents. The start time is part of the item so
// a recycled PID is not mistaken for the old process.
func processes(o Options) ([]string, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		raw, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || len(raw) == 0 {
			continue // gone, or a kernel thread
		}
		argv := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		match := mentions(argv, o.ProcessNames) || containsAny(string(raw), o.ProcessArgs)
		if !match {
			cg, _ := os.ReadFile(filepath.Join(dir, "cgroup"))
			match = inCgroup(string(cg), o.CgroupParents)
		}
		if match {
			out = append(out, fmt.Sprintf("process %d [%s] %s", pid, startTime(dir), strings.Join(argv, " ")))
		}
	}
	return out, nil
}

func mentions(argv, names []string) bool {
	for _, a := range argv {
		base := filepath.Base(a)
		for _, n := range names {
			if base == n || strings.HasPrefix(base, n+"-") {
				return true
			}
		}
	}
	return false
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if sub != "" && strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// inCgroup reports whether any line of /proc/PID/cgroup is below a parent.
func inCgroup(cg string, parents []string) bool {
	for _, line := range strings.Split(cg, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, p := range parents {
			if p != "" && strings.HasPrefix(parts[2], "/"+p+"/") {
				return true
			}
		}
	}
	return false
}

func startTime(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return "?"
	}
	// Field 22 (starttime) comes after the parenthesised comm, which may
	// itself contain spaces.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		if f := strings.Fields(s[i+1:]); len(f) > 19 {
			return f[19]
		}
	}
	return "?"
}

// nftables lists tables and chains with the prefix and the rules inside
// those chains, using the nft CLI. A host without nft has no nftables
// objects Airlock could have made through it, so that is not an error.
func nftables(o Options) ([]string, error) {
	if o.NftPrefix == "" {
		return nil, nil
	}
	bin, err := exec.LookPath("nft")
	if err != nil {
		return nil, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-a", "list", "ruleset")
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nft list ruleset: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return parseRuleset(string(outb), o.NftPrefix), nil
}

// parseRuleset walks `nft -a list ruleset` output, tracking the current
// table and chain by their headers and closing braces.
func parseRuleset(text, prefix string) []string {
	var out []string
	var table, chain string
	depth := 0
	for _, raw := range strings.Split(text, "\n") {
		line := strings.TrimSpace(raw)
		// Headers carry "# handle N" after the brace with -a.
		hdr, _, _ := strings.Cut(line, " #")
		hdr = strings.TrimSpace(hdr)
		f := strings.Fields(hdr)
		switch {
		case len(f) >= 3 && f[0] == "table" && strings.HasSuffix(hdr, "{"):
			table = f[1] + " " + f[2]
			depth = 1
			if strings.HasPrefix(f[2], prefix) {
				out = append(out, "nft table "+table)
			}
		case len(f) >= 2 && f[0] == "chain" && strings.HasSuffix(hdr, "{") && depth == 1:
			chain = f[1]
			depth = 2
			if strings.HasPrefix(chain, prefix) {
				out = append(out, "nft chain "+table+" "+chain)
			}
		case hdr == "}":
			depth--
			if depth <= 1 {
				chain = ""
			}
		case depth == 2 && chain != "" && strings.Contains(line, "# handle "):
			tname := table[strings.IndexByte(table, ' ')+1:]
			if strings.HasPrefix(chain, prefix) || strings.HasPrefix(tname, prefix) || strings.Contains(line, prefix) {
				out = append(out, "nft rule "+table+" "+chain+": "+line)
			}
		}
	}
	return out
}
