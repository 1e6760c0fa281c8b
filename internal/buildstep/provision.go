package buildstep

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/airlock-sandbox/airlock/internal/loginpath"
)

// The account E2B's sandboxes run commands as, added to images that lack it.
const (
	sandboxUser = "user"
	sandboxHome = "/home/user"
	firstUID    = 1000
)

// provision makes an image's tree a sandbox's: the user "user" with a home
// and passwordless sudo where sudo exists, a hostname, hosts and a
// resolv.conf file for the runtime to mount over, and a login profile that
// keeps the PATH envd gives. It runs as the first step of a build from an
// image, inside the build sandbox, so the image's files are never edited
// by the host.
func (h *helper) provision(args []string) error {
	fs := flag.NewFlagSet("provision", flag.ContinueOnError)
	if _, err := parse(fs, args, 0, "provision"); err != nil {
		return err
	}
	steps := []struct {
		name string
		fn   func() error
	}{
		{"user", h.addSandboxUser},
		{"hostname", func() error { return h.writeIfMissing("/etc/hostname", 0o644, "sandbox\n") }},
		{"hosts", func() error {
			return h.writeIfMissing("/etc/hosts", 0o644, "127.0.0.1\tlocalhost\n127.0.1.1\tsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n")
		}},
		{"resolv.conf", h.resolvConf},
		{"profile", h.profile},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fail(exitHelper, "provision %s: %v", s.name, err)
		}
	}
	return nil
}

func (h *helper) addSandboxUser() error {
	if err := os.MkdirAll(h.host("/etc"), 0o755); err != nil {
		return err
	}
	passwd, err := h.readLines("/etc/passwd", "root:x:0:0:root:/root:/bin/sh")
	if err != nil {
		return err
	}
	uid := -1
	used := map[int]bool{}
	for _, l := range passwd {
		f := strings.Split(l, ":")
		if len(f) < 4 {
			continue
		}
		n, _ := strconv.Atoi(f[2])
		used[n] = true
		if f[0] == sandboxUser {
			uid, _ = strconv.Atoi(f[2])
		}
	}
	shell := "/bin/sh"
	if _, err := os.Stat(h.host("/bin/bash")); err == nil {
		shell = "/bin/bash"
	}
	created := uid < 0
	if created {
		for uid = firstUID; used[uid]; uid++ {
		}
		passwd = append(passwd, fmt.Sprintf("%s:x:%d:%d::%s:%s", sandboxUser, uid, uid, sandboxHome, shell))
		if err := h.writeLines("/etc/passwd", 0o644, passwd); err != nil {
			return err
		}
	}
	if err := h.addGroupEntry("/etc/group", fmt.Sprintf("%s:x:%d:", sandboxUser, uid), 3, true); err != nil {
		return err
	}
	if err := h.addGroupEntry("/etc/gshadow", sandboxUser+":!::", 3, false); err != nil {
		return err
	}
	if _, err := os.Stat(h.host("/etc/shadow")); err == nil {
		lines, err := h.readLines("/etc/shadow", "")
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, sandboxUser+":") }) {
			if err := h.writeLines("/etc/shadow", 0o640, append(lines, sandboxUser+":*:19000:0:99999:7:::")); err != nil {
				return err
			}
		}
	}
	if st, err := os.Stat(h.host("/etc/sudoers.d")); err == nil && st.IsDir() {
		if err := h.writeIfMissing("/etc/sudoers.d/"+sandboxUser, 0o440, sandboxUser+" ALL=(ALL:ALL) NOPASSWD: ALL\n"); err != nil {
			return err
		}
	}
	home := h.host(sandboxHome)
	if _, err := os.Lstat(home); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(home, 0o750); err != nil {
			return err
		}
		if err := os.Chown(home, uid, uid); err != nil {
			return err
		}
		skel, _ := os.ReadDir(h.host("/etc/skel"))
		for _, e := range skel {
			if !e.Type().IsRegular() {
				continue
			}
			b, err := os.ReadFile(filepath.Join(h.host("/etc/skel"), e.Name()))
			if err != nil {
				return err
			}
			dst := filepath.Join(home, e.Name())
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				return err
			}
			if err := os.Chown(dst, uid, uid); err != nil {
				return err
			}
		}
	}
	return nil
}

// addGroupEntry adds line to a group file unless the user's group is
// there, and the user to the sudo group's members (field membersField).
// A missing file is created only when create is set.
func (h *helper) addGroupEntry(file, line string, membersField int, create bool) error {
	if _, err := os.Stat(h.host(file)); err != nil && !create {
		return nil
	}
	def := ""
	if create {
		def = "root:x:0:"
	}
	lines, err := h.readLines(file, def)
	if err != nil {
		return err
	}
	have := false
	for i, l := range lines {
		f := strings.Split(l, ":")
		if f[0] == sandboxUser {
			have = true
		}
		if f[0] == "sudo" && len(f) > membersField {
			members := strings.FieldsFunc(f[membersField], func(r rune) bool { return r == ',' })
			if !slices.Contains(members, sandboxUser) {
				f[membersField] = strings.Join(append(members, sandboxUser), ",")
				lines[i] = strings.Join(f, ":")
			}
		}
	}
	if !have {
		lines = append(lines, line)
	}
	mode := fs.FileMode(0o644)
	if strings.HasSuffix(file, "gshadow") {
		mode = 0o640
	}
	return h.writeLines(file, mode, lines)
}

// resolvConf leaves a regular /etc/resolv.conf for the runtime's bind
// mount: images often have a symlink into /run there.
func (h *helper) resolvConf() error {
	p := h.host("/etc/resolv.conf")
	st, err := os.Lstat(p)
	if err == nil && st.Mode().IsRegular() {
		return nil
	}
	if err == nil {
		if err := os.RemoveAll(p); err != nil {
			return err
		}
	}
	return os.WriteFile(p, nil, 0o644)
}

func (h *helper) profile() error {
	p := h.host("/etc/profile")
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if out, ok := loginpath.Patch(b); ok {
		return os.WriteFile(p, out, 0o644)
	}
	return nil
}

// readLines reads a file's lines; a missing file reads as def (one line,
// or none when def is "").
func (h *helper) readLines(file, def string) ([]string, error) {
	b, err := os.ReadFile(h.host(file))
	if errors.Is(err, fs.ErrNotExist) {
		if def == "" {
			return nil, nil
		}
		return []string{def}, nil
	}
	if err != nil {
		return nil, err
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}

// writeLines replaces a file with lines, keeping its mode if it exists.
func (h *helper) writeLines(file string, mode fs.FileMode, lines []string) error {
	p := h.host(file)
	if st, err := os.Stat(p); err == nil {
		mode = st.Mode().Perm()
	}
	tmp := p + ".airlock-tmp"
	if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func (h *helper) writeIfMissing(file string, mode fs.FileMode, content string) error {
	p := h.host(file)
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(content), mode)
}
