package integration

import (
	"bytes"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/leakcheck"
)

const runtimeRunc = "runc"

// Limits: a memory bomb is OOM-killed and a fork bomb stops at the pids
// limit, while the sandbox (and envd) survive both.
func TestResourceLimits(t *testing.T) {
	s := startServer(t, runtimeRunc, "")
	sb := s.create(t, map[string]any{"timeout": 300})
	defer sb.kill(t)

	res, err := sb.tryRun(`python3 -c "b = b'x' * (3 * 1024**3); print(len(b))"`, "", 2*time.Minute)
	if err != nil {
		t.Fatalf("memory bomb: %v", err)
	}
	if res.exitCode == 0 || !strings.Contains(res.status, "killed") {
		t.Fatalf("memory bomb was not OOM-killed: exit %d status %q stdout %q stderr %q", res.exitCode, res.status, res.stdout, res.stderr)
	}
	if got := sb.run(t, "echo alive", 30*time.Second).stdout; got != "alive\n" {
		t.Fatalf("sandbox unusable after OOM: %q", got)
	}

	bomb := `python3 - <<'EOF'
import os, signal, time
pids = []
try:
    while len(pids) < 5000:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        pids.append(pid)
except OSError as e:
    print("stopped", len(pids), e.errno)
for p in pids:
    os.kill(p, signal.SIGKILL)
for p in pids:
    os.waitpid(p, 0)
EOF`
	res = sb.run(t, bomb, 2*time.Minute)
	var stoppedAt, errno int
	if _, err := fmtSscan(res.stdout, &stoppedAt, &errno); err != nil {
		t.Fatalf("fork bomb was not stopped by the pids limit: %q %q", res.stdout, res.stderr)
	}
	if stoppedAt < 50 || stoppedAt >= 1024 {
		t.Fatalf("fork bomb stopped after %d processes; want below the 1024 pids limit", stoppedAt)
	}
	if got := sb.run(t, "echo alive", 30*time.Second).stdout; got != "alive\n" {
		t.Fatalf("sandbox unusable after fork bomb: %q", got)
	}
}

// Egress and isolation: the test builds its own "internet" in a network
// namespace (198.18.0.0/15 benchmark range, a /30 no other test uses) so no traffic leaves the host.
func TestNetworkIsolation(t *testing.T) {
	port := strings.Split(freeAddr(t), ":")[1]
	s := startServer(t, runtimeRunc, "0.0.0.0:"+port)
	s.addr = "127.0.0.1:" + port
	inet := fakeInternet(t)

	open := s.create(t, map[string]any{"timeout": 300})
	defer open.kill(t)
	closed := s.create(t, map[string]any{"timeout": 300, "allow_internet_access": false})
	defer closed.kill(t)

	curl := func(sb *sandbox, url string) bool {
		res, err := sb.tryRun("curl -sS -m 3 -o /dev/null -w '%{http_code}' "+url, "", 30*time.Second)
		if err != nil {
			t.Fatalf("run curl: %v", err)
		}
		return res.exitCode == 0 && res.stdout == "200"
	}
	if !curl(open, inet) {
		t.Error("sandbox with internet access cannot reach the (fake) internet")
	}
	if curl(closed, inet) {
		t.Error("sandbox without internet access reached the (fake) internet")
	}

	// A server in one sandbox is not reachable from another.
	_, err := open.tryRun("nohup python3 -m http.server 8000 >/dev/null 2>&1 &", "", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	openIP := strings.TrimSpace(open.run(t, "hostname -I", 10*time.Second).stdout)
	waitFor(t, 20*time.Second, "the in-sandbox web server", func() bool {
		return curl(open, "http://127.0.0.1:8000/")
	})
	other := s.create(t, map[string]any{"timeout": 300})
	defer other.kill(t)
	if curl(other, "http://"+openIP+":8000/") {
		t.Error("one sandbox reached another sandbox's server")
	}
	// Nor the host: not the Airlock API, listening on all addresses.
	gw := strings.TrimSpace(other.run(t, "ip route | awk '/^default/ {print $3}'", 10*time.Second).stdout)
	if gw == "" {
		t.Fatal("no default route in the sandbox")
	}
	if curl(other, "http://"+gw+":"+port+"/health") {
		t.Error("a sandbox reached the Airlock API on the host")
	}
	// The gateway reaches the sandbox's own port (host → sandbox is allowed).
	req, _ := http.NewRequest("GET", "http://"+s.addr+"/", nil)
	req.Header.Set("E2b-Sandbox-Id", open.ID)
	req.Header.Set("E2b-Sandbox-Port", "8000")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("gateway to a sandbox port: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// fakeInternet creates a namespace with an HTTP server on 198.19.213.2 routed
// from the host, and returns its URL.
func fakeInternet(t *testing.T) string {
	t.Helper()
	sh := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	_ = exec.Command("ip", "netns", "del", "itest-inet").Run()
	_ = exec.Command("ip", "link", "del", "itinet0").Run()
	sh("ip", "netns", "add", "itest-inet")
	t.Cleanup(func() {
		_ = exec.Command("ip", "link", "del", "itinet0").Run()
		_ = exec.Command("ip", "netns", "del", "itest-inet").Run()
	})
	sh("ip", "link", "add", "itinet0", "type", "veth", "peer", "name", "itinet1")
	sh("ip", "link", "set", "itinet1", "netns", "itest-inet")
	sh("ip", "addr", "add", "198.19.213.1/30", "dev", "itinet0")
	sh("ip", "link", "set", "itinet0", "up")
	sh("ip", "netns", "exec", "itest-inet", "ip", "addr", "add", "198.19.213.2/30", "dev", "itinet1")
	sh("ip", "netns", "exec", "itest-inet", "ip", "link", "set", "itinet1", "up")
	sh("ip", "netns", "exec", "itest-inet", "ip", "link", "set", "lo", "up")
	// No default route: replies go to the masqueraded source on the link,
	// and nothing in here can send traffic (DNS lookups, say) off the host.
	srv := exec.Command("ip", "netns", "exec", "itest-inet", "python3", "-m", "http.server", "8080", "--bind", "198.19.213.2")
	var out bytes.Buffer
	srv.Stdout, srv.Stderr = &out, &out
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
		if t.Failed() {
			t.Logf("fake internet server output:\n%s", out.String())
		}
	})
	waitFor(t, 10*time.Second, "the fake internet server", func() bool {
		c, err := net.DialTimeout("tcp", "198.19.213.2:8080", time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "http://198.19.213.2:8080/"
}

// A crash of the server (SIGKILL) loses nothing: running sandboxes are
// adopted, timeouts still fire, and after the last kill nothing is left
// on the host.
func TestCrashRecoveryAndLeaks(t *testing.T) {
	addr := freeAddr(t)
	s := startServer(t, runtimeRunc, addr)
	before := leakcheck.MustSnapshot(t, leakcheck.DefaultOptions())

	keep := s.create(t, map[string]any{"timeout": 600})
	expire := s.create(t, map[string]any{"timeout": 15})
	keep.run(t, "echo persisted > /home/user/state.txt", 30*time.Second)

	s.crash()
	s2 := startServer(t, runtimeRunc, addr)
	keep.s, expire.s = s2, s2

	if got := keep.run(t, "cat /home/user/state.txt", 30*time.Second).stdout; got != "persisted\n" {
		t.Fatalf("adopted sandbox lost its state: %q", got)
	}
	if code, b := s2.api("GET", "/sandboxes/"+keep.ID, nil); code != 200 {
		t.Fatalf("adopted sandbox not found: %d %s", code, b)
	}
	waitFor(t, 60*time.Second, "the short sandbox to time out across the restart", func() bool {
		code, _ := s2.api("GET", "/sandboxes/"+expire.ID, nil)
		return code == http.StatusNotFound
	})
	req, _ := http.NewRequest("GET", "http://"+s2.addr+"/health", nil)
	req.Header.Set("E2b-Sandbox-Id", expire.ID)
	req.Header.Set("E2b-Sandbox-Port", "49983")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadGateway {
		t.Errorf("timed-out sandbox's envd health: %v %v, want 502", resp, err)
	}

	keep.kill(t)
	s2.stop()
	leakcheck.Check(t, before)
}

// fmtSscan parses "stopped N ERRNO" from the fork bomb's output.
func fmtSscan(out string, n, errno *int) (int, error) {
	fields := strings.Fields(out)
	if len(fields) != 3 || fields[0] != "stopped" {
		return 0, strconv.ErrSyntax
	}
	var err error
	if *n, err = strconv.Atoi(fields[1]); err != nil {
		return 0, err
	}
	if *errno, err = strconv.Atoi(fields[2]); err != nil {
		return 0, err
	}
	return 2, nil
}
