package network

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Behaviour 1: the host reaches a server inside the sandbox at its IP.
func TestHostReachesSandbox(t *testing.T) {
	m := newTestManager(t, "altest0", "10.214.0.0/24")
	ep := attach(t, m, Policy{})
	if ep.IP.String() != "10.214.0.2" || ep.Gateway.String() != "10.214.0.1" || ep.PrefixLen != 24 {
		t.Fatalf("unexpected endpoint %+v", ep)
	}
	addr := serveHTTP(t, ep.NetNSPath, ep.IP.String()+":49983")
	body, err := httpGetFrom("", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("host -> sandbox %s: %v", addr, err)
	}
	if !strings.HasPrefix(body, "10.214.0.1:") {
		t.Errorf("sandbox saw peer %q, want the gateway 10.214.0.1", body)
	}
	got, ok := m.Endpoint(ep.ID)
	if !ok || *got != *ep {
		t.Errorf("Endpoint(%s) = %+v, %v; want %+v", ep.ID, got, ok, ep)
	}
	if _, err := m.Attach(context.Background(), ep.ID, Policy{}); err == nil {
		t.Error("second Attach of the same id succeeded")
	}
}
