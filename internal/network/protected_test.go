package network

import (
	"context"
	"errors"
	"net/netip"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/google/nftables"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

func TestMinimalPrefixes(t *testing.T) {
	got := minimalPrefixes(prefixes("10.1.0.0/16", "192.168.0.0/16", "10.0.0.0/8", "10.0.0.0/8", "192.168.3.0/24", "8.8.8.8/32"))
	want := prefixes("8.8.8.8/32", "10.0.0.0/8", "192.168.0.0/16")
	if !slices.Equal(got, want) {
		t.Errorf("minimalPrefixes = %v, want %v", got, want)
	}
}

// CheckPolicy refuses AllowOut entries inside protected ranges unless the
// operator allowed them; wider entries pass (their protected part stays
// closed in the firewall).
func TestCheckPolicy(t *testing.T) {
	cfg := Config{Subnet: netip.MustParsePrefix("10.213.0.0/16"), Protected: slices.Concat(DefaultProtected, prefixes("203.0.113.0/24"))}
	m := &Manager{cfg: cfg, closed: closedRanges(cfg, prefixes("198.51.100.7/32"))}
	open := &Manager{cfg: cfg, closed: m.closed}
	open.cfg.AllowProtected = true
	for _, tc := range []struct {
		allow string
		ok    bool
	}{
		{"0.0.0.0/0", true},
		{"8.0.0.0/6", true}, // holds 10/8, which stays closed
		{"198.18.1.1/32", true},
		{"93.184.216.34/32", true},
		{"10.0.0.0/8", false},
		{"10.213.0.1/32", false}, // the gateway
		{"10.213.4.5/32", false}, // another sandbox
		{"172.16.5.0/24", false},
		{"192.168.1.1/32", false},
		{"100.64.0.0/10", false},
		{"100.100.100.200/32", false},
		{"169.254.169.254/32", false},
		{"127.0.0.1/32", false},
		{"224.0.0.1/32", false},
		{"203.0.113.9/32", false},  // the host's LAN
		{"198.51.100.7/32", false}, // the host's own address
		{"10.1.2.3/8", false},      // unmasked, still inside
	} {
		err := m.CheckPolicy(Policy{AllowOut: prefixes(tc.allow)})
		switch {
		case tc.ok && err != nil:
			t.Errorf("allowOut %s: %v, want accepted", tc.allow, err)
		case !tc.ok && (!errors.Is(err, ErrProtected) || !errors.Is(err, errdefs.ErrInvalid)):
			t.Errorf("allowOut %s: %v, want ErrProtected", tc.allow, err)
		}
		if err := open.CheckPolicy(Policy{AllowOut: prefixes(tc.allow)}); err != nil {
			t.Errorf("allowOut %s with AllowProtected: %v", tc.allow, err)
		}
	}
	// DenyOut may name anything.
	if err := m.CheckPolicy(Policy{DenyOut: prefixes("10.0.0.0/8")}); err != nil {
		t.Errorf("denyOut 10.0.0.0/8: %v", err)
	}
}

// fakeLAN is a bridge on the host with a peer namespace behind it, the way a
// host's LAN looks, plus host routes through that peer to addresses in every
// protected range, each answering HTTP inside the peer.
type fakeLAN struct {
	servers map[string]string // range name → server address
}

func newFakeLAN(t *testing.T) *fakeLAN {
	t.Helper()
	const ns = "altest-lan"
	targets := map[string]string{
		"the host's LAN":    "203.0.113.2",
		"RFC 1918 10/8":     "10.99.0.2",
		"RFC 1918 172.16":   "172.20.0.2",
		"RFC 1918 192.168":  "192.168.77.2",
		"CGNAT":             "100.64.5.2",
		"metadata 100.100.": "100.100.100.200",
		"link-local":        "169.254.77.77", // not .169.254: the host may use it
	}
	cleanup := func() {
		for _, a := range targets {
			exec.Command("ip", "route", "del", a+"/32").Run()
		}
		exec.Command("ip", "link", "del", "altlan1").Run()
		exec.Command("ip", "link", "del", "altlan0").Run()
		exec.Command("ip", "netns", "del", ns).Run()
	}
	cleanup()
	t.Cleanup(cleanup)
	run(t, "ip", "netns", "add", ns)
	run(t, "ip", "link", "add", "altlan0", "type", "bridge")
	run(t, "ip", "addr", "add", "203.0.113.1/24", "dev", "altlan0")
	run(t, "ip", "link", "set", "altlan0", "up")
	run(t, "ip", "link", "add", "altlan1", "type", "veth", "peer", "name", "altlan2", "netns", ns)
	run(t, "ip", "link", "set", "altlan1", "master", "altlan0", "up")
	run(t, "ip", "-n", ns, "addr", "add", "203.0.113.2/24", "dev", "altlan2")
	run(t, "ip", "-n", ns, "link", "set", "altlan2", "up")
	run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	run(t, "ip", "-n", ns, "route", "add", "default", "via", "203.0.113.1")
	lan := &fakeLAN{servers: map[string]string{}}
	for name, a := range targets {
		if a != "203.0.113.2" {
			run(t, "ip", "-n", ns, "addr", "add", a+"/32", "dev", "lo")
			run(t, "ip", "route", "add", a+"/32", "via", "203.0.113.2")
		}
		lan.servers[name] = serveHTTP(t, "/run/netns/"+ns, a+":8080")
	}
	return lan
}

// The default network: with internet access and even allowOut 0.0.0.0/0, a
// sandbox reaches none of the protected ranges (each of which the host
// reaches, and a sandbox on an opted-in server reaches too: the test can
// fail), while the internet stays reachable.
func TestProtectedRangesUnreachable(t *testing.T) {
	lan := newFakeLAN(t) // before the managers: the LAN is found at New
	inet := newFakeInternet(t)
	internet := serveHTTP(t, inet.nsPath, "198.18.1.1:8080")
	m := newTestManager(t, "altest9", "10.214.10.0/24")
	open := newOpenManager(t, "altesta", "10.214.11.0/24")
	if !slices.Contains(m.Config().Protected, netip.MustParsePrefix("203.0.113.0/24")) {
		t.Errorf("the host's LAN 203.0.113.0/24 is not protected: %v", m.Config().Protected)
	}
	everything := Policy{AllowInternet: true, AllowOut: prefixes("0.0.0.0/0")}
	ep := attach(t, m, everything)
	oep := attach(t, open, everything)

	for name, addr := range lan.servers {
		if _, err := httpGetFrom("", addr, time.Second); err != nil {
			t.Fatalf("host -> %s (%s): %v; the fake LAN is broken", name, addr, err)
		}
		if body, err := httpGetFrom(ep.NetNSPath, addr, time.Second); err == nil {
			t.Errorf("sandbox reached %s at %s (server saw %q)", name, addr, body)
		}
		if _, err := httpGetFrom(oep.NetNSPath, addr, 2*time.Second); err != nil {
			t.Errorf("opted-in sandbox -> %s at %s: %v, want reached", name, addr, err)
		}
	}
	if _, err := httpGetFrom(ep.NetNSPath, internet, time.Second); err != nil {
		t.Errorf("sandbox -> internet %s: %v", internet, err)
	}
	for _, allow := range []string{"10.99.0.0/16", "203.0.113.0/25", "169.254.0.0/16", "100.100.100.200/32"} {
		err := m.SetPolicy(context.Background(), ep.ID, Policy{AllowInternet: true, AllowOut: prefixes(allow)})
		if !errors.Is(err, ErrProtected) {
			t.Errorf("SetPolicy allowOut %s = %v, want ErrProtected", allow, err)
		}
		if _, err := m.Attach(context.Background(), randomID(t), Policy{AllowOut: prefixes(allow)}); !errors.Is(err, ErrProtected) {
			t.Errorf("Attach allowOut %s = %v, want ErrProtected", allow, err)
		}
	}
}

// Whatever else on the host rewrites nftables, the guard puts the sandbox's
// own policy back; until then the damage fails closed where it can.
func TestGuardRestoresFirewall(t *testing.T) {
	m := newTestManager(t, "altestg", "10.214.12.0/24")
	inet := newFakeInternet(t)
	server1 := serveHTTP(t, inet.nsPath, "198.18.1.1:8080")
	server2 := serveHTTP(t, inet.nsPath, "198.18.1.2:8080")
	ep := attach(t, m, Policy{AllowInternet: true, DenyOut: prefixes("198.18.1.1/32")})
	want := func(stage string) {
		t.Helper()
		if _, err := httpGetFrom(ep.NetNSPath, server2, time.Second); err != nil {
			t.Errorf("%s: sandbox -> %s: %v, want reached", stage, server2, err)
		}
		if _, err := httpGetFrom(ep.NetNSPath, server1, time.Second); err == nil {
			t.Errorf("%s: sandbox reached denied %s", stage, server1)
		}
	}
	want("before")
	if problems, err := m.CheckFirewall(); err != nil || problems != nil {
		t.Fatalf("CheckFirewall on an intact firewall = %v, %v", problems, err)
	}
	br := m.cfg.Bridge
	nft := func(args ...string) func() { return func() { run(t, "nft", args...) } }
	for _, tamper := range []struct {
		name string
		do   func()
	}{
		{"delete inet table", nft("delete", "table", "inet", br)},
		{"flush inet table", nft("flush", "table", "inet", br)},
		{"flush forward chain", nft("flush", "chain", "inet", br, "forward")},
		{"delete bridge table", nft("delete", "table", "bridge", br)},
		{"flush ports map", nft("flush", "map", "bridge", br, "ports")},
		{"flush fwd map", func() { flushMap(t, m, verdictMap(m.table(), fwdMapName)) }},
	} {
		tamper.do()
		problems, err := m.CheckFirewall()
		if err != nil || len(problems) == 0 {
			t.Errorf("after %s: CheckFirewall = %v, %v; want problems found and repaired", tamper.name, problems, err)
		}
		want("after " + tamper.name)
	}
}

// flushMap empties a map behind the manager's back (nft(8) cannot name a
// set called "fwd": it is a keyword).
func flushMap(t *testing.T, m *Manager, s *nftables.Set) {
	t.Helper()
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	c.FlushSet(s)
	if err := c.Flush(); err != nil {
		t.Fatalf("flush map %s: %v", s.Name, err)
	}
}

// A flushed policy map cuts its sandboxes off until the guard has run,
// rather than letting them through.
func TestFlushedMapsFailClosed(t *testing.T) {
	m := newTestManager(t, "altesth", "10.214.13.0/24")
	inet := newFakeInternet(t)
	server := serveHTTP(t, inet.nsPath, "198.18.1.1:8080")
	hostSrv := serveHTTP(t, "", m.Gateway().String()+":0")
	ep := attach(t, m, Policy{AllowInternet: true})
	for _, set := range []*nftables.Set{verdictMap(m.table(), fwdMapName), verdictMap(m.table(), inMapName)} {
		// A reachable server answers well within 5 s even on a loaded
		// machine (seen: the first dial after setup took >1 s in CI).
		if _, err := httpGetFrom(ep.NetNSPath, server, 5*time.Second); err != nil {
			t.Fatalf("before flushing %s: sandbox -> %s: %v", set.Name, server, err)
		}
		flushMap(t, m, set)
		if set.Name == fwdMapName {
			if _, err := httpGetFrom(ep.NetNSPath, server, time.Second); err == nil {
				t.Errorf("with map %s flushed the sandbox still reached %s", set.Name, server)
			}
		} else if _, err := httpGetFrom(ep.NetNSPath, hostSrv, time.Second); err == nil {
			t.Errorf("with map %s flushed the sandbox reached the host's %s", set.Name, hostSrv)
		}
		if _, err := m.CheckFirewall(); err != nil {
			t.Fatal(err)
		}
	}
}
