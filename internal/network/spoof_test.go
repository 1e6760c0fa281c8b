package network

import (
	"net"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/netnsexec"
)

// A sandbox cannot borrow another sandbox's policy by forging its address:
// the bridge drops frames whose source is not the port's own address.
func TestAntiSpoofing(t *testing.T) {
	m := newTestManager(t, "altest6", "10.214.6.0/24")
	inet := newFakeInternet(t)
	var pc net.PacketConn
	if err := netnsexec.Run(inet.nsPath, func() (err error) {
		pc, err = net.ListenPacket("udp4", "198.18.1.1:9999")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()

	attacker := attach(t, m, Policy{})
	victim := attach(t, m, Policy{AllowInternet: true})
	// The attacker (root in its netns here) adds the victim's address.
	run(t, "nsenter", "--net="+attacker.NetNSPath, "ip", "addr", "add", victim.IP.String()+"/32", "dev", "eth0")

	send := func(nsPath string, src string) {
		t.Helper()
		if err := netnsexec.Run(nsPath, func() error {
			c, err := net.DialUDP("udp4", &net.UDPAddr{IP: net.ParseIP(src)}, &net.UDPAddr{IP: net.ParseIP("198.18.1.1"), Port: 9999})
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.Write([]byte(src + "@" + nsPath))
			return err
		}); err != nil {
			t.Fatalf("send from %s: %v", src, err)
		}
	}
	received := func() []string {
		var got []string
		buf := make([]byte, 512)
		for {
			pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return got
			}
			got = append(got, string(buf[:n]))
		}
	}

	send(attacker.NetNSPath, victim.IP.String())   // forged
	send(attacker.NetNSPath, attacker.IP.String()) // own address, no internet
	if got := received(); len(got) != 0 {
		t.Errorf("fake internet received %q from the attacker", got)
	}
	send(victim.NetNSPath, victim.IP.String())
	if got := received(); len(got) != 1 {
		t.Errorf("victim's own datagram: received %q, want one", got)
	}
}

// Right after Attach the first connection must not lose packets (the bridge
// port must already be forwarding), or every sandbox start pays a 1 s ARP retry.
func TestFirstConnectionImmediate(t *testing.T) {
	m := newTestManager(t, "altest8", "10.214.8.0/24")
	for range 5 {
		ep := attach(t, m, Policy{})
		addr := serveHTTP(t, ep.NetNSPath, ep.IP.String()+":49983")
		start := time.Now()
		if _, err := httpGetFrom("", addr, 3*time.Second); err != nil {
			t.Fatalf("host -> %s: %v", addr, err)
		}
		// Speed lives in BenchmarkAttachDetach, not in an assertion that can
		// flake; a ~1 s value here means an ARP retry on a not-yet-forwarding
		// bridge port.
		t.Logf("first connection to a new sandbox took %v", time.Since(start))
	}
}
