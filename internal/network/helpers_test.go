package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/netnsexec"
	"github.com/airlock-sandbox/airlock/internal/roottest"
)

func requireRoot(t testing.TB) {
	t.Helper()
	roottest.Require(t, "network tests (netns, veth, nftables)")
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newTestManager builds a Manager on a bridge of its own, after clearing what
// an aborted earlier run may have left, and destroys it at the end.
func newTestManager(t testing.TB, bridge, subnet string) *Manager {
	t.Helper()
	return newTestManagerCfg(t, Config{Bridge: bridge, Subnet: netip.MustParsePrefix(subnet)})
}

// newOpenManager is newTestManager with the operator's opt-in to let AllowOut
// open protected ranges, the host and other sandboxes.
func newOpenManager(t testing.TB, bridge, subnet string) *Manager {
	t.Helper()
	return newTestManagerCfg(t, Config{Bridge: bridge, Subnet: netip.MustParsePrefix(subnet), AllowProtected: true})
}

func newTestManagerCfg(t testing.TB, cfg Config) *Manager {
	t.Helper()
	requireRoot(t)
	ctx := context.Background()
	m, err := New(ctx, cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := m.Destroy(ctx, true); err != nil {
		t.Fatalf("Destroy leftovers: %v", err)
	}
	m.Close()
	if m, err = New(ctx, cfg, testLogger(t)); err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Destroy(ctx, true); err != nil {
			t.Errorf("Destroy: %v", err)
		}
		m.Close()
	})
	return m
}

func randomID(t testing.TB) string {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b) // 20 chars of [0-9a-f]
}

func attach(t testing.TB, m *Manager, p Policy) *Endpoint {
	t.Helper()
	id := randomID(t)
	ep, err := m.Attach(context.Background(), id, p)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Detach(context.Background(), id); err != nil {
			t.Errorf("Detach %s: %v", id, err)
		}
	})
	return ep
}

// serveHTTP serves, on a listener opened inside the netns at nsPath (or the
// host netns if ""), a handler that answers with the caller's address.
func serveHTTP(t testing.TB, nsPath, addr string) string {
	t.Helper()
	var ln net.Listener
	listen := func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	}
	var err error
	if nsPath == "" {
		err = listen()
	} else {
		err = netnsexec.Run(nsPath, listen)
	}
	if err != nil {
		t.Fatalf("listen %s in %q: %v", addr, nsPath, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.RemoteAddr)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// httpGetFrom fetches http://addr/ with the TCP connection made from inside
// the netns at nsPath ("" = host) and returns the body (the peer address the
// server saw).
func httpGetFrom(nsPath, addr string, timeout time.Duration) (string, error) {
	var conn net.Conn
	dial := func() (err error) {
		conn, err = net.DialTimeout("tcp4", addr, timeout)
		return err
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = netnsexec.Run(nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(timeout))
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: x\r\n\r\n")
	resp, err := io.ReadAll(conn)
	if err != nil {
		return "", err
	}
	_, body, ok := strings.Cut(string(resp), "\r\n\r\n")
	if !ok || !strings.HasPrefix(string(resp), "HTTP/1.0 200") {
		return "", fmt.Errorf("bad response %q", resp)
	}
	return body, nil
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// dump runs a listing command (ip, bridge), again while a concurrent change
// elsewhere on the host (other tests' sandboxes) interrupts its dump.
func dump(t testing.TB, name string, args ...string) string {
	t.Helper()
	for try := 1; ; try++ {
		out := run(t, name, args...)
		if !strings.Contains(out, "Dump was interrupted") || try == 20 {
			return out
		}
	}
}

// fakeInternet is a netns standing in for the internet, reached from the host
// over a veth in the 198.18.0.0/15 benchmark range:
//
//	host altinet0 198.18.0.1/30 <-> altinet1 198.18.0.2/30 (netns)
//	servers on 198.18.1.1 and 198.18.1.2 (lo in the netns), host route via 198.18.0.2
type fakeInternet struct {
	nsPath   string
	hostSide netip.Addr
}

func newFakeInternet(t testing.TB) *fakeInternet {
	t.Helper()
	const ns = "altest-inet"
	// Clear leftovers from an aborted run.
	exec.Command("ip", "link", "del", "altinet0").Run()
	exec.Command("ip", "netns", "del", ns).Run()
	exec.Command("ip", "route", "del", "198.18.1.0/24").Run()

	run(t, "ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run(t, "ip", "link", "add", "altinet0", "type", "veth", "peer", "name", "altinet1", "netns", ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", "altinet0").Run() })
	run(t, "ip", "addr", "add", "198.18.0.1/30", "dev", "altinet0")
	run(t, "ip", "link", "set", "altinet0", "up")
	for _, args := range [][]string{
		{"addr", "add", "198.18.0.2/30", "dev", "altinet1"},
		{"addr", "add", "198.18.1.1/32", "dev", "lo"},
		{"addr", "add", "198.18.1.2/32", "dev", "lo"},
		{"link", "set", "lo", "up"},
		{"link", "set", "altinet1", "up"},
		{"route", "add", "default", "via", "198.18.0.1"},
	} {
		run(t, "ip", append([]string{"-n", ns}, args...)...)
	}
	run(t, "ip", "route", "add", "198.18.1.0/24", "via", "198.18.0.2")
	t.Cleanup(func() { exec.Command("ip", "route", "del", "198.18.1.0/24").Run() })
	return &fakeInternet{nsPath: "/run/netns/" + ns, hostSide: netip.MustParseAddr("198.18.0.1")}
}

// noLeaks asserts nothing of a detached sandbox remains on the host.
func noLeaks(t testing.TB, m *Manager, id string, ip netip.Addr) {
	t.Helper()
	if _, err := os.Stat(m.netnsPath(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("netns file %s still exists (err=%v)", m.netnsPath(id), err)
	}
	links := dump(t, "ip", "-o", "link", "show")
	if strings.Contains(links, vethName(id)) {
		t.Errorf("veth %s still exists", vethName(id))
	}
	if neigh := dump(t, "ip", "neigh", "show", ip.String(), "dev", m.cfg.Bridge); strings.TrimSpace(neigh) != "" {
		t.Errorf("bridge still has a neighbour entry for %s: %s", ip, neigh)
	}
	ruleset := run(t, "nft", "list", "ruleset")
	if strings.Contains(ruleset, id) {
		t.Errorf("nft ruleset still mentions %s:\n%s", id, ruleset)
	}
	if strings.Contains(ruleset, ip.String()+" ") || strings.Contains(ruleset, ip.String()+"\n") {
		t.Errorf("nft ruleset still mentions %s:\n%s", ip, ruleset)
	}
}

// pinnedNeighbours checks the permanent neighbour entries of an endpoint:
// the bridge's for the sandbox and the sandbox's for the gateway.
func pinnedNeighbours(t testing.TB, m *Manager, ep *Endpoint) {
	t.Helper()
	host := dump(t, "ip", "neigh", "show", ep.IP.String(), "dev", m.cfg.Bridge)
	if want := sandboxMAC(ep.IP).String(); !strings.Contains(host, want) || !strings.Contains(host, "PERMANENT") {
		t.Errorf("bridge neighbour for %s = %q, want permanent %s", ep.IP, host, want)
	}
	if fdb := dump(t, "bridge", "fdb", "show", "dev", ep.HostVeth); !strings.Contains(fdb, sandboxMAC(ep.IP).String()+" master "+m.cfg.Bridge+" static") {
		t.Errorf("bridge fdb of %s = %q, want a static entry for %s", ep.HostVeth, fdb, sandboxMAC(ep.IP))
	}
	inside := dump(t, "nsenter", "--net="+ep.NetNSPath, "ip", "neigh", "show", ep.Gateway.String(), "dev", "eth0")
	if !strings.Contains(inside, "PERMANENT") {
		t.Errorf("sandbox neighbour for gateway %s = %q, want permanent", ep.Gateway, inside)
	}
}
