package template

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/loginpath"
)

// The unprivileged user sandboxes run commands as, matching E2B templates.
const (
	sandboxUser = "user"
	sandboxUID  = 1000
	sandboxHome = "/home/user"
	hostname    = "sandbox"
)

// configureRootfs turns a fresh Debian tree into a sandbox template by
// editing files directly (no chroot), then trims caches.
func configureRootfs(root string, src aptSources, suite string) error {
	steps := []struct {
		name string
		fn   func() error
	}{
		{"user", func() error { return addUser(root) }},
		{"sudoers", func() error {
			return writeFile(root, "etc/sudoers.d/"+sandboxUser, 0o440,
				sandboxUser+" ALL=(ALL:ALL) NOPASSWD: ALL\n")
		}},
		{"locale", func() error {
			if err := writeFile(root, "etc/default/locale", 0o644, "LANG=C.UTF-8\n"); err != nil {
				return err
			}
			return writeFile(root, "etc/profile.d/airlock.sh", 0o644,
				"# Set by Airlock: C.UTF-8 is built into glibc, no locales package needed.\nexport LANG=C.UTF-8\n")
		}},
		{"profile", func() error { return keepPath(root) }},
		{"hostname", func() error {
			if err := writeFile(root, "etc/hostname", 0o644, hostname+"\n"); err != nil {
				return err
			}
			return writeFile(root, "etc/hosts", 0o644, "127.0.0.1\tlocalhost\n127.0.1.1\t"+hostname+
				"\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
		}},
		// The runtime bind-mounts the real one; an empty regular file is the mount target.
		{"resolv.conf", func() error { return writeFile(root, "etc/resolv.conf", 0o644, "") }},
		{"apt sources", func() error { return writeSources(root, src, suite) }},
		// Sandboxes are disposable: let `pip install` work without --break-system-packages.
		{"pip", func() error { return removeGlob(root, "usr/lib/python3*/EXTERNALLY-MANAGED") }},
		{"clean", func() error { return cleanCaches(root) }},
		{"docs", func() error { return trimDocs(root) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("configure %s: %w", s.name, err)
		}
	}
	return nil
}

// addUser adds the sandbox user to passwd, group, shadow and gshadow, puts it
// in the sudo group and creates its home from /etc/skel.
func addUser(root string) error {
	uid := strconv.Itoa(sandboxUID)
	days := strconv.FormatInt(time.Now().Unix()/86400, 10)
	edits := []struct {
		file string
		line string // added unless an entry for the user exists
		sudo int    // field index of the sudo group's member list, -1 for none
	}{
		{"etc/passwd", sandboxUser + ":x:" + uid + ":" + uid + "::" + sandboxHome + ":/bin/bash", -1},
		{"etc/group", sandboxUser + ":x:" + uid + ":", 3},
		{"etc/shadow", sandboxUser + ":*:" + days + ":0:99999:7:::", -1},
		{"etc/gshadow", sandboxUser + ":!::", 3},
	}
	for _, e := range edits {
		if err := editEntries(root, e.file, e.line, e.sudo); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "root"), 0o700); err != nil {
		return err
	}
	home := filepath.Join(root, sandboxHome)
	if err := os.MkdirAll(home, 0o750); err != nil {
		return err
	}
	skel := filepath.Join(root, "etc/skel")
	entries, err := os.ReadDir(skel)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := copyFile(filepath.Join(skel, e.Name()), filepath.Join(home, e.Name())); err != nil {
			return err
		}
		if err := os.Lchown(filepath.Join(home, e.Name()), sandboxUID, sandboxUID); err != nil {
			return err
		}
	}
	return os.Lchown(home, sandboxUID, sandboxUID)
}

// editEntries adds line to a colon-separated account file unless the user
// already has an entry, and when sudoField ≥ 0 adds the user to the member
// list (that field) of the "sudo" group.
func editEntries(root, rel, line string, sudoField int) error {
	path := filepath.Join(root, rel)
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	have := false
	for i, l := range lines {
		fields := strings.Split(l, ":")
		if fields[0] == sandboxUser {
			have = true
		}
		if sudoField >= 0 && fields[0] == "sudo" && len(fields) > sudoField {
			members := strings.FieldsFunc(fields[sudoField], func(r rune) bool { return r == ',' })
			if !slices.Contains(members, sandboxUser) {
				fields[sudoField] = strings.Join(append(members, sandboxUser), ",")
				lines[i] = strings.Join(fields, ":")
			}
		}
	}
	if !have {
		lines = append(lines, line)
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	return writeFile(root, rel, info.Mode().Perm(), strings.Join(lines, "\n")+"\n")
}

// writeSources replaces debootstrap's one-line sources.list with a deb822
// file that also has the updates and security suites.
func writeSources(root string, src aptSources, suite string) error {
	if err := os.Remove(filepath.Join(root, "etc/apt/sources.list")); err != nil && !os.IsNotExist(err) {
		return err
	}
	const keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
	content := fmt.Sprintf("Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\nSigned-By: %s\n\n"+
		"Types: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: %s\n",
		src.Archive, suite, suite, keyring, src.Security, suite, keyring)
	return writeFile(root, "etc/apt/sources.list.d/debian.sources", 0o644, content)
}

// cleanCaches does what `apt-get clean` does and drops the package lists,
// which sandboxes refresh with `apt-get update` when they need them.
func cleanCaches(root string) error {
	for _, pattern := range []string{
		"var/cache/apt/archives/*.deb",
		"var/cache/apt/archives/partial/*",
		"var/cache/apt/*.bin",
		"var/lib/apt/lists/*",
		"debootstrap",
	} {
		if err := removeGlob(root, pattern); err != nil {
			return err
		}
	}
	return os.MkdirAll(filepath.Join(root, "var/lib/apt/lists/partial"), 0o700)
}

// trimDocs removes the documentation that dpkg's path-exclude rules (see
// dpkgConfig) keep out of later installs but that debootstrap's first stage
// extracted anyway. Copyright files and locale.alias stay.
func trimDocs(root string) error {
	for _, dir := range []string{"usr/share/man", "usr/share/info", "usr/share/locale"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil && !os.IsNotExist(err) {
			return err
		}
		for _, e := range entries {
			if e.Name() == "locale.alias" {
				continue
			}
			if err := os.RemoveAll(filepath.Join(root, dir, e.Name())); err != nil {
				return err
			}
		}
	}
	docs := filepath.Join(root, "usr/share/doc")
	err := filepath.WalkDir(docs, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && d.Name() != "copyright" {
			return os.Remove(path)
		}
		return nil
	})
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

func removeGlob(root, pattern string) error {
	matches, err := filepath.Glob(filepath.Join(root, pattern))
	if err != nil {
		return err
	}
	for _, m := range matches {
		if err := os.RemoveAll(m); err != nil {
			return err
		}
	}
	return nil
}

// writeFile replaces root/rel with content. It removes what was there first,
// so a symlink inside the rootfs can never redirect the write onto the host.
func writeFile(root, rel string, perm os.FileMode, content string) error {
	path := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Chmod(path, perm) // umask may have narrowed it
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, info.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// keepPath makes Debian's /etc/profile keep the PATH a login shell
// starts with (internal/loginpath).
func keepPath(root string) error {
	p := filepath.Join(root, "etc", "profile")
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	out, ok := loginpath.Patch(b)
	if !ok {
		return fmt.Errorf("%s: Debian's PATH block not found", p)
	}
	return os.WriteFile(p, out, 0o644)
}
