package network

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Behaviour 5: Detach leaves nothing; concurrent Attach hands out distinct
// addresses; a new Manager rediscovers endpoints and does not reuse them.
func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	m := newTestManager(t, "altest4", "10.214.4.0/24")
	netnsFDs := countNetnsFDs(t)
	nsMounts := countNetnsMounts(t)

	const n = 20
	eps := make([]*Endpoint, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			eps[i], errs[i] = m.Attach(ctx, randomID(t), Policy{AllowInternet: i%2 == 0})
		})
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i, ep := range eps {
		if errs[i] != nil {
			t.Fatalf("Attach %d: %v", i, errs[i])
		}
		if other, dup := seen[ep.IP]; dup {
			t.Fatalf("%s and %s both got %s", ep.ID, other, ep.IP)
		}
		seen[ep.IP] = ep.ID
		pinnedNeighbours(t, m, ep)
	}
	// A netns is held by an open file, not a bind mount: sandboxes must not
	// grow the host's mount table (every container start copies it).
	if got := countNetnsMounts(t); got != nsMounts {
		t.Errorf("host netns mounts went from %d to %d with %d endpoints", nsMounts, got, n)
	}

	// Simulated restart: a fresh Manager on the same bridge.
	m2, err := New(ctx, m.cfg, testLogger(t))
	if err != nil {
		t.Fatalf("New after restart: %v", err)
	}
	defer m2.Close()
	listed, err := m2.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != n {
		t.Fatalf("List after restart: %d endpoints, want %d", len(listed), n)
	}
	for _, ep := range eps {
		want := *ep
		want.NetNSPath = "" // held by the first manager's file; the sandbox holds it in real life
		got, ok := m2.Endpoint(ep.ID)
		if !ok || *got != want {
			t.Errorf("rediscovered %s = %+v, want %+v", ep.ID, got, want)
		}
	}
	fresh, err := m2.Attach(ctx, randomID(t), Policy{})
	if err != nil {
		t.Fatal(err)
	}
	if id, dup := seen[fresh.IP]; dup {
		t.Errorf("after restart %s got %s, already used by %s", fresh.ID, fresh.IP, id)
	}
	eps = append(eps, fresh)
	// Policies survive the restart: the rediscovered chains are kept.
	if err := m2.SetPolicy(ctx, eps[0].ID, Policy{AllowInternet: true}); err != nil {
		t.Errorf("SetPolicy on rediscovered endpoint: %v", err)
	}

	if err := m2.Destroy(ctx, false); !errors.Is(err, ErrEndpointsExist) {
		t.Errorf("Destroy with endpoints = %v, want ErrEndpointsExist", err)
	}
	for _, ep := range eps {
		if err := m2.Detach(ctx, ep.ID); err != nil {
			t.Fatalf("Detach %s: %v", ep.ID, err)
		}
		if err := m2.Detach(ctx, ep.ID); err != nil {
			t.Errorf("second Detach %s: %v", ep.ID, err)
		}
		noLeaks(t, m2, ep.ID, ep.IP)
	}
	// m still believes in the endpoints; its Detach must be harmless.
	if err := m.Detach(ctx, eps[1].ID); err != nil {
		t.Errorf("stale Detach: %v", err)
	}
	if listed, _ := m2.List(ctx); len(listed) != 0 {
		t.Errorf("List after Detach: %v", listed)
	}
	// m still holds the files of the endpoints only it attached; its
	// Detach of each releases them.
	for _, ep := range eps {
		if err := m.Detach(ctx, ep.ID); err != nil {
			t.Errorf("stale Detach %s: %v", ep.ID, err)
		}
	}
	m2.Close() // its own handle on the host netns counts too
	if got := countNetnsFDs(t); got != netnsFDs {
		t.Errorf("%d netns files open after Detach, want %d as before", got, netnsFDs)
	}
}

// countNetnsFDs counts this process's open files that are network namespaces.
func countNetnsFDs(t *testing.T) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, "net:[") {
			n++
		}
	}
	return n
}

// countNetnsMounts counts the host's nsfs mounts (bind-mounted namespaces).
func countNetnsMounts(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), " - nsfs ")
}

// A failing Attach leaves nothing behind.
func TestAttachRollback(t *testing.T) {
	ctx := context.Background()
	m := newTestManager(t, "altest5", "10.214.5.0/30") // room for one sandbox
	ep := attach(t, m, Policy{})
	id := randomID(t)
	if _, err := m.Attach(ctx, id, Policy{}); !errors.Is(err, ErrSubnetFull) {
		t.Fatalf("Attach in full subnet = %v, want ErrSubnetFull", err)
	}
	if err := m.Detach(ctx, ep.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, "bad-id", Policy{}); !errors.Is(err, ErrInvalidID) {
		t.Errorf("Attach(bad-id) = %v, want ErrInvalidID", err)
	}
	if _, err := m.Attach(ctx, id, Policy{AllowOut: []netip.Prefix{netip.MustParsePrefix("::/0")}}); !errors.Is(err, ErrInvalidPolicy) {
		t.Errorf("Attach with IPv6 prefix = %v, want ErrInvalidPolicy", err)
	}
	// Fail late, in the firewall step, by deleting our table underneath.
	if err := m.deleteTables(); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Attach(ctx, id, Policy{}); err == nil {
		t.Fatal("Attach without nft table succeeded")
	}
	noLeaks(t, m, id, netip.MustParseAddr("10.214.5.2"))
	if eps, _ := m.List(ctx); len(eps) != 0 {
		t.Errorf("List after failed Attach: %v", eps)
	}
	if _, ok := m.Endpoint(id); ok {
		t.Error("Endpoint reports a failed Attach")
	}
	// New repairs the host, and the address is free again.
	m2, err := New(ctx, m.cfg, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	ep2, err := m2.Attach(ctx, id, Policy{})
	if err != nil {
		t.Fatalf("Attach after repair: %v", err)
	}
	if ep2.IP.String() != "10.214.5.2" {
		t.Errorf("Attach after repair got %s, want the released 10.214.5.2", ep2.IP)
	}
	if err := m2.Detach(ctx, id); err != nil {
		t.Fatal(err)
	}
}

func TestIPAM(t *testing.T) {
	a := newIPAM(netip.MustParsePrefix("10.9.0.0/29"), netip.MustParseAddr("10.9.0.1"))
	var got []string
	for {
		ip, err := a.allocate()
		if errors.Is(err, ErrSubnetFull) {
			break
		}
		got = append(got, ip.String())
	}
	want := []string{"10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"}
	if !slices.Equal(got, want) {
		t.Fatalf("allocated %v, want %v", got, want)
	}
	a.release(netip.MustParseAddr("10.9.0.3"))
	a.release(netip.MustParseAddr("10.9.0.5"))
	if ip, _ := a.allocate(); ip.String() != "10.9.0.3" {
		t.Errorf("after wrap got %s, want 10.9.0.3", ip)
	}
	if ip, _ := a.allocate(); ip.String() != "10.9.0.5" {
		t.Errorf("next-fit got %s, want 10.9.0.5", ip)
	}
}

func TestNames(t *testing.T) {
	id := "abcdefghij0123456789"
	if n := vethName(id); len(n) > 15 || n != vethName(id) {
		t.Errorf("vethName = %q", n)
	}
	ip := netip.MustParseAddr("10.0.0.7")
	gotID, gotIP, ok := parseAlias(vethAlias(id, ip))
	if !ok || gotID != id || gotIP != ip {
		t.Errorf("parseAlias round trip = %q %s %v", gotID, gotIP, ok)
	}
	for _, bad := range []string{"", "A", "a-b", "a b", "ä"} {
		if !errors.Is(validID(bad), ErrInvalidID) {
			t.Errorf("validID(%q) accepted", bad)
		}
	}
}
