package buildbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/buildbox"
	"github.com/airlock-sandbox/airlock/internal/leakcheck"
	"github.com/airlock-sandbox/airlock/internal/network"
	"github.com/airlock-sandbox/airlock/internal/roottest"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/runtime/drivertest"
	"github.com/airlock-sandbox/airlock/internal/runtime/oci"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/sqlite"
	"github.com/airlock-sandbox/airlock/internal/template"
)

const usernsBase = 1 << 30

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture: a template manager over a temp data dir holding "tiny" (a
// busybox tree), whose steps run through a real Runner: runc with user
// namespaces and runsc, on a bridge of the test's own.
type fixture struct {
	m       *template.Manager
	st      store.Store
	from    *store.Template
	gateway netip.Addr
	base    string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	roottest.Require(t, "build sandboxes (runtimes, network namespaces)")
	base, err := os.MkdirTemp("", "airlock-buildbox-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	// Sandbox root (an unprivileged host id under user namespaces) must
	// pass the test's directories, as the server's data dir lets it.
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	parent := fmt.Sprintf("airlockbbtest%d", os.Getpid())
	leak := leakcheck.Options{MountRoots: []string{base}, RootsOnly: true, CgroupParents: []string{parent}, ProcessArgs: []string{base}, LinkPrefixes: []string{"albb"}}
	before := leakcheck.MustSnapshot(t, leak)
	t.Cleanup(func() {
		leakcheck.Check(t, before)
		dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
		for _, d := range dirs {
			_ = os.Remove(d)
		}
	})
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	nm, err := network.New(context.Background(), network.Config{Bridge: "albbtest0", Subnet: netip.MustParsePrefix("10.215.9.0/24")}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := nm.Destroy(context.Background(), true); err != nil {
			t.Errorf("destroy network: %v", err)
		}
		nm.Close()
	})
	drivers := map[string]runtime.Driver{}
	for _, rt := range []string{oci.RuntimeRunc, oci.RuntimeRunsc} {
		cfg := oci.Config{
			Runtime:      rt,
			StateDir:     filepath.Join(base, "builds"),
			RuntimeRoot:  filepath.Join(base, "root-"+rt),
			CgroupParent: parent,
		}
		if rt == oci.RuntimeRunc {
			cfg.UserNS = &oci.IDRange{HostID: usernsBase, Size: 65536}
		} else {
			cfg.Binary = "/usr/local/bin/runsc"
		}
		d, err := oci.New(cfg, log)
		if err != nil {
			t.Fatalf("driver %s: %v", rt, err)
		}
		drivers[rt] = d
	}
	runner, err := buildbox.New(buildbox.Config{Drivers: drivers, Default: oci.RuntimeRunsc, Network: nm, Policy: network.Policy{AllowInternet: true}, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(filepath.Join(base, "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	root := drivertest.BusyboxRootfs(t)
	if err := os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=tiny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from := &store.Template{
		ID: "tinytemplate00000000", Aliases: []string{"tiny"}, RootfsDir: root, BuildStatus: template.StatusReady,
		CPUCount: 1, MemoryMB: 256, DiskSizeMB: 512, CreatedAt: time.Now().UTC(),
	}
	if err := st.PutTemplate(context.Background(), from); err != nil {
		t.Fatal(err)
	}
	m := template.NewManager(template.Config{DataDir: filepath.Join(base, "data"), Steps: runner}, st, log)
	return &fixture{m: m, st: st, from: from, gateway: nm.Gateway(), base: base}
}

func TestBuildInSandbox(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// A listener on the host, on the build bridge's own address: a build
	// step must not reach the host.
	ln, err := net.Listen("tcp", net.JoinHostPort(f.gateway.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var reached sync.WaitGroup
	var hits int
	var hitsMu sync.Mutex
	reached.Add(1)
	go func() {
		defer reached.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			hitsMu.Lock()
			hits++
			hitsMu.Unlock()
			c.Close()
		}
	}()
	for _, rt := range []string{oci.RuntimeRunc, oci.RuntimeRunsc} {
		t.Run(rt, func(t *testing.T) {
			var progress syncBuffer
			name := "derived-" + rt
			rec, err := f.m.Derive(ctx, template.DeriveOptions{
				Name: name, From: "tiny", Runtime: rt,
				Run: []string{
					"echo derived > /etc/derived; echo home=$HOME host=$(hostname)",
					"rm /etc/os-release",
					"mkdir -p /opt/x && echo y > /opt/x/f && chown 1000:1000 /opt/x/f && chmod 4755 /opt/x/f && ln -s /etc/passwd /opt/x/link",
					"ln -s / /escape; echo not-through-links > /escape/opt/through 2>/dev/null; true",
					fmt.Sprintf("echo | nc -w 2 %s %d && echo REACHED-HOST; true", f.gateway, ln.Addr().(*net.TCPAddr).Port),
					"cat /proc/self/uid_map",
					"sleep 300 & printf 'no newline at the end'",
				},
			}, &progress)
			if err != nil {
				t.Fatalf("Derive: %v\nprogress:\n%s", err, progress.String())
			}
			out := progress.String()
			for _, s := range []string{"$ rm /etc/os-release", "home=/root host=build", "no newline at the end"} {
				if !strings.Contains(out, s) {
					t.Errorf("progress lacks %q:\n%s", s, out)
				}
			}
			if strings.Contains(out, "\n  REACHED-HOST\n") {
				t.Errorf("a build step reached the host:\n%s", out)
			}
			if rt == oci.RuntimeRunc && !regexp.MustCompile(fmt.Sprintf(`\b0\s+%d\s+65536\b`, usernsBase)).MatchString(out) {
				t.Errorf("runc build step's uid_map is not the sandbox range:\n%s", out)
			}
			dir := rec.RootfsDir
			if data, err := os.ReadFile(filepath.Join(dir, "etc/derived")); err != nil || string(data) != "derived\n" {
				t.Errorf("etc/derived = %q, %v", data, err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "etc/os-release")); !os.IsNotExist(err) {
				t.Errorf("deleted etc/os-release is in the new tree: %v", err)
			}
			if _, err := os.Lstat(filepath.Join(f.from.RootfsDir, "etc/os-release")); err != nil {
				t.Errorf("the source template changed: %v", err)
			}
			var st syscall.Stat_t
			if err := syscall.Lstat(filepath.Join(dir, "opt/x/f"), &st); err != nil {
				t.Fatal(err)
			} else if st.Uid != 1000 || st.Gid != 1000 || st.Mode&0o7777 != 0o4755 {
				t.Errorf("opt/x/f: uid %d gid %d mode %o, want 1000 1000 4755 (sandbox ids, setuid kept)", st.Uid, st.Gid, st.Mode&0o7777)
			}
			if err := syscall.Lstat(filepath.Join(dir, "etc/derived"), &st); err != nil || st.Uid != 0 {
				t.Errorf("etc/derived: uid %d, %v; want 0 (the sandbox's root)", st.Uid, err)
			}
			if link, err := os.Readlink(filepath.Join(dir, "opt/x/link")); err != nil || link != "/etc/passwd" {
				t.Errorf("opt/x/link = %q, %v; want the symlink kept", link, err)
			}
			if data, err := os.ReadFile(filepath.Join(dir, "opt/through")); err != nil || string(data) != "not-through-links\n" {
				t.Errorf("opt/through (written inside through a link to /) = %q, %v", data, err)
			}
			for _, p := range []string{"etc/resolv.conf", "tmp/.airlock-disk", ".airlock-build"} {
				if fi, err := os.Lstat(filepath.Join(dir, p)); err == nil && fi.Size() > 0 {
					t.Errorf("%s of the build sandbox leaked into the template", p)
				}
			}
		})
	}
	t.Run("failing step records nothing", func(t *testing.T) {
		_, err := f.m.Derive(ctx, template.DeriveOptions{Name: "broken", From: "tiny", Run: []string{"echo partial > /etc/partial", "echo boom-output; exit 3"}}, nil)
		if !errors.Is(err, template.ErrStepFailed) || !strings.Contains(err.Error(), "boom-output") || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("Derive = %v; want ErrStepFailed with its output and status", err)
		}
		if _, err := f.st.GetTemplate(ctx, "broken"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("broken recorded: %v", err)
		}
	})
	t.Run("cancelled build stops", func(t *testing.T) {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		start := time.Now()
		_, err := f.m.Derive(cctx, template.DeriveOptions{Name: "slow", From: "tiny", Run: []string{"sleep 600"}}, nil)
		if err == nil || time.Since(start) > 60*time.Second {
			t.Fatalf("Derive = %v after %s; want a prompt error", err, time.Since(start))
		}
	})
	ln.Close()
	reached.Wait()
	if hits > 0 {
		t.Errorf("the host listener on the build bridge got %d connections from build steps", hits)
	}
}
