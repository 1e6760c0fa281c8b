// Package cli_test drives the real airlock binary's client commands against
// a running Airlock server given by E2B_API_URL, E2B_SANDBOX_URL and
// E2B_API_KEY.
package cli_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/airlock-sandbox/airlock/test/testimage"
)

// bin is the airlock binary built by TestMain.
var bin string

func TestMain(m *testing.M) {
	var missing []string
	for _, k := range []string{"E2B_API_URL", "E2B_SANDBOX_URL", "E2B_API_KEY"} {
		if os.Getenv(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(os.Stderr, "test/cli needs a running Airlock server: set %s\n", strings.Join(missing, ", "))
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "airlock-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "airlock")
	build := exec.Command("go", "build", "-o", bin, "./cmd/airlock")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build airlock:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run executes the binary with args and returns its output and exit code.
func run(t *testing.T, args ...string) result {
	t.Helper()
	return runIn(t, nil, args...)
}

func runIn(t *testing.T, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &out, &errb, stdin
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatalf("airlock %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// must runs the binary and fails unless it exits with want.
func must(t *testing.T, want int, args ...string) result {
	t.Helper()
	res := run(t, args...)
	if res.code != want {
		t.Fatalf("airlock %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), res.code, want, res.stdout, res.stderr)
	}
	return res
}

func TestWorkflow(t *testing.T) {
	marker := fmt.Sprintf("cli-test-%d", time.Now().UnixNano())
	res := must(t, 0, "sandbox", "create", "--json", "--timeout", "10m", "--metadata", "suite="+marker, "--env", "FROM_CREATE=yes")
	var created struct {
		SandboxID string `json:"sandboxID"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &created); err != nil || created.SandboxID == "" {
		t.Fatalf("create --json output %q: %v", res.stdout, err)
	}
	id := created.SandboxID
	killed := false
	t.Cleanup(func() {
		if !killed {
			run(t, "sandbox", "kill", id)
		}
	})

	t.Run("exec", func(t *testing.T) { testExec(t, id) })
	t.Run("cp file", func(t *testing.T) { testCpFile(t, id) })
	t.Run("cp tree", func(t *testing.T) { testCpTree(t, id) })
	t.Run("shell", func(t *testing.T) { testShell(t, id) })
	t.Run("info and list", func(t *testing.T) { testInfoList(t, id, marker) })
	t.Run("logs and metrics", func(t *testing.T) { testLogsMetrics(t, id) })
	t.Run("templates", testTemplates)

	must(t, 0, "sandbox", "kill", id)
	killed = true
	must(t, 3, "sandbox", "info", id)
	must(t, 3, "sandbox", "exec", id, "--", "true")
	must(t, 3, "sandbox", "kill", id)
}

func testExec(t *testing.T, id string) {
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{"stdout", []string{"--", "echo", "hello world"}, 0, "hello world\n", ""},
		{"script", []string{"--", "echo $((6*7)) | tr 4 x"}, 0, "x2\n", ""},
		{"exit code", []string{"--", "exit 7"}, 7, "", ""},
		{"split streams", []string{"--", "sh", "-c", "echo out; echo err >&2; exit 3"}, 3, "out\n", "err\n"},
		{"env cwd create-env", []string{"--env", "FOO=bar", "--cwd", "/tmp", "--", "echo $FOO $FROM_CREATE; pwd"}, 0, "bar yes\n/tmp\n", ""},
		{"user", []string{"--user", "root", "--", "id", "-un"}, 0, "root\n", ""},
		{"timeout", []string{"--timeout", "1s", "--", "sleep 30"}, 124, "", "airlock: command timed out after 1s\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"sandbox", "exec", id}, tt.args...)
			res := run(t, args...)
			if res.code != tt.code || res.stdout != tt.stdout || res.stderr != tt.stderr {
				t.Fatalf("exec %q: exit %d stdout %q stderr %q; want %d %q %q", tt.args, res.code, res.stdout, res.stderr, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
	t.Run("stdin", func(t *testing.T) {
		res := runIn(t, strings.NewReader("one\ntwo\nthree\n"), "sandbox", "exec", "-i", id, "--", "wc", "-l")
		if res.code != 0 || strings.TrimSpace(res.stdout) != "3" {
			t.Fatalf("exec -i wc -l: exit %d stdout %q stderr %q", res.code, res.stdout, res.stderr)
		}
	})
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func testCpFile(t *testing.T, id string) {
	dir := t.TempDir()
	data := randomBytes(t, 3<<20+17)
	src := filepath.Join(dir, "blob.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	must(t, 0, "sandbox", "cp", src, id+":/tmp/cli-file/blob.bin")
	res := must(t, 0, "sandbox", "exec", id, "--", "stat -c %s /tmp/cli-file/blob.bin")
	if strings.TrimSpace(res.stdout) != fmt.Sprint(len(data)) {
		t.Fatalf("remote size %q, want %d", res.stdout, len(data))
	}
	// Onto an existing local directory: lands inside it.
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, 0, "sandbox", "cp", id+":/tmp/cli-file/blob.bin", out)
	got, err := os.ReadFile(filepath.Join(out, "blob.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("round trip differs (err %v, %d bytes, want %d)", err, len(got), len(data))
	}
	must(t, 3, "sandbox", "cp", id+":/tmp/cli-file/missing", out)
	must(t, 3, "sandbox", "cp", filepath.Join(dir, "missing"), id+":/tmp/x")
}

// tree is a local directory: relative path → content ("/" suffix: a dir).
var tree = map[string]string{
	"top.txt":             "top\n",
	"run.sh":              "#!/bin/sh\necho ran\n",
	"a/b/c.txt":           "deep\n",
	"a/space name.txt":    "spaces\n",
	"a/quote's.txt":       "quote\n",
	"empty/":              "",
	"big/data.bin":        "", // random, filled below
	"many/f00.txt":        "0",
	"many/f01.txt":        "1",
	"many/f02.txt":        "2",
	"many/nested/f03.txt": "3",
}

func writeTree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for rel, content := range tree {
		p := filepath.Join(root, rel)
		if strings.HasSuffix(rel, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data := []byte(content)
		if rel == "big/data.bin" {
			data = randomBytes(t, 5<<20)
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		mode := fs.FileMode(0o644)
		if strings.HasSuffix(rel, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		want[rel] = data
	}
	return want
}

func testCpTree(t *testing.T, id string) {
	dir := t.TempDir()
	src := filepath.Join(dir, "proj")
	want := writeTree(t, src)

	// To a path that does not exist: it becomes the copy.
	must(t, 0, "sandbox", "cp", src, id+":/tmp/cli-tree")
	res := must(t, 0, "sandbox", "exec", id, "--",
		"cat '/tmp/cli-tree/a/b/c.txt' && test -d /tmp/cli-tree/empty && /tmp/cli-tree/run.sh && cat \"/tmp/cli-tree/a/quote's.txt\"")
	if res.stdout != "deep\nran\nquote\n" {
		t.Fatalf("remote tree check: %q", res.stdout)
	}
	// To an existing directory: lands inside it, --json summary.
	must(t, 0, "sandbox", "exec", id, "--", "mkdir -p /tmp/cli-into")
	res = must(t, 0, "sandbox", "cp", "--json", src, id+":/tmp/cli-into")
	var sum struct {
		Files       int    `json:"files"`
		Destination string `json:"destination"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &sum); err != nil || sum.Files != len(want) || sum.Destination != "/tmp/cli-into/proj" {
		t.Fatalf("cp --json = %q (%v), want %d files into /tmp/cli-into/proj", res.stdout, err, len(want))
	}

	out := filepath.Join(dir, "back")
	must(t, 0, "sandbox", "cp", id+":/tmp/cli-tree", out)
	got := map[string][]byte{}
	dirs := map[string]bool{}
	err := filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(out, p)
		if d.IsDir() {
			dirs[filepath.ToSlash(rel)+"/"] = true
			return nil
		}
		b, err := os.ReadFile(p)
		got[filepath.ToSlash(rel)] = b
		if strings.HasSuffix(rel, ".sh") {
			if info, _ := d.Info(); info.Mode()&0o100 == 0 {
				t.Errorf("%s lost its executable bit: %v", rel, info.Mode())
			}
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("downloaded %d files, want %d", len(got), len(want))
	}
	for rel, data := range want {
		if !bytes.Equal(got[rel], data) {
			t.Errorf("%s differs after the round trip (%d bytes, want %d)", rel, len(got[rel]), len(data))
		}
	}
	if !dirs["empty/"] {
		t.Errorf("empty directory not copied back; dirs: %v", dirs)
	}
}

func testShell(t *testing.T, id string) {
	// Open the pty ourselves to keep the terminal side and check that the
	// CLI restores its mode (it switches it to raw) when it exits.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 100, Rows: 30}); err != nil {
		t.Fatal(err)
	}
	before, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "sandbox", "shell", id)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }() // no-op once it has exited

	output := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptmx.Read(buf)
			if n > 0 {
				output <- string(buf[:n])
			}
			if err != nil {
				close(output)
				return
			}
		}
	}()
	var seen strings.Builder
	waitFor := func(s string) {
		t.Helper()
		deadline := time.After(30 * time.Second)
		for !strings.Contains(seen.String(), s) {
			select {
			case chunk, ok := <-output:
				if !ok {
					t.Fatalf("terminal closed before %q; output: %q", s, seen.String())
				}
				seen.WriteString(chunk)
			case <-deadline:
				t.Fatalf("no %q within 30s; output: %q", s, seen.String())
			}
		}
	}
	if _, err := ptmx.Write([]byte("stty size; echo hello-$((6*7))\n")); err != nil {
		t.Fatal(err)
	}
	waitFor("hello-42")
	if !strings.Contains(seen.String(), "30 100") {
		t.Errorf("remote terminal size is not the local one (30 100); output: %q", seen.String())
	}
	// A resize of the local terminal reaches the remote one (SIGWINCH).
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: 123, Rows: 45}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(seen.String(), "45 123") && time.Now().Before(deadline) {
		_, _ = ptmx.Write([]byte("stty size\n"))
		time.Sleep(300 * time.Millisecond)
		for drained := false; !drained; {
			select {
			case chunk := <-output:
				seen.WriteString(chunk)
			default:
				drained = true
			}
		}
	}
	if !strings.Contains(seen.String(), "45 123") {
		t.Errorf("resize did not reach the remote terminal; output: %q", seen.String())
	}
	if _, err := ptmx.Write([]byte("exit\n")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shell exited with %v; output: %q", err, seen.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("shell did not exit after `exit`; output: %q", seen.String())
	}
	after, err := unix.IoctlGetTermios(int(tty.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if before.Lflag != after.Lflag || before.Iflag != after.Iflag || before.Oflag != after.Oflag {
		t.Errorf("terminal mode not restored: lflag %#x→%#x iflag %#x→%#x oflag %#x→%#x",
			before.Lflag, after.Lflag, before.Iflag, after.Iflag, before.Oflag, after.Oflag)
	}

	// The remote shell's exit code comes back.
	cmd2 := exec.Command(bin, "sandbox", "shell", id)
	ptmx2, err := pty.Start(cmd2)
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx2.Close()
	go func() { _, _ = io.Copy(io.Discard, ptmx2) }()
	_, _ = ptmx2.Write([]byte("exit 5\n"))
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd2.Wait() }()
	select {
	case err := <-waitErr:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 5 {
			t.Fatalf("shell `exit 5`: %v, want exit status 5", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd2.Process.Kill()
		t.Fatal("shell did not exit after `exit 5`")
	}
}

func testInfoList(t *testing.T, id, marker string) {
	res := must(t, 0, "sandbox", "info", "--json", id)
	var info struct {
		SandboxID string            `json:"sandboxID"`
		State     string            `json:"state"`
		Metadata  map[string]string `json:"metadata"`
		EndAt     time.Time         `json:"endAt"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &info); err != nil {
		t.Fatalf("info --json %q: %v", res.stdout, err)
	}
	if info.SandboxID != id || info.State != "running" || info.Metadata["suite"] != marker || time.Until(info.EndAt) < time.Minute {
		t.Fatalf("info --json = %+v", info)
	}
	if res := must(t, 0, "sandbox", "info", id); !strings.Contains(res.stdout, id) || !strings.Contains(res.stdout, marker) {
		t.Fatalf("info table lacks the ID or metadata:\n%s", res.stdout)
	}

	res = must(t, 0, "sandbox", "list", "--json", "--metadata", "suite="+marker, "--state", "running")
	var list []struct {
		SandboxID string `json:"sandboxID"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &list); err != nil {
		t.Fatalf("list --json %q: %v", res.stdout, err)
	}
	if len(list) != 1 || list[0].SandboxID != id {
		t.Fatalf("list --json --metadata = %+v, want only %s", list, id)
	}
	res = must(t, 0, "sandbox", "list", "--json", "--metadata", "suite=nothing-"+marker)
	if strings.TrimSpace(res.stdout) != "[]" {
		t.Fatalf("list of nothing = %q, want []", res.stdout)
	}
	if res := must(t, 0, "sandbox", "list"); !strings.Contains(res.stdout, "SANDBOX ID") || !strings.Contains(res.stdout, id) {
		t.Fatalf("list table:\n%s", res.stdout)
	}
	must(t, 4, "sandbox", "list", "--api-key", "e2b_00000000000000000000000000000000deadbeef")
	must(t, 4, "sandbox", "exec", "--api-key", "e2b_00000000000000000000000000000000deadbeef", id, "--", "true")
	must(t, 2, "sandbox", "list", "--no-such-flag")
	must(t, 2, "sandbox", "exec", id)
}

func testLogsMetrics(t *testing.T, id string) {
	res := must(t, 0, "sandbox", "logs", "--json", id)
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	var first struct {
		Message string `json:"message"`
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Message == "" {
		t.Fatalf("logs --json first line %q: %v", lines[0], err)
	}
	// The sandbox's own disk reports what it holds: 8 MB written is used.
	must(t, 0, "sandbox", "exec", id, "--", "head -c 8000000 /dev/urandom > /tmp/metrics.bin && sync")
	res = must(t, 0, "sandbox", "metrics", "--json", id)
	var ms []struct {
		MemTotal  uint64 `json:"memTotal"`
		DiskUsed  uint64 `json:"diskUsed"`
		DiskTotal uint64 `json:"diskTotal"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &ms); err != nil || len(ms) == 0 || ms[0].MemTotal == 0 {
		t.Fatalf("metrics --json %q: %v", res.stdout, err)
	}
	if m := ms[0]; m.DiskUsed < 8_000_000 || m.DiskUsed > m.DiskTotal {
		t.Errorf("metrics after writing 8 MB: diskUsed %d of diskTotal %d", m.DiskUsed, m.DiskTotal)
	}
	must(t, 0, "sandbox", "exec", id, "--", "rm /tmp/metrics.bin")
	must(t, 0, "sandbox", "metrics", id)
	must(t, 3, "sandbox", "metrics", "nosuchsandbox")
}

func testTemplates(t *testing.T) {
	res := must(t, 0, "template", "list", "--json")
	var ts []struct {
		TemplateID string   `json:"templateID"`
		Aliases    []string `json:"aliases"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &ts); err != nil {
		t.Fatalf("template list --json %q: %v", res.stdout, err)
	}
	found := false
	for _, tp := range ts {
		for _, a := range tp.Aliases {
			found = found || a == "base"
		}
	}
	if !found {
		t.Fatalf("template list lacks base: %s", res.stdout)
	}
	must(t, 3, "template", "rm", "no-such-template")
	// The workflow's sandbox runs on base, so removing it is refused.
	must(t, 1, "template", "rm", "base")
}

// TestTemplateBuild derives a template from base with `template build`,
// which works on the server's data dir (AIRLOCK_TEST_DATA_DIR) directly,
// and checks that the running server creates sandboxes from it at once.
func TestTemplateBuild(t *testing.T) {
	dataDir := os.Getenv("AIRLOCK_TEST_DATA_DIR")
	if dataDir == "" {
		t.Fatal("AIRLOCK_TEST_DATA_DIR must name the test server's --data-dir (template build works on it directly)")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "airlock.db")); err != nil {
		t.Fatalf("AIRLOCK_TEST_DATA_DIR=%s is not the server's data dir: %v", dataDir, err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("clitest-%x", suffix)

	// A failing step records nothing and shows its output.
	res := must(t, 1, "template", "build", name+"-fail", "--from", "base", "--data-dir", dataDir,
		"--run", "echo step-one", "--run", "echo oops-from-step; exit 4")
	if !strings.Contains(res.stderr, "oops-from-step") || !strings.Contains(res.stderr, "step-one") {
		t.Errorf("failed build stderr lacks the step output:\n%s", res.stderr)
	}
	must(t, 3, "template", "rm", name+"-fail")

	// The steps run in a sandbox: not as host root, not on the host's
	// network. A listener on every host address must see nothing.
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var hits atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	probe := ""
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			probe += fmt.Sprintf("curl -s -m 2 http://%s:%d/ && echo REACHED-HOST; ", ipn.IP, port)
		}
	}
	if probe == "" {
		t.Fatal("no host IPv4 address to probe")
	}
	res = must(t, 0, "template", "build", name, "--from", "base", "--data-dir", dataDir, "--json",
		"--run", "echo derived > /etc/derived",
		"--run", "echo hostname: $(hostname)",
		"--run", probe+"true")
	if strings.Contains(res.stderr, "\n  REACHED-HOST\n") || hits.Load() > 0 {
		t.Errorf("a build step reached the host (%d connections):\n%s", hits.Load(), res.stderr)
	}
	if !strings.Contains(res.stderr, "hostname: build") {
		t.Errorf("build steps did not run in a sandbox:\n%s", res.stderr)
	}
	var built struct {
		TemplateID  string   `json:"templateID"`
		Aliases     []string `json:"aliases"`
		BuildStatus string   `json:"buildStatus"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &built); err != nil || built.TemplateID == "" {
		t.Fatalf("template build --json output %q: %v", res.stdout, err)
	}
	removed := false
	t.Cleanup(func() {
		if !removed {
			run(t, "template", "rm", name)
		}
		// A failed test may leave the files; rm removes them otherwise.
		if err := os.RemoveAll(filepath.Join(dataDir, "templates", built.TemplateID)); err != nil {
			t.Errorf("remove template files: %v", err)
		}
	})
	if built.BuildStatus != "ready" || len(built.Aliases) != 1 || built.Aliases[0] != name {
		t.Errorf("built template %+v, want ready with alias %s", built, name)
	}

	res = must(t, 0, "sandbox", "create", "--json", "--template", name, "--timeout", "5m")
	var created struct {
		SandboxID  string `json:"sandboxID"`
		TemplateID string `json:"templateID"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &created); err != nil || created.SandboxID == "" {
		t.Fatalf("create --json output %q: %v", res.stdout, err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			run(t, "sandbox", "kill", created.SandboxID)
		}
	})
	if res := must(t, 0, "sandbox", "exec", created.SandboxID, "--", "cat /etc/derived"); strings.TrimSpace(res.stdout) != "derived" {
		t.Errorf("cat /etc/derived = %q, want derived", res.stdout)
	}
	must(t, 0, "sandbox", "kill", created.SandboxID)
	killed = true

	must(t, 0, "template", "rm", name)
	removed = true
	if _, err := os.Stat(filepath.Join(dataDir, "templates", built.TemplateID)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("template files still on disk after rm: %v", err)
	}
	if res := must(t, 0, "template", "list", "--json"); strings.Contains(res.stdout, name) {
		t.Errorf("template list still has %s after rm: %s", name, res.stdout)
	}
}

// TestTemplateBuildFromOCI builds a template from a `docker save` tarball
// made from the base tree: the image's layers (a whiteout among them) and
// ENV are kept, the build sandbox adds E2B's user, and sandboxes run on it.
func TestTemplateBuildFromOCI(t *testing.T) {
	dataDir := os.Getenv("AIRLOCK_TEST_DATA_DIR")
	if dataDir == "" {
		t.Fatal("AIRLOCK_TEST_DATA_DIR must name the test server's --data-dir")
	}
	trees, _ := filepath.Glob(filepath.Join(dataDir, "templates", "*", "rootfs-base-*"))
	trees = slices.DeleteFunc(trees, func(p string) bool { return strings.Contains(p, ".tmp") })
	if len(trees) == 0 {
		t.Fatalf("no base tree under %s to make the image from", dataDir)
	}
	img, err := testimage.FromTree(trees[0])
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "image.tar")
	tag, err := name.NewTag("example.test/airlock/test:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	tpl := fmt.Sprintf("clioci-%x", suffix)
	must(t, 2, "template", "build", tpl, "--from", "base", "--from-oci", tarPath, "--data-dir", dataDir)
	must(t, 3, "template", "build", tpl, "--from-oci", tarPath+".missing", "--data-dir", dataDir)
	res := must(t, 0, "template", "build", tpl, "--from-oci", tarPath, "--data-dir", dataDir, "--json",
		"--run", "cp /etc/airlock-image /home/user/seen && test ! -e /etc/motd")
	var built struct {
		TemplateID string `json:"templateID"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &built); err != nil || built.TemplateID == "" {
		t.Fatalf("template build --json output %q: %v", res.stdout, err)
	}
	t.Cleanup(func() { run(t, "template", "rm", tpl) })
	res = must(t, 0, "sandbox", "create", "--json", "--template", tpl, "--timeout", "5m")
	var created struct {
		SandboxID string `json:"sandboxID"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &created); err != nil || created.SandboxID == "" {
		t.Fatalf("create --json output %q: %v", res.stdout, err)
	}
	defer run(t, "sandbox", "kill", created.SandboxID)
	res = must(t, 0, "sandbox", "exec", created.SandboxID, "--", "cat seen; whoami; pwd; echo $IMAGE_VAR")
	if want := "from the test registry\nuser\n/home/user\nfrom-image\n"; res.stdout != want {
		t.Errorf("in a sandbox of the image's template: %q, want %q", res.stdout, want)
	}
}

// TestTeams creates keys of a new team with the real binary: the team's key
// cannot see the default team's sandbox, a template built for the team is
// invisible to other teams, and only an --admin key may use /admin routes.
func TestTeams(t *testing.T) {
	dataDir := os.Getenv("AIRLOCK_TEST_DATA_DIR")
	if dataDir == "" {
		t.Fatal("AIRLOCK_TEST_DATA_DIR must name the test server's --data-dir")
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		t.Fatal(err)
	}
	team := fmt.Sprintf("cli-%x", suffix)
	teamKey := strings.TrimSpace(must(t, 0, "keys", "create", "--data-dir", dataDir, "--team", team, "--name", "cli").stdout)
	adminKey := strings.TrimSpace(must(t, 0, "keys", "create", "--data-dir", dataDir, "--admin", "--name", "cli-admin").stdout)
	must(t, 2, "keys", "create", "--data-dir", dataDir, "--team", "Not/A/Team")

	var keys []struct {
		Name, Team string
		Admin      bool
	}
	if err := json.Unmarshal([]byte(must(t, 0, "keys", "list", "--data-dir", dataDir, "--json").stdout), &keys); err != nil {
		t.Fatal(err)
	}
	var sawTeam, sawAdmin bool
	for _, k := range keys {
		sawTeam = sawTeam || (k.Name == "cli" && k.Team == team && !k.Admin)
		sawAdmin = sawAdmin || (k.Name == "cli-admin" && k.Team == "default" && k.Admin)
	}
	if !sawTeam || !sawAdmin {
		t.Errorf("keys list lacks the new keys with their team and admin flag: %+v", keys)
	}

	id := strings.TrimSpace(must(t, 0, "sandbox", "create", "--template", "base", "--timeout", "2m").stdout)
	t.Cleanup(func() { run(t, "sandbox", "kill", id) })
	must(t, 3, "sandbox", "info", id, "--api-key", teamKey)
	must(t, 3, "sandbox", "kill", id, "--api-key", teamKey)
	if res := must(t, 0, "sandbox", "list", "--json", "--api-key", teamKey); strings.Contains(res.stdout, id) {
		t.Errorf("another team's list shows %s: %s", id, res.stdout)
	}
	must(t, 0, "sandbox", "info", id)

	name := "clitpl-" + team
	must(t, 0, "template", "build", name, "--from", "base", "--team", team, "--data-dir", dataDir, "--run", "true")
	var tplID string
	t.Cleanup(func() {
		run(t, "template", "rm", name, "--api-key", teamKey)
		if tplID != "" {
			os.RemoveAll(filepath.Join(dataDir, "templates", tplID))
		}
	})
	if res := must(t, 0, "template", "list", "--json"); strings.Contains(res.stdout, name) {
		t.Errorf("the default team lists team %s's template: %s", team, res.stdout)
	}
	must(t, 3, "sandbox", "create", "--template", name)
	var ts []struct {
		TemplateID string   `json:"templateID"`
		Aliases    []string `json:"aliases"`
	}
	if err := json.Unmarshal([]byte(must(t, 0, "template", "list", "--json", "--api-key", teamKey).stdout), &ts); err != nil {
		t.Fatal(err)
	}
	for _, tp := range ts {
		if len(tp.Aliases) > 0 && tp.Aliases[0] == name {
			tplID = tp.TemplateID
		}
	}
	if tplID == "" {
		t.Fatalf("team %s does not list its own template: %+v", team, ts)
	}
	sid := strings.TrimSpace(must(t, 0, "sandbox", "create", "--template", name, "--timeout", "2m", "--api-key", teamKey).stdout)
	must(t, 0, "sandbox", "kill", sid, "--api-key", teamKey)
	must(t, 0, "template", "rm", name, "--api-key", teamKey)

	api := os.Getenv("E2B_API_URL")
	for key, want := range map[string]int{teamKey: 403, os.Getenv("E2B_API_KEY"): 403, adminKey: 200} {
		req, _ := http.NewRequest("GET", api+"/admin/teams", nil)
		req.Header.Set("X-API-KEY", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /admin/teams: %d, want %d", resp.StatusCode, want)
		}
	}
}

// TestSudo: the default user may `sudo`, as on E2B, on both runtimes:
// gVisor's root is the sentry's, and runc sandboxes have user namespaces
// (the server's default), so neither is the host's root.
// createOn creates a sandbox of the default template on runtime rt, killed
// when the test ends, and returns its ID.
func createOn(t *testing.T, rt string) string {
	t.Helper()
	res := must(t, 0, "sandbox", "create", "--json", "--timeout", "5m", "--runtime", rt)
	var created struct {
		SandboxID string `json:"sandboxID"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &created); err != nil || created.SandboxID == "" {
		t.Fatalf("create --json output %q: %v", res.stdout, err)
	}
	t.Cleanup(func() { run(t, "sandbox", "kill", created.SandboxID) })
	return created.SandboxID
}

func TestSudo(t *testing.T) {
	for _, rt := range []string{"runsc", "runc"} {
		t.Run(rt, func(t *testing.T) {
			id := createOn(t, rt)
			res := run(t, "sandbox", "exec", id, "--", "id -un; sudo -n id -u 2>&1; sudo -n touch /etc/by-sudo && stat -c %U /etc/by-sudo")
			if !strings.HasPrefix(res.stdout, "user\n") {
				t.Fatalf("exec ran as %q, want the default user", res.stdout)
			}
			if res.code != 0 || !strings.HasSuffix(res.stdout, "\n0\nroot\n") {
				t.Errorf("sudo as the default user on %s: exit %d, %q; want uid 0 and a root-owned file", rt, res.code, res.stdout)
			}
		})
	}
}

// TestMachineView: inside a sandbox, free, /proc/meminfo, nproc and
// /proc/uptime describe the sandbox (its template's size, its own boot),
// not the host, on both runtimes: agents size their work from them.
func TestMachineView(t *testing.T) {
	var templates []struct {
		Names    []string `json:"names"`
		CPUCount int      `json:"cpuCount"`
		MemoryMB int      `json:"memoryMB"`
	}
	if err := json.Unmarshal([]byte(must(t, 0, "template", "list", "--json").stdout), &templates); err != nil {
		t.Fatal(err)
	}
	cpus, memMB := 0, 0
	for _, tp := range templates {
		if slices.Contains(tp.Names, "base") {
			cpus, memMB = tp.CPUCount, tp.MemoryMB
		}
	}
	if cpus == 0 || memMB == 0 {
		t.Fatalf("template base not listed with a size: %+v", templates)
	}
	wantCPUs := min(cpus, goruntime.NumCPU())
	for _, rt := range []string{"runsc", "runc"} {
		t.Run(rt, func(t *testing.T) {
			id := createOn(t, rt)
			res := must(t, 0, "sandbox", "exec", id, "--",
				`free -m | awk '/^Mem:/ {print $2}'; grep MemTotal /proc/meminfo | awk '{print $2}'; nproc; python3 -c 'import os; print(os.cpu_count())'; cut -d. -f1 /proc/uptime`)
			got := strings.Fields(res.stdout)
			if len(got) != 5 {
				t.Fatalf("output %q: want 5 numbers", res.stdout)
			}
			want := []string{strconv.Itoa(memMB), strconv.Itoa(memMB * 1024), strconv.Itoa(wantCPUs), strconv.Itoa(wantCPUs)}
			names := []string{"free -m total", "MemTotal kB", "nproc", "os.cpu_count()"}
			for i, w := range want {
				if got[i] != w {
					t.Errorf("%s on %s = %s, want %s (the template's)", names[i], rt, got[i], w)
				}
			}
			if up, err := strconv.Atoi(got[4]); err != nil || up > 300 {
				t.Errorf("/proc/uptime on %s = %s s: want the sandbox's own (seconds), not the host's", rt, got[4])
			}
		})
	}
}
