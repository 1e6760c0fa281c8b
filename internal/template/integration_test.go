package template

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/roottest"
)

// TestBuildBaseReal runs the real debootstrap + apt-get build (a few
// minutes, needs root and the Debian mirror) and inspects the result.
func TestBuildBaseReal(t *testing.T) {
	if testing.Short() {
		t.Skip("real template build takes minutes; runs without -short")
	}
	roottest.Require(t, "the template build (debootstrap, chroot, mounts)")
	for _, tool := range []string{"debootstrap", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed (apt-get install debootstrap): %v", tool, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()

	dataDir := t.TempDir()
	st := openStore(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(io.MultiWriter(&logs, testLogWriter{t}), &slog.HandlerOptions{Level: slog.LevelInfo}))
	m := NewManager(Config{DataDir: dataDir}, st, log)

	var progress syncBuffer
	start := time.Now()
	if err := m.EnsureDefaults(ctx, &progress); err != nil {
		t.Fatalf("EnsureDefaults: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("build took %s; progress output:\n%s", time.Since(start).Round(time.Second), progress.String())
	if !strings.Contains(logs.String(), "size_mb=") {
		t.Errorf("build log does not report the size:\n%s", logs.String())
	}

	base, err := m.Resolve(ctx, BaseAlias)
	if err != nil {
		t.Fatalf("Resolve(base): %v", err)
	}
	if !regexp.MustCompile(`^[a-z0-9]{20}$`).MatchString(base.ID) {
		t.Errorf("base ID %q does not match ^[a-z0-9]{20}$", base.ID)
	}
	ci, err := m.Resolve(ctx, CodeInterpreterAlias)
	if err != nil {
		t.Fatalf("Resolve(code-interpreter-v1): %v", err)
	}
	if ci.ID == base.ID || ci.RootfsDir == base.RootfsDir || ci.StartCmd != InterpreterStartCmd {
		t.Errorf("code-interpreter-v1 = %+v, want its own ID, rootfs and start command", ci)
	}
	root := base.RootfsDir
	if want := filepath.Join(dataDir, "templates", base.ID, "rootfs-"+baseRecipe); root != want {
		t.Errorf("rootfs at %s, want %s", root, want)
	}

	for _, bin := range []string{"usr/bin/python3", "usr/bin/node", "usr/bin/npm", "usr/bin/git", "usr/bin/curl", "usr/bin/sudo"} {
		if _, err := os.Stat(filepath.Join(root, bin)); err != nil {
			t.Errorf("missing %s: %v", bin, err)
		}
	}
	passwd := readFile(t, root, "etc/passwd")
	if !regexp.MustCompile(`(?m)^user:x:1000:1000:[^:]*:/home/user:/bin/bash$`).MatchString(passwd) {
		t.Errorf("no user with uid 1000 and home /home/user in /etc/passwd:\n%s", passwd)
	}
	if !regexp.MustCompile(`(?m)^root:x:0:0:[^:]*:/root:`).MatchString(passwd) {
		t.Errorf("root's home is not /root:\n%s", passwd)
	}
	if !regexp.MustCompile(`(?m)^sudo:x:27:(.*,)?user(,.*)?$`).MatchString(readFile(t, root, "etc/group")) {
		t.Errorf("user is not in group sudo")
	}
	if got := readFile(t, root, "etc/sudoers.d/user"); !strings.Contains(got, "user ALL=(ALL:ALL) NOPASSWD: ALL") {
		t.Errorf("sudoers entry = %q", got)
	}
	if info, err := os.Stat(filepath.Join(root, "home/user")); err != nil {
		t.Errorf("home: %v", err)
	} else if st := info.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("/home/user owned by %d:%d, want 1000:1000", st.Uid, st.Gid)
	}
	if info, err := os.Lstat(filepath.Join(root, "etc/resolv.conf")); err != nil || !info.Mode().IsRegular() || info.Size() != 0 {
		t.Errorf("/etc/resolv.conf should be an empty regular file: %v %v", info, err)
	}
	if got := readFile(t, root, dpkgConfig); !strings.Contains(got, "force-unsafe-io") {
		t.Errorf("dpkg config = %q", got)
	}
	if man, _ := filepath.Glob(filepath.Join(root, "usr/share/man/*/*")); len(man) > 0 {
		t.Errorf("%d man pages left in the template", len(man))
	}
	if lists, _ := filepath.Glob(filepath.Join(root, "var/lib/apt/lists/*_Packages*")); len(lists) > 0 {
		t.Errorf("apt lists left in the template: %v", lists)
	}
	if debs, _ := filepath.Glob(filepath.Join(root, "var/cache/apt/archives/*.deb")); len(debs) > 0 {
		t.Errorf("%d .debs left in the template", len(debs))
	}
	if debs, _ := filepath.Glob(filepath.Join(dataDir, "cache/apt/*.deb")); len(debs) < 100 {
		t.Errorf("apt cache holds %d .debs, want the downloaded packages kept", len(debs))
	}
	if tmp, _ := filepath.Glob(filepath.Join(dataDir, "templates/*/"+tmpPrefix+"*")); len(tmp) > 0 {
		t.Errorf("build dirs left: %v", tmp)
	}
	if mps, err := mountsUnder(dataDir); err != nil || len(mps) > 0 {
		t.Errorf("mounts left under the data dir: %v %v", mps, err)
	}

	// The tools must run, not just exist.
	for _, args := range [][]string{
		{"/usr/bin/python3", "-c", "import venv, ssl, sqlite3; print('ok')"},
		{"/usr/bin/python3", "-m", "pip", "--version"},
		{"/usr/bin/node", "-e", "console.log('ok')"},
		{"/usr/bin/git", "--version"},
		{"/usr/sbin/visudo", "-c"},
	} {
		cmd := exec.CommandContext(ctx, "chroot", append([]string{root}, args...)...)
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "LANG=C.UTF-8", "HOME=/root"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("chroot %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	// code-interpreter-v1: base plus the kernels' packages, without scipy.
	for _, args := range [][]string{
		{"/usr/bin/python3", "-c", "import ipykernel, numpy, pandas, matplotlib.pyplot, IPython; print('ok')"},
		{"/usr/bin/Rscript", "-e", "library(IRkernel)"},
		{"/usr/local/bin/tsc", "--version"},
		{"/usr/bin/node", "-e", "require('typescript').transpileModule('let x: number = 1', {})"},
	} {
		cmd := exec.CommandContext(ctx, "chroot", append([]string{ci.RootfsDir}, args...)...)
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/root", "NODE_PATH=/usr/local/lib/node_modules"}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("code-interpreter-v1: chroot %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// The Java kernel was compiled in the tree.
	if _, err := os.Stat(filepath.Join(ci.RootfsDir, "opt/airlock/java/classes/AirlockJavaKernel.class")); err != nil {
		t.Errorf("code-interpreter-v1: the Java kernel was not compiled: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ci.RootfsDir, "usr/lib/python3/dist-packages/scipy")); !os.IsNotExist(err) {
		t.Errorf("scipy is in code-interpreter-v1 (err %v); python3-munkres should keep it out", err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/bin/R")); !os.IsNotExist(err) {
		t.Errorf("building code-interpreter-v1 changed base: usr/bin/R: %v", err)
	}

	// A second start finds everything ready and does no work.
	m.populate = nil // would panic if a build started
	m.install = nil
	start = time.Now()
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatalf("second EnsureDefaults: %v", err)
	}
	// No rebuild is what matters (asserted by what ran); the time is only logged.
	t.Logf("second EnsureDefaults took %s", time.Since(start))
}

func readFile(t *testing.T, root, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatalf("read %s: %v", rel, err)
	}
	return string(data)
}

// testLogWriter sends log output to t.Log.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
