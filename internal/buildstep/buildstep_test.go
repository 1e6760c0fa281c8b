package buildstep

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/roottest"
)

// call runs an operation with the sandbox's "/" at root.
func call(t *testing.T, root string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = (&helper{root: root, stdout: &o, stderr: &e}).main(args)
	return code, o.String(), e.String()
}

func lastLine(s string) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return l[len(l)-1]
}

// wantFail checks an operation failed with code and a last line
// containing want.
func wantFail(t *testing.T, code int, stderr string, wantCode int, want string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("exit status %d, want %d (stderr %q)", code, wantCode, stderr)
	}
	ll := lastLine(stderr)
	if !strings.HasPrefix(ll, "airlock-build: ") || !strings.Contains(ll, want) {
		t.Errorf("last stderr line %q, want airlock-build: ...%s...", ll, want)
	}
}

func me(t *testing.T) string {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

type ent struct {
	name, body, link string
	typ              byte
	mode             int64
}

func file(name, body string, mode int64) ent {
	return ent{name: name, body: body, typ: tar.TypeReg, mode: mode}
}
func dir(name string) ent { return ent{name: name, typ: tar.TypeDir, mode: 0o755} }
func symlink(name, target string) ent {
	return ent{name: name, link: target, typ: tar.TypeSymlink, mode: 0o777}
}

// archive writes entries as a tar (gzipped if gz) under root and returns
// its sandbox path.
func archive(t *testing.T, root string, gz bool, ents ...ent) string {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	if gz {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		if _, err := zw.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		data = z.Bytes()
	}
	if err := os.MkdirAll(filepath.Join(root, ".airlock-build/files"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := fmt.Sprintf("/.airlock-build/files/%d", time.Now().UnixNano())
	if err := os.WriteFile(filepath.Join(root, p), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func permOf(t *testing.T, p string) fs.FileMode {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestStaticPrefix(t *testing.T) {
	for _, c := range []struct {
		src, prefix string
		glob        bool
	}{
		{"folder/*.txt", "folder", true},
		{"*.txt", "", true},
		{"**/*.ts", "", true},
		{"a/b/c?.go", "a/b", true},
		{"src/[ab]/x", "src", true},
		{"src/{a,b}", "src", true},
		{".", "", false},
		{"./folder/", "folder", false},
		{"folder/sub", "folder/sub", false},
		{"a.txt", "a.txt", false},
	} {
		p, g := staticPrefix(c.src)
		if p != c.prefix || g != c.glob {
			t.Errorf("staticPrefix(%q) = %q, %v; want %q, %v", c.src, p, g, c.prefix, c.glob)
		}
	}
}

func TestPlanTarget(t *testing.T) {
	type m struct{ name, want string } // want "" means skipped
	for _, c := range []struct {
		what string
		p    plan
		m    []m
	}{
		{"file to file", plan{prefix: "a.txt", single: true, dest: "/app/b.txt"},
			[]m{{"a.txt", "/app/b.txt"}, {"other", ""}}},
		{"file into dir", plan{prefix: "folder/a.txt", single: true, dest: "/app", destDir: true},
			[]m{{"folder/a.txt", "/app/a.txt"}, {"folder", ""}}},
		{"dir contents", plan{prefix: "folder", dest: "/app"},
			[]m{{"folder", "/app"}, {"folder/a.txt", "/app/a.txt"}, {"folder/sub/b.txt", "/app/sub/b.txt"}, {"folderx/c", ""}, {"other", ""}, {"", ""}}},
		{"glob below prefix", plan{prefix: "folder", dest: "/app"},
			[]m{{"folder/a.txt", "/app/a.txt"}, {"folder/sub/b.txt", "/app/sub/b.txt"}}},
		{"glob from the top", plan{prefix: "", dest: "/app"},
			[]m{{"src/x.ts", "/app/src/x.ts"}, {"y.ts", "/app/y.ts"}}},
		{"whole context", plan{prefix: "", dest: "/"},
			[]m{{"", "/"}, {"a", "/a"}, {"d/e", "/d/e"}}},
	} {
		for _, mm := range c.m {
			got, ok := c.p.target(mm.name)
			if !ok {
				got = ""
			}
			if got != mm.want {
				t.Errorf("%s: target(%q) = %q, %v; want %q", c.what, mm.name, got, ok, mm.want)
			}
		}
	}
}

func TestEntryName(t *testing.T) {
	for n, want := range map[string]string{"./a/b": "a/b", "a/": "a", "./": "", ".": "", "a//b/./c": "a/b/c"} {
		if got, err := entryName(n); err != nil || got != want {
			t.Errorf("entryName(%q) = %q, %v; want %q", n, got, err, want)
		}
	}
	for _, n := range []string{"/etc/passwd", "../x", "a/../../x", "a/.."} {
		if _, err := entryName(n); err == nil {
			t.Errorf("entryName(%q) accepted", n)
		}
	}
}

func copyArgs(tarPath, src, dest, u, workdir string, extra ...string) []string {
	return append([]string{"copy", "--tar", tarPath, "--src", src, "--dest", dest, "--user", u, "--workdir", workdir}, extra...)
}

func TestCopyDirPlainAndGzip(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			root := t.TempDir()
			tp := archive(t, root, gz,
				dir("folder/"),
				file("folder/a.txt", "A", 0o640),
				file("folder/sub/b.txt", "B", 0o600), // no entry for folder/sub
				file("./folder/c.txt", "C", 0o644),
				symlink("folder/link", "a.txt"),
			)
			code, _, stderr := call(t, root, copyArgs(tp, "folder", "app", me(t), "/home/w")...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			app := filepath.Join(root, "home/w/app")
			for name, body := range map[string]string{"a.txt": "A", "sub/b.txt": "B", "c.txt": "C"} {
				if got := readFile(t, filepath.Join(app, name)); got != body {
					t.Errorf("%s = %q, want %q", name, got, body)
				}
			}
			if got := permOf(t, filepath.Join(app, "a.txt")); got != 0o640 {
				t.Errorf("a.txt mode %o, want the archive's 0640", got)
			}
			for _, d := range []string{"home", "home/w", "home/w/app/sub"} {
				if got := permOf(t, filepath.Join(root, d)); got != 0o755 {
					t.Errorf("created parent %s mode %o, want 0755", d, got)
				}
			}
			if target, err := os.Readlink(filepath.Join(app, "link")); err != nil || target != "a.txt" {
				t.Errorf("link = %q, %v; want a symlink to a.txt", target, err)
			}
			fi, err := os.Stat(filepath.Join(app, "a.txt"))
			if err != nil || !fi.ModTime().Equal(time.Unix(1700000000, 0)) {
				t.Errorf("a.txt mtime %v, %v; want the archive's", fi.ModTime(), err)
			}
		})
	}
}

func TestCopySingleFile(t *testing.T) {
	root := t.TempDir()
	u := me(t)
	tp := archive(t, root, true, file("folder/a.txt", "new", 0o644))
	if err := os.MkdirAll(filepath.Join(root, "existing"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "old.txt"), []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A symlink at the destination is replaced, not written through.
	if err := os.WriteFile(filepath.Join(root, "victim"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/victim", filepath.Join(root, "link.txt")); err != nil {
		t.Fatal(err)
	}
	for dest, want := range map[string]string{
		"/b.txt":          "b.txt",
		"/dir/":           "dir/a.txt",
		"/existing":       "existing/a.txt",
		"/old.txt":        "old.txt",
		"/link.txt":       "link.txt",
		"rel/c.txt":       "w/rel/c.txt",
		"/deep/er/d.txt":  "deep/er/d.txt",
		"/existing/./":    "existing/a.txt",
		"/existing/x.txt": "existing/x.txt",
	} {
		code, _, stderr := call(t, root, copyArgs(tp, "folder/a.txt", dest, u, "/w")...)
		if code != 0 {
			t.Fatalf("dest %s: exit %d: %s", dest, code, stderr)
		}
		p := filepath.Join(root, want)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			t.Fatalf("dest %s: %s is %v, %v; want a regular file", dest, want, fi, err)
		}
		if got := readFile(t, p); got != "new" {
			t.Errorf("dest %s: %s = %q", dest, want, got)
		}
	}
	if got := readFile(t, filepath.Join(root, "victim")); got != "keep" {
		t.Errorf("the file a replaced symlink pointed to was written: %q", got)
	}
}

func TestCopyGlob(t *testing.T) {
	root := t.TempDir()
	tp := archive(t, root, false, file("folder/a.txt", "A", 0o644), file("folder/sub/b.txt", "B", 0o644))
	if code, _, stderr := call(t, root, copyArgs(tp, "folder/**/*.txt", "/out/", me(t), "/")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if readFile(t, filepath.Join(root, "out/a.txt")) != "A" || readFile(t, filepath.Join(root, "out/sub/b.txt")) != "B" {
		t.Error("glob files not placed below the static prefix")
	}
	// The whole context, "./"-prefixed as some clients write it.
	root = t.TempDir()
	tp = archive(t, root, false, dir("./"), file("./x", "X", 0o644), file("./d/y", "Y", 0o644))
	if code, _, stderr := call(t, root, copyArgs(tp, ".", ".", me(t), "/app")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if readFile(t, filepath.Join(root, "app/x")) != "X" || readFile(t, filepath.Join(root, "app/d/y")) != "Y" {
		t.Error("'.' not copied into the workdir")
	}
	// No workdir: relative to the user's home.
	if code, _, stderr := call(t, root, copyArgs(tp, "d", "rel", me(t), "")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	cu, _ := user.Current()
	if readFile(t, filepath.Join(root, cu.HomeDir, "rel/y")) != "Y" {
		t.Error("a relative destination without workdir is not under the home directory")
	}
}

func TestCopyMode(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "app"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(root, "app"), 0o711); err != nil {
		t.Fatal(err)
	}
	tp := archive(t, root, true, dir("./"), dir("d/"), file("d/f", "F", 0o600), file("g", "G", 0o644))
	if code, _, stderr := call(t, root, copyArgs(tp, ".", "/app", me(t), "/", "--mode", "750")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for p, want := range map[string]fs.FileMode{"app": 0o711, "app/d": 0o750, "app/d/f": 0o750, "app/g": 0o750} {
		if got := permOf(t, filepath.Join(root, p)); got != want {
			t.Errorf("%s mode %o, want %o", p, got, want)
		}
	}
	code, _, stderr := call(t, root, copyArgs(tp, ".", "/app", me(t), "/", "--mode", "0999")...)
	wantFail(t, code, stderr, 125, "invalid mode '0999'")
}

func TestCopyRefusesSymlinkEscape(t *testing.T) {
	for _, target := range []string{"/etc", "../../../../etc"} {
		root := t.TempDir()
		if err := os.Mkdir(filepath.Join(root, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		tp := archive(t, root, false, symlink("folder/link", target), file("folder/link/passwd", "pwned", 0o644))
		code, _, stderr := call(t, root, copyArgs(tp, "folder", "/app", me(t), "/")...)
		wantFail(t, code, stderr, 125, "symlink this copy created")
		for _, p := range []string{"etc/passwd", "app/passwd"} {
			if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
				t.Errorf("link %s: %s was written", target, p)
			}
		}
	}
}

func TestCopyFollowsExistingSymlinks(t *testing.T) {
	root := t.TempDir()
	// As in usr-merged images; absolute targets stay under the sandbox's root.
	for _, d := range []string{"usr/bin", "run"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("usr/bin", filepath.Join(root, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/run", filepath.Join(root, "var/run")); err != nil {
		t.Fatal(err)
	}
	tp := archive(t, root, false, file("tool", "T", 0o755))
	for dest, want := range map[string]string{"/bin/tool": "usr/bin/tool", "/var/run/x/tool": "run/x/tool"} {
		if code, _, stderr := call(t, root, copyArgs(tp, "tool", dest, me(t), "/")...); code != 0 {
			t.Fatalf("%s: exit %d: %s", dest, code, stderr)
		}
		if got := readFile(t, filepath.Join(root, want)); got != "T" {
			t.Errorf("%s: %s = %q", dest, want, got)
		}
	}
}

func TestCopyRefusesBadEntries(t *testing.T) {
	for _, c := range []struct {
		what string
		ents []ent
		want string
	}{
		{"dotdot", []ent{file("folder/../../x", "x", 0o644)}, "'..' component"},
		{"absolute", []ent{file("/etc/x", "x", 0o644)}, "absolute name"},
		{"device", []ent{{name: "folder/dev", typ: tar.TypeChar, mode: 0o644}}, "device, fifo"},
		{"fifo", []ent{{name: "folder/p", typ: tar.TypeFifo, mode: 0o644}}, "device, fifo"},
		{"hard link outside", []ent{{name: "folder/h", typ: tar.TypeLink, link: "other/f"}}, "has not extracted"},
		{"hard link dotdot", []ent{{name: "folder/h", typ: tar.TypeLink, link: "../../etc/shadow"}}, "'..' component"},
		{"no files", []ent{file("other/x", "x", 0o644)}, "copy 'folder': no files"},
		{"empty", nil, "copy 'folder': no files"},
	} {
		t.Run(c.what, func(t *testing.T) {
			root := t.TempDir()
			tp := archive(t, root, true, c.ents...)
			code, _, stderr := call(t, root, copyArgs(tp, "folder", "/app/sub", me(t), "/")...)
			wantFail(t, code, stderr, 125, c.want)
			for _, p := range []string{"x", "app/x", "app/sub/x"} {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("%s was written", p)
				}
			}
		})
	}
}

func TestCopyHardLink(t *testing.T) {
	root := t.TempDir()
	tp := archive(t, root, false, file("d/a", "A", 0o644), ent{name: "d/b", typ: tar.TypeLink, link: "d/a"})
	if code, _, stderr := call(t, root, copyArgs(tp, "d", "/out", me(t), "/")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	a, errA := os.Stat(filepath.Join(root, "out/a"))
	b, errB := os.Stat(filepath.Join(root, "out/b"))
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("out/b is not a hard link to out/a (%v, %v)", errA, errB)
	}
}

func TestCopyInvalidOwner(t *testing.T) {
	root := t.TempDir()
	tp := archive(t, root, false, file("a", "A", 0o644))
	code, _, stderr := call(t, root, copyArgs(tp, "a", "/a", me(t), "/", "--owner", "no-such-user-x")...)
	wantFail(t, code, stderr, 125, "invalid username: 'no-such-user-x'")
	code, _, stderr = call(t, root, copyArgs(tp, "a", "/a", "no-such-user-y", "/")...)
	wantFail(t, code, stderr, 125, "invalid username: 'no-such-user-y'")
	if _, err := os.Lstat(filepath.Join(root, "a")); err == nil {
		t.Error("copied despite the invalid owner")
	}
}

func owner(t *testing.T, p string) (int, int) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

func nobody(t *testing.T) (int, int) {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody here: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return uid, gid
}

func TestCopyOwner(t *testing.T) {
	roottest.Require(t, "chown to another user")
	uid, gid := nobody(t)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "pre"), 0o755); err != nil {
		t.Fatal(err)
	}
	tp := archive(t, root, true, dir("d/"), file("d/f", "F", 0o4755), symlink("d/l", "f"))
	if code, _, stderr := call(t, root, copyArgs(tp, "d", "/pre/new/d", "root", "/", "--owner", "nobody")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, p := range []string{"pre/new", "pre/new/d", "pre/new/d/f", "pre/new/d/l"} {
		if u, g := owner(t, filepath.Join(root, p)); u != uid || g != gid {
			t.Errorf("%s owned by %d:%d, want %d:%d", p, u, g, uid, gid)
		}
	}
	if u, _ := owner(t, filepath.Join(root, "pre")); u != 0 {
		t.Errorf("pre-existing parent chowned to %d", u)
	}
	// chown clears setuid; the mode is applied after it.
	if fi, err := os.Stat(filepath.Join(root, "pre/new/d/f")); err != nil || fi.Mode()&fs.ModeSetuid == 0 {
		t.Errorf("setuid bit lost: %v %v", fi.Mode(), err)
	}
	// Without --owner, the step's user owns the files.
	tp = archive(t, root, false, file("g", "G", 0o644))
	if code, _, stderr := call(t, root, copyArgs(tp, "g", "/g", "nobody", "/")...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if u, _ := owner(t, filepath.Join(root, "g")); u != uid {
		t.Errorf("g owned by %d, want the user's %d", u, uid)
	}
}

func TestWorkdir(t *testing.T) {
	root := t.TempDir()
	u := me(t)
	if code, _, stderr := call(t, root, "workdir", "--user", u, "/a/b/c"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if fi, err := os.Stat(filepath.Join(root, "a/b/c")); err != nil || !fi.IsDir() || fi.Mode().Perm() != 0o755 {
		t.Fatalf("a/b/c: %v, %v", fi, err)
	}
	if code, _, stderr := call(t, root, "workdir", "--user", u, "/a/b"); code != 0 {
		t.Fatalf("existing: exit %d: %s", code, stderr)
	}
	if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := call(t, root, "workdir", "--user", u, "/f")
	wantFail(t, code, stderr, 125, "workdir '/f': not a directory")
	code, _, stderr = call(t, root, "workdir", "--user", u, "/f/g")
	wantFail(t, code, stderr, 125, "workdir '/f/g': not a directory")
	code, _, stderr = call(t, root, "workdir", "--user", u, "rel")
	wantFail(t, code, stderr, 125, "workdir 'rel': not an absolute path")
	code, _, stderr = call(t, root, "workdir", "--user", "no-such-user-z", "/x")
	wantFail(t, code, stderr, 125, "invalid username: 'no-such-user-z'")
}

func TestWorkdirOwner(t *testing.T) {
	roottest.Require(t, "chown to another user")
	uid, _ := nobody(t)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "pre"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, stderr := call(t, root, "workdir", "--user", "nobody", "/pre/x/y"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for p, want := range map[string]int{"pre": 0, "pre/x": uid, "pre/x/y": uid} {
		if u, _ := owner(t, filepath.Join(root, p)); u != want {
			t.Errorf("%s owned by %d, want %d", p, u, want)
		}
	}
}

func TestUser(t *testing.T) {
	if code, _, stderr := call(t, "/", "user", me(t)); code != 0 {
		t.Errorf("user %s: exit %d: %s", me(t), code, stderr)
	}
	if code, _, stderr := call(t, "/", "user", "0"); code != 0 {
		t.Errorf("user 0: exit %d: %s", code, stderr)
	}
	var e bytes.Buffer
	code := Main([]string{"user", "root123"}, &bytes.Buffer{}, &e)
	wantFail(t, code, e.String(), 125, "invalid username: 'root123'")
	if e.String() != "airlock-build: invalid username: 'root123'\n" {
		t.Errorf("stderr %q", e.String())
	}
	code, _, stderr := call(t, "/", "nonsense")
	wantFail(t, code, stderr, 125, "unknown operation 'nonsense'")
}

func TestRunEnvAndWorkdir(t *testing.T) {
	u := me(t)
	wd := t.TempDir()
	code, stdout, stderr := call(t, "/", "run", "--user", u, "--workdir", wd, "--env", "A=1", "--env", "LANG=fr_FR", "--env", "A=2", "--",
		`echo "$A|$LANG|$USER|$LOGNAME|$PATH|$(pwd)"; readlink /proc/self/fd/0; echo err >&2`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := fmt.Sprintf("2|fr_FR|%s|%s|%s|%s\n/dev/null\n", u, u, defaultPath, wd)
	if stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if stderr != "err\n" {
		t.Errorf("stderr %q", stderr)
	}
	cu, _ := user.Current()
	_, stdout, _ = call(t, "/", "run", "--user", u, "--workdir", "", "--", `echo "$HOME|$LANG|$(pwd)"`)
	wantDir := cu.HomeDir
	if fi, err := os.Stat(wantDir); err != nil || !fi.IsDir() {
		wantDir = "/"
	}
	if want := fmt.Sprintf("%s|C.UTF-8|%s\n", cu.HomeDir, wantDir); stdout != want {
		t.Errorf("default workdir: stdout %q, want %q", stdout, want)
	}
}

func TestRunExitStatus(t *testing.T) {
	u := me(t)
	for script, want := range map[string]int{"true": 0, "exit 7": 7, "kill -KILL $$": 137, "no-such-command-x": 127} {
		if code, _, stderr := call(t, "/", "run", "--user", u, "--workdir", "/", "--", script); code != want {
			t.Errorf("%q: exit %d, want %d (%s)", script, code, want, stderr)
		}
	}
}

func TestRunFailures(t *testing.T) {
	code, stdout, stderr := call(t, "/", "run", "--user", "no-such-user-q", "--workdir", "/", "--", "echo hi")
	wantFail(t, code, stderr, 125, "invalid username: 'no-such-user-q'")
	if stdout != "" {
		t.Errorf("ran anyway: %q", stdout)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	code, _, stderr = call(t, "/", "run", "--user", me(t), "--workdir", missing, "--", "true")
	wantFail(t, code, stderr, 125, fmt.Sprintf("workdir '%s': no such file or directory", missing))
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr = call(t, "/", "run", "--user", me(t), "--workdir", f, "--", "true")
	wantFail(t, code, stderr, 125, fmt.Sprintf("workdir '%s': not a directory", f))
	code, _, stderr = call(t, "/", "run", "--user", me(t), "--env", "NOEQUALS", "--", "true")
	wantFail(t, code, stderr, 125, "not KEY=VALUE")
	code, _, stderr = call(t, "/", "run", "--user", me(t))
	wantFail(t, code, stderr, 125, "want 1 argument")
}

func TestRunAsOtherUser(t *testing.T) {
	roottest.Require(t, "running as another user")
	uid, gid := nobody(t)
	code, stdout, stderr := call(t, "/", "run", "--user", "nobody", "--workdir", "", "--", `echo "$(id -u) $(id -g) $(id -G) $USER $(pwd)"`)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// nobody's home, /nonexistent, does not exist: the workdir is /.
	if want := fmt.Sprintf("%d %d %d nobody /\n", uid, gid, gid); stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	_, stdout, _ = call(t, "/", "run", "--user", strconv.Itoa(uid), "--workdir", "/", "--", `id -u`)
	if stdout != fmt.Sprintf("%d\n", uid) {
		t.Errorf("numeric user: %q", stdout)
	}
}

// gone says whether pid no longer runs (exited, maybe not yet reaped).
func gone(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

func waitGone(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if gone(pid) {
			return
		}
	}
	t.Errorf("process %d still runs", pid)
}

func readPid(t *testing.T, p string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, p)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func readyArgs(dir, start, ready, timeout string) []string {
	return []string{"ready", "--user", "root", "--workdir", dir, "--env", "X=1", "--start", start, "--ready", ready, "--timeout", timeout, "--interval", "50ms"}
}

func TestReadySuccess(t *testing.T) {
	dir := t.TempDir()
	u := me(t)
	args := readyArgs(dir, `echo started; sleep 60 & echo $! > child; sleep 0.3; touch flag; echo $$ > pid; exec sleep 60`, `test -f flag && test "$X" = 1`, "10s")
	args[2] = u
	start := time.Now()
	code, stdout, stderr := call(t, "/", args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	if !strings.Contains(stdout, "started") {
		t.Errorf("the start command's output was not passed through: %q", stdout)
	}
	// The whole group is killed: the start command and its children.
	waitGone(t, readPid(t, filepath.Join(dir, "pid")))
	waitGone(t, readPid(t, filepath.Join(dir, "child")))
}

func TestReadyStartExits(t *testing.T) {
	dir := t.TempDir()
	u := me(t)
	args := readyArgs(dir, "exit 3", "false", "10s")
	args[2] = u
	start := time.Now()
	code, _, stderr := call(t, "/", args...)
	wantFail(t, code, stderr, 1, "airlock-build: start command exited with status 3")
	if time.Since(start) > 5*time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	// Exiting 0 is fine: polling goes on.
	args = readyArgs(dir, "touch done", "test -f done", "10s")
	args[2] = u
	if code, _, stderr := call(t, "/", args...); code != 0 {
		t.Errorf("start exiting 0: exit %d: %s", code, stderr)
	}
}

func TestReadyTimeout(t *testing.T) {
	dir := t.TempDir()
	u := me(t)
	// The start command writes until killed: the reason is still last.
	args := readyArgs(dir, "echo $$ > pid; while :; do echo spam >&2; sleep 0.01; done", "echo line1; echo nope; exit 4", "400ms")
	args[2] = u
	start := time.Now()
	code, _, stderr := call(t, "/", args...)
	el := time.Since(start)
	wantFail(t, code, stderr, 1, "ready command 'echo line1; echo nope; exit 4' did not succeed within 400ms (last attempt exited with status 4: line1 | nope)")
	if el < 400*time.Millisecond || el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	if !strings.Contains(stderr, "spam\n") || !strings.Contains(stderr, "\nready command: line1\nready command: nope\nairlock-build: ") {
		t.Errorf("stderr lacks the start command's output or the ready command's tail: %q", stderr)
	}
	waitGone(t, readPid(t, filepath.Join(dir, "pid")))

	// A ready command that never finishes is stopped at the deadline.
	args = readyArgs(dir, "", "sleep 60", "300ms")
	args[2] = u
	start = time.Now()
	code, _, stderr = call(t, "/", args...)
	wantFail(t, code, stderr, 1, "did not succeed within 300ms (no attempt finished in time)")
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("hanging ready command: took %v", el)
	}
}

func TestReadyWithoutReadyCommand(t *testing.T) {
	dir := t.TempDir()
	u := me(t)
	args := readyArgs(dir, "echo $$ > pid; exec sleep 60", "", "10s")
	args[2] = u
	start := time.Now()
	if code, _, stderr := call(t, "/", args...); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %v", el)
	}
	// The start command may not have written its pid before being killed.
	if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil && len(bytes.TrimSpace(b)) > 0 {
		waitGone(t, readPid(t, filepath.Join(dir, "pid")))
	}
	code, _, stderr := call(t, "/", "ready", "--user", "no-such-user-r", "--start", "true", "--timeout", "1s")
	wantFail(t, code, stderr, 125, "invalid username: 'no-such-user-r'")
}
