package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Baselines measure the same work without Airlock, so every scenario can be
// read as a ratio to a floor measured on the same machine in the same run.

// bareRuntime runs `echo hi` with a bare OCI runtime (`runc run` or
// `runsc run`) over a read-only bundle of rootfs: namespaces and a cgroup,
// no network setup, no API, no envd.
type bareRuntime struct {
	runtime string // runc or runsc
	binary  string
	dir     string // bundle and --root live here
}

func newBareRuntime(runtime, rootfs string) (*bareRuntime, error) {
	bin, err := exec.LookPath(runtime)
	if err != nil {
		return nil, fmt.Errorf("baseline %s: %w", runtime, err)
	}
	dir, err := os.MkdirTemp("", "airlock-bench-"+runtime+"-")
	if err != nil {
		return nil, err
	}
	b := &bareRuntime{runtime: runtime, binary: bin, dir: dir}
	data, err := json.MarshalIndent(bundleSpec(rootfs), "", "  ")
	if err != nil {
		b.close()
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), data, 0o600); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *bareRuntime) close() { os.RemoveAll(b.dir) }

func (b *bareRuntime) args(id string) []string {
	args := []string{"--root", filepath.Join(b.dir, "state")}
	if b.runtime == "runsc" {
		args = append(args, "--platform=systrap", "--network=none")
	}
	return append(args, "run", "--bundle", b.dir, id)
}

// once runs one container to completion and checks its output.
func (b *bareRuntime) once(ctx context.Context) error {
	id := "airlock-bench-" + randomSuffix()
	cmd := exec.CommandContext(ctx, b.binary, b.args(id)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		// Best effort: a failed run may leave state behind.
		_ = exec.Command(b.binary, "--root", filepath.Join(b.dir, "state"), "delete", "--force", id).Run()
		return fmt.Errorf("%s run: %w: %s", b.runtime, err, strings.TrimSpace(errb.String()))
	}
	if strings.TrimSpace(out.String()) != "hi" {
		return fmt.Errorf("%s run: unexpected output %q", b.runtime, out.String())
	}
	return nil
}

// bundleSpec is a minimal container: its own pid, mount, ipc, uts and
// (empty) network namespaces, a read-only root and the usual pseudo-filesystems.
func bundleSpec(rootfs string) *specs.Spec {
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"}
	return &specs.Spec{
		Version: specs.Version,
		Root:    &specs.Root{Path: rootfs, Readonly: true},
		Process: &specs.Process{
			Args:            []string{"/bin/echo", "hi"},
			Env:             []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cwd:             "/",
			Capabilities:    &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
			NoNewPrivileges: true,
		},
		Hostname: "bench",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc"},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
		},
	}
}

// unshareChroot runs `echo hi` in fresh namespaces chrooted into rootfs:
// the cheapest thing that still deserves the name container.
func unshareChroot(ctx context.Context, rootfs string) error {
	cmd := exec.CommandContext(ctx, "unshare", "--fork", "--pid", "--mount-proc", "--net", "--mount", "--uts", "--ipc",
		"chroot", rootfs, "/bin/echo", "hi")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("unshare+chroot: %w: %s", err, bytes.TrimSpace(out))
	}
	if strings.TrimSpace(string(out)) != "hi" {
		return fmt.Errorf("unshare+chroot: unexpected output %q", out)
	}
	return nil
}

// hostShell is the fork+exec floor of a command round-trip.
func hostShell(ctx context.Context) error {
	return exec.CommandContext(ctx, "sh", "-c", "true").Run()
}

// loopback is an HTTP server on 127.0.0.1 with a tiny RPC-like endpoint
// and a file store, the floor for envd round-trips and transfers.
type loopback struct {
	srv    *http.Server
	base   string
	dir    string
	client *http.Client
}

func newLoopback() (*loopback, error) {
	dir, err := os.MkdirTemp("", "airlock-bench-http-")
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /rpc", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"exitCode":0}`))
	})
	// /exec does what envd does for a command, minus isolation: fork+exec
	// the command, wait, answer with its exit code.
	mux.HandleFunc("POST /exec", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if err := exec.CommandContext(r.Context(), "/bin/true").Run(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"exitCode":0}`))
	})
	mux.HandleFunc("POST /file", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(filepath.Join(dir, "blob"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		http.ServeFile(w, r, filepath.Join(dir, "blob"))
	})
	l := &loopback{srv: &http.Server{Handler: mux}, base: "http://" + ln.Addr().String(), dir: dir,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	go func() { _ = l.srv.Serve(ln) }()
	return l, nil
}

func (l *loopback) close() {
	l.srv.Close()
	os.RemoveAll(l.dir)
}

func (l *loopback) roundTrip(ctx context.Context) error { return l.post(ctx, "/rpc") }

// execRoundTrip is a loopback HTTP request that runs /bin/true on the host:
// the floor of a command round-trip through any HTTP agent.
func (l *loopback) execRoundTrip(ctx context.Context) error { return l.post(ctx, "/exec") }

func (l *loopback) post(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+path, strings.NewReader(`{"cmd":"/bin/true"}`))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return l.send(req)
}

// transfer uploads data and downloads it again.
func (l *loopback) transfer(ctx context.Context, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/file", bytes.NewReader(data))
	if err != nil {
		return err
	}
	if err := l.send(req); err != nil {
		return err
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/file", nil)
	if err != nil {
		return err
	}
	return l.send(req)
}

func (l *loopback) send(req *http.Request) error {
	resp, err := l.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("loopback %s: HTTP %d", req.URL.Path, resp.StatusCode)
	}
	return err
}

// diskCopy writes data to a file in dir and reads it back: the local floor
// of a file write+read.
func diskCopy(dir string, data []byte) error {
	p := filepath.Join(dir, "blob")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return err
	}
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(io.Discard, f)
	return err
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// timeIt runs fn n times after warm-up runs and returns the samples.
func timeIt(ctx context.Context, warmup, n int, fn func(context.Context) error) ([]time.Duration, error) {
	for i := 0; i < warmup; i++ {
		if err := fn(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		t0 := time.Now()
		if err := fn(ctx); err != nil {
			return out, err
		}
		out = append(out, time.Since(t0))
	}
	return out, nil
}
