package network

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Behaviour 3: sandboxes cannot reach each other, at L2 or L3, unless the
// operator allows it and AllowOut names the other's address.
func TestSandboxesIsolated(t *testing.T) {
	m := newOpenManager(t, "altest3", "10.214.3.0/24")
	a := attach(t, m, Policy{AllowInternet: true})
	b := attach(t, m, Policy{AllowInternet: true})
	addrA := serveHTTP(t, a.NetNSPath, a.IP.String()+":8080")
	addrB := serveHTTP(t, b.NetNSPath, b.IP.String()+":8080")

	for _, port := range []string{a.HostVeth, b.HostVeth} {
		link, err := netlink.LinkByName(port)
		if err != nil {
			t.Fatal(err)
		}
		pi, err := netlink.LinkGetProtinfo(link)
		if err != nil || !pi.Isolated {
			t.Errorf("port %s isolated=%v err=%v", port, pi.Isolated, err)
		}
	}
	start := time.Now()
	if _, err := httpGetFrom(a.NetNSPath, addrB, time.Second); err == nil {
		t.Error("a reached b with default policy")
	}
	t.Logf("a -> b failed after %v (rejected, so normally at once)", time.Since(start))
	// L2: a's ARP for b must have been answered by the bridge (proxy ARP), not
	// by b itself, i.e. frames never go port to port.
	if mac := neighMAC(t, a.NetNSPath, b.IP.AsSlice()); mac.String() != bridgeMAC(m.cfg.Bridge).String() {
		t.Errorf("a resolved b to %s, want the bridge's %s", mac, bridgeMAC(m.cfg.Bridge))
	}

	if err := m.SetPolicy(context.Background(), a.ID, Policy{AllowOut: prefixes(b.IP.String() + "/32")}); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	body, err := httpGetFrom(a.NetNSPath, addrB, 2*time.Second)
	if err != nil {
		t.Fatalf("a -> b with AllowOut b: %v", err)
	}
	t.Logf("allowed a -> b took %v", time.Since(start))
	if host, _, _ := net.SplitHostPort(body); host != a.IP.String() {
		t.Errorf("b saw %q, want a's own address %s (no NAT inside the subnet)", body, a.IP)
	}
	if _, err := httpGetFrom(b.NetNSPath, addrA, 2*time.Second); err == nil {
		t.Error("b reached a: a's AllowOut must not open the reverse direction")
	}
}

func neighMAC(t *testing.T, nsPath string, ip net.IP) net.HardwareAddr {
	t.Helper()
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	neighs, err := h.NeighList(0, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range neighs {
		if n.IP.Equal(ip) && len(n.HardwareAddr) > 0 {
			return n.HardwareAddr
		}
	}
	return nil
}
