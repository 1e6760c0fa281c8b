package orchestrator

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/network"
	"github.com/airlock-sandbox/airlock/internal/store"
)

const baseTplID = "tpl0000000000000base"

func (h *harness) pooledOrchestrator(t *testing.T, size int) *Orchestrator {
	t.Helper()
	o, err := New(Config{
		Store:        h.st,
		Driver:       h.drv,
		Network:      h.net,
		Templates:    fakeTemplates{},
		EnvdBinary:   "/proc/self/exe",
		EnvdPort:     h.drv.port,
		ReapInterval: 20 * time.Millisecond,
		ReadyTimeout: 3 * time.Second,
		PoolSize:     size,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return o
}

func waitPoolFull(t *testing.T, o *Orchestrator, size int) {
	t.Helper()
	waitFor(t, 5*time.Second, "the warm pool to fill", func() bool { return o.PoolSizes()[baseTplID] == size })
}

// poolIDs returns the IDs of the unclaimed members.
func poolIDs(o *Orchestrator) []string {
	o.pool.mu.Lock()
	defer o.pool.mu.Unlock()
	var ids []string
	for _, m := range o.pool.ready[baseTplID] {
		ids = append(ids, m.id)
	}
	return ids
}

func createTimed(t *testing.T, o *Orchestrator, req CreateRequest) (*store.Sandbox, *Timings) {
	t.Helper()
	tm := &Timings{}
	sb, err := o.Create(WithTimings(context.Background(), tm), req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return sb, tm
}

func poolHit(tm *Timings) bool { return strings.Contains(tm.String(), "pool_claim=") }

func TestPoolHitLooksFresh(t *testing.T) {
	h := newHarness(t)
	o := h.pooledOrchestrator(t, 2)
	defer o.Close()
	waitPoolFull(t, o, 2)
	members := poolIDs(o)
	time.Sleep(20 * time.Millisecond) // so a StartedAt taken at pool time would show

	before := time.Now().UTC()
	req := CreateRequest{
		Template: "base", Timeout: time.Minute, Secure: true, AllowInternet: true, PublicTraffic: false,
		Metadata: map[string]string{"k": "v"}, EnvVars: map[string]string{"A": "1"}, AutoPause: true,
	}
	sb, tm := createTimed(t, o, req)
	if !poolHit(tm) {
		t.Fatalf("create was not served from the pool (timings %s)", tm)
	}
	if !slices.Contains(members, sb.ID) {
		t.Fatalf("sandbox %s is not one of the pool members %v", sb.ID, members)
	}
	if sb.StartedAt.Before(before) || !sb.EndAt.Equal(sb.StartedAt.Add(time.Minute)) {
		t.Errorf("startedAt=%v endAt=%v, want startedAt ≥ %v and endAt = startedAt+1m", sb.StartedAt, sb.EndAt, before)
	}
	if sb.State != store.StateRunning || sb.AccessToken == "" || sb.TrafficToken == "" || !sb.AutoPause ||
		sb.Metadata["k"] != "v" || sb.EnvVars["A"] != "1" || sb.Alias != "base" {
		t.Errorf("record does not reflect the request: %+v", sb)
	}
	rt, ok := o.Route(sb.ID)
	if !ok || !rt.Running || rt.TrafficToken != sb.TrafficToken || rt.IP.String() != sb.IP {
		t.Errorf("route = %+v, %v", rt, ok)
	}
	inits := h.drv.box(sb.ID).envd.inits()
	if len(inits) != 1 {
		t.Fatalf("envd /init called %d times, want once (at claim)", len(inits))
	}
	if in := inits[0]; in.AccessToken != sb.AccessToken || in.EnvVars["A"] != "1" || in.EnvVars["E2B_SANDBOX_ID"] != sb.ID {
		t.Errorf("init = %+v", in)
	}
	var evs []store.Event
	waitFor(t, 2*time.Second, "the create events", func() bool {
		evs, _ = o.Events(context.Background(), sb.ID, time.Time{}, 0)
		return len(evs) == 2
	})
	if evs[0].Time.Before(before) || evs[1].Message != "sandbox running" {
		t.Errorf("events = %+v, want the two create events, none before the claim", evs)
	}

	// The pool refills, and the next hit gets its own identity.
	waitPoolFull(t, o, 2)
	sb2, tm2 := createTimed(t, o, req)
	if !poolHit(tm2) || sb2.ID == sb.ID || sb2.AccessToken == sb.AccessToken || sb2.TrafficToken == sb.TrafficToken {
		t.Errorf("second hit reused identity: %s/%s vs %s/%s (timings %s)", sb2.ID, sb2.AccessToken, sb.ID, sb.AccessToken, tm2)
	}
}

func TestPoolMembersAreInvisible(t *testing.T) {
	h := newHarness(t)
	o := h.pooledOrchestrator(t, 3)
	defer o.Close()
	waitPoolFull(t, o, 3)
	ctx := context.Background()
	list, _, err := o.List(ctx, store.SandboxFilter{})
	if err != nil || len(list) != 0 {
		t.Fatalf("List = %d sandboxes, %v; want none", len(list), err)
	}
	for _, id := range poolIDs(o) {
		if _, err := o.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%s) = %v, want ErrNotFound", id, err)
		}
		if _, ok := o.Route(id); ok {
			t.Errorf("member %s is routable", id)
		}
		if err := o.Kill(ctx, id); err == nil {
			t.Errorf("Kill(%s) succeeded on an unclaimed member", id)
		}
	}
}

func TestPoolSkipsNonDefaultNetwork(t *testing.T) {
	h := newHarness(t)
	o := h.pooledOrchestrator(t, 1)
	defer o.Close()
	waitPoolFull(t, o, 1)
	for _, req := range []CreateRequest{
		{Template: "base", Timeout: time.Minute, AllowInternet: false, PublicTraffic: true},
		{Template: "base", Timeout: time.Minute, AllowInternet: true, PublicTraffic: true,
			Network: network.Policy{DenyOut: mustPrefixes(t, "10.0.0.0/8")}},
	} {
		sb, tm := createTimed(t, o, req)
		if poolHit(tm) {
			t.Errorf("create with a non-default network policy was served from the pool")
		}
		if slices.Contains(poolIDs(o), sb.ID) {
			t.Errorf("sandbox %s still listed as a pool member", sb.ID)
		}
	}
	if n := o.PoolSizes()[baseTplID]; n != 1 {
		t.Errorf("pool size = %d after non-pooled creates, want 1", n)
	}
}

func TestPoolClaimFailureFallsBack(t *testing.T) {
	h := newHarness(t)
	o := h.pooledOrchestrator(t, 1)
	defer o.Close()
	waitPoolFull(t, o, 1)
	broken := poolIDs(o)[0]
	h.drv.forget(broken) // its envd is gone: /init will fail
	sb, tm := createTimed(t, o, CreateRequest{Template: "base", Timeout: time.Minute, AllowInternet: true, PublicTraffic: true})
	if sb.ID == broken || sb.State != store.StateRunning {
		t.Fatalf("got sandbox %s (%s), want a fresh cold create (timings %s)", sb.ID, sb.State, tm)
	}
	rec, err := h.st.GetSandbox(context.Background(), broken)
	if err != nil || rec.State != store.StateKilled {
		t.Errorf("broken member record = %+v, %v; want killed", rec, err)
	}
	if h.net.has(broken) {
		t.Errorf("broken member's network endpoint was not removed")
	}
}

func TestPoolCloseDrains(t *testing.T) {
	h := newHarness(t)
	o := h.pooledOrchestrator(t, 2)
	waitPoolFull(t, o, 2)
	members := poolIDs(o)
	o.Close()
	for _, id := range members {
		if h.drv.box(id) != nil || h.net.has(id) {
			t.Errorf("member %s left a container or endpoint after Close", id)
		}
		rec, err := h.st.GetSandbox(context.Background(), id)
		if err != nil || rec.State != store.StateKilled {
			t.Errorf("member %s record = %+v, %v; want killed", id, rec, err)
		}
	}
}

func TestPoolMembersCleanedAfterCrash(t *testing.T) {
	h := newHarness(t)
	o := h.pooledOrchestrator(t, 2)
	waitPoolFull(t, o, 2)
	members := poolIDs(o)
	// A crash: the filler stops, nothing is drained.
	close(o.pool.stop)
	o.pool.wg.Wait()
	close(o.stop)
	o.wg.Wait()

	o2 := h.orchestrator(t)
	defer o2.Close()
	for _, id := range members {
		if h.drv.box(id) != nil || h.net.has(id) {
			t.Errorf("member %s survived recovery", id)
		}
		rec, err := h.st.GetSandbox(context.Background(), id)
		if err != nil || rec.State != store.StateKilled {
			t.Errorf("member %s record = %+v, %v; want killed", id, rec, err)
		}
	}
	if list, _, _ := o2.List(context.Background(), store.SandboxFilter{}); len(list) != 0 {
		t.Errorf("recovered orchestrator lists %d sandboxes, want none", len(list))
	}
}

func TestCreateRecordsPhaseTimings(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	_, tm := createTimed(t, o, CreateRequest{Template: "base", Timeout: time.Minute, AllowInternet: true, PublicTraffic: true})
	got := tm.String()
	for _, p := range []string{"resolve=", "store=", "netns=", "runtime=", "envd_ready=", "envd_init=", "record="} {
		if !strings.Contains(got, p) {
			t.Errorf("timings %q lack phase %s", got, p)
		}
	}
	if tm.Total() <= 0 {
		t.Errorf("total = %v", tm.Total())
	}
}

func mustPrefixes(t *testing.T, cidrs ...string) []netip.Prefix {
	t.Helper()
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}
