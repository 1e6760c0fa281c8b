package network

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// Behaviour 2: egress with masquerade, and the policy knobs on it.
func TestEgressPolicy(t *testing.T) {
	m := newTestManager(t, "altest1", "10.214.1.0/24")
	inet := newFakeInternet(t)
	server1 := serveHTTP(t, inet.nsPath, "198.18.1.1:8080")
	server2 := serveHTTP(t, inet.nsPath, "198.18.1.2:8080")
	ep := attach(t, m, Policy{})

	tests := []struct {
		name         string
		policy       Policy
		want1, want2 bool
	}{
		{"internet", Policy{AllowInternet: true}, true, true},
		{"no internet", Policy{}, false, false},
		{"deny one", Policy{AllowInternet: true, DenyOut: prefixes("198.18.1.1/32")}, false, true},
		{"deny all, allow one", Policy{AllowInternet: true, DenyOut: prefixes("0.0.0.0/0"), AllowOut: prefixes("198.18.1.1/32")}, true, false},
		{"no internet, allow one", Policy{AllowOut: prefixes("198.18.1.1/32")}, true, false},
		{"allow wins over deny", Policy{DenyOut: prefixes("198.18.1.0/24"), AllowOut: prefixes("198.18.1.2/32")}, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.SetPolicy(context.Background(), ep.ID, tc.policy); err != nil {
				t.Fatalf("SetPolicy: %v", err)
			}
			for _, c := range []struct {
				addr string
				want bool
			}{{server1, tc.want1}, {server2, tc.want2}} {
				start := time.Now()
				body, err := httpGetFrom(ep.NetNSPath, c.addr, time.Second)
				switch {
				case c.want && err != nil:
					t.Errorf("sandbox -> %s: %v, want success", c.addr, err)
				case c.want && !strings.HasPrefix(body, inet.hostSide.String()+":"):
					t.Errorf("server saw %q, want masqueraded source %s", body, inet.hostSide)
				case !c.want && err == nil:
					t.Errorf("sandbox -> %s succeeded (server saw %q), want blocked", c.addr, body)
				case !c.want:
					t.Logf("blocked connection to %s failed after %v", c.addr, time.Since(start))
				}
			}
		})
	}
}

// Behaviour 4: the host itself is off limits; AllowOut opens it only with
// the operator's opt-in.
func TestSandboxCannotReachHost(t *testing.T) {
	m := newTestManager(t, "altest2", "10.214.2.0/24")
	inet := newFakeInternet(t)
	onGateway := serveHTTP(t, "", m.Gateway().String()+":0")
	onOtherHostIP := serveHTTP(t, "", inet.hostSide.String()+":0")
	onLoopback := serveHTTP(t, "", "127.0.0.1:0")
	onAny := serveHTTP(t, "", "0.0.0.0:0") // like the API on :3000
	_, anyPort, _ := strings.Cut(onAny, "0.0.0.0:")
	ep := attach(t, m, Policy{AllowInternet: true})

	blocked := []string{onGateway, onOtherHostIP, onLoopback, m.Gateway().String() + ":" + anyPort, inet.hostSide.String() + ":" + anyPort}
	for _, addr := range blocked {
		if body, err := httpGetFrom(ep.NetNSPath, addr, time.Second); err == nil {
			t.Errorf("sandbox reached host listener %s (saw %q)", addr, body)
		}
	}
	// The host keeps reaching its own listeners.
	for _, addr := range []string{onGateway, onOtherHostIP, onLoopback} {
		if _, err := httpGetFrom("", addr, time.Second); err != nil {
			t.Errorf("host -> %s: %v", addr, err)
		}
	}
	// AllowOut cannot open the host by default...
	err := m.SetPolicy(context.Background(), ep.ID, Policy{AllowInternet: true, AllowOut: prefixes(m.Gateway().String() + "/32")})
	if !errors.Is(err, ErrProtected) || !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("SetPolicy AllowOut gateway = %v, want ErrProtected (an invalid request)", err)
	}
	if _, err := httpGetFrom(ep.NetNSPath, onGateway, time.Second); err == nil {
		t.Errorf("refused AllowOut gateway: sandbox reached %s", onGateway)
	}
	// ...only with the operator's opt-in, and then exactly the named address.
	om := newOpenManager(t, "altest7", "10.214.7.0/24")
	onOpenGateway := serveHTTP(t, "", om.Gateway().String()+":0")
	oep := attach(t, om, Policy{AllowInternet: true, AllowOut: prefixes(om.Gateway().String() + "/32")})
	if _, err := httpGetFrom(oep.NetNSPath, onOpenGateway, time.Second); err != nil {
		t.Errorf("AllowOut gateway with AllowProtected: sandbox -> %s: %v", onOpenGateway, err)
	}
	if _, err := httpGetFrom(oep.NetNSPath, onOtherHostIP, time.Second); err == nil {
		t.Errorf("AllowOut gateway only: sandbox reached %s", onOtherHostIP)
	}
}
