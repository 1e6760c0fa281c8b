package orchestrator

import (
	"context"
	"errors"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
)

func create(t *testing.T, o *Orchestrator, timeout time.Duration) *store.Sandbox {
	t.Helper()
	sb, err := o.Create(context.Background(), CreateRequest{
		Template: "base", Timeout: timeout, Secure: true, AllowInternet: true, PublicTraffic: true,
		Metadata: map[string]string{"k": "v"}, EnvVars: map[string]string{"A": "1"},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return sb
}

// waitFor polls cond for up to d; timing lives in the condition, not in
// fixed sleeps.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCreateRecordsAndConfiguresEnvd(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()

	sb := create(t, o, time.Minute)
	if !regexp.MustCompile(`^[a-z0-9]{20}$`).MatchString(sb.ID) {
		t.Errorf("sandbox ID %q is not 20 chars of [a-z0-9]", sb.ID)
	}
	if sb.State != store.StateRunning || sb.IP == "" || sb.AccessToken == "" {
		t.Errorf("unexpected record: state=%s ip=%q token=%q", sb.State, sb.IP, sb.AccessToken)
	}
	got, err := h.st.GetSandbox(context.Background(), sb.ID)
	if err != nil || got.State != store.StateRunning {
		t.Fatalf("stored record: %+v, %v", got, err)
	}
	rt, ok := o.Route(sb.ID)
	if !ok || !rt.Running || rt.IP.String() != sb.IP {
		t.Errorf("route = %+v, %v", rt, ok)
	}
	inits := h.drv.box(sb.ID).envd.inits()
	if len(inits) != 1 {
		t.Fatalf("envd /init called %d times", len(inits))
	}
	in := inits[0]
	want := map[string]string{"A": "1", "E2B_SANDBOX": "true", "E2B_SANDBOX_ID": sb.ID, "E2B_TEMPLATE_ID": sb.TemplateID}
	for k, v := range want {
		if in.EnvVars[k] != v {
			t.Errorf("init env %s = %q, want %q", k, in.EnvVars[k], v)
		}
	}
	if in.AccessToken != sb.AccessToken || in.DefaultUser != "user" {
		t.Errorf("init token/user = %q/%q", in.AccessToken, in.DefaultUser)
	}
}

func TestCreateErrors(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	ctx := context.Background()

	tests := []struct {
		name  string
		req   CreateRequest
		setup func()
		want  error
	}{
		{"unknown template", CreateRequest{Template: "nope", Timeout: time.Minute}, nil, ErrTemplateNotFound},
		{"zero timeout", CreateRequest{Template: "base"}, nil, ErrInvalid},
		{"timeout over max", CreateRequest{Template: "base", Timeout: 48 * time.Hour}, nil, ErrInvalid},
		{"driver fails", CreateRequest{Template: "base", Timeout: time.Minute}, func() { h.drv.fail = errors.New("boom") }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			_, err := o.Create(ctx, tc.req)
			if err == nil {
				t.Fatal("create succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// The failed create must have released its network and been recorded.
	eps, _ := h.net.List(ctx)
	if len(eps) != 0 {
		t.Errorf("failed create left %d network endpoints", len(eps))
	}
	killed, _, err := h.st.ListSandboxes(ctx, store.SandboxFilter{States: []store.SandboxState{store.StateKilled}})
	if err != nil || len(killed) != 1 || killed[0].EndReason == "" {
		t.Errorf("failed create recorded as %+v (%v)", killed, err)
	}
}

func TestKill(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	ctx := context.Background()
	sb := create(t, o, time.Minute)

	if err := o.Kill(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if h.drv.box(sb.ID) != nil || h.net.has(sb.ID) {
		t.Error("kill left the container or network behind")
	}
	if _, ok := o.Route(sb.ID); ok {
		t.Error("killed sandbox still routable")
	}
	for _, id := range []string{sb.ID, "doesnotexist"} {
		if err := o.Kill(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("kill %s again: %v, want ErrNotFound", id, err)
		}
		if _, err := o.Get(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("get %s: %v, want ErrNotFound", id, err)
		}
	}
	rec, _ := h.st.GetSandbox(ctx, sb.ID)
	if rec.State != store.StateKilled || rec.EndReason != "killed by request" || rec.EndedAt.IsZero() {
		t.Errorf("record after kill: %+v", rec)
	}
}

func TestTimeouts(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	ctx := context.Background()

	short := create(t, o, time.Hour)
	long := create(t, o, time.Hour)
	if err := o.SetTimeout(ctx, short.ID, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the short sandbox to be reaped", func() bool {
		_, err := o.Get(ctx, short.ID)
		return errors.Is(err, ErrNotFound)
	})
	rec, _ := h.st.GetSandbox(ctx, short.ID)
	if rec.EndReason != "timeout" {
		t.Errorf("end reason %q, want timeout", rec.EndReason)
	}
	// The end is recorded before the resources go, so wait for those too.
	waitFor(t, 5*time.Second, "the timed-out sandbox's resources to be freed", func() bool {
		return h.drv.box(short.ID) == nil && !h.net.has(short.ID)
	})
	if _, err := o.Get(ctx, long.ID); err != nil {
		t.Errorf("long sandbox: %v", err)
	}

	// Connect never shortens; SetTimeout may.
	before, _ := o.Get(ctx, long.ID)
	got, resumed, err := o.Connect(ctx, long.ID, time.Second)
	if err != nil || resumed || !got.EndAt.Equal(before.EndAt) {
		t.Errorf("connect with a shorter timeout changed expiry: %v -> %v (resumed=%v, err=%v)", before.EndAt, got.EndAt, resumed, err)
	}
	got, _, err = o.Connect(ctx, long.ID, 2*time.Hour)
	if err != nil || !got.EndAt.After(before.EndAt) {
		t.Errorf("connect with a longer timeout did not extend: %v", err)
	}
	if err := o.SetTimeout(ctx, "missing", time.Second); !errors.Is(err, ErrNotFound) {
		t.Errorf("set timeout on missing: %v", err)
	}
}

func TestPauseResume(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	ctx := context.Background()
	sb := create(t, o, time.Hour)

	if err := o.Pause(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := o.Pause(ctx, sb.ID); !errors.Is(err, ErrConflict) {
		t.Errorf("second pause: %v, want ErrConflict", err)
	}
	if rt, _ := o.Route(sb.ID); rt.Running {
		t.Error("paused sandbox is routed as running")
	}
	rec, _ := o.Get(ctx, sb.ID)
	if rec.State != store.StatePaused {
		t.Errorf("state %s, want paused", rec.State)
	}
	_, resumed, err := o.Connect(ctx, sb.ID, time.Minute)
	if err != nil || !resumed {
		t.Fatalf("connect to paused: resumed=%v err=%v", resumed, err)
	}
	if rt, _ := o.Route(sb.ID); !rt.Running {
		t.Error("resumed sandbox not routed")
	}
	if n := len(h.drv.box(sb.ID).envd.inits()); n != 2 {
		t.Errorf("envd re-initialised %d times, want once more after resume", n-1)
	}
}

func TestAutoPauseOnTimeout(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	ctx := context.Background()
	sb, err := o.Create(ctx, CreateRequest{Template: "base", Timeout: 200 * time.Millisecond, AutoPause: true, PublicTraffic: true})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "auto-pause", func() bool {
		rec, err := o.Get(ctx, sb.ID)
		return err == nil && rec.State == store.StatePaused
	})
	if h.drv.box(sb.ID) == nil {
		t.Error("auto-paused sandbox was killed")
	}
}

func TestRestartRecovery(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	o := h.orchestrator(t)
	alive := create(t, o, time.Hour)
	stopped := create(t, o, time.Hour)
	vanished := create(t, o, time.Hour)
	expired := create(t, o, time.Hour)
	paused := create(t, o, time.Hour)
	if err := o.Pause(ctx, paused.ID); err != nil {
		t.Fatal(err)
	}
	o.Close() // the server goes away; sandboxes keep running

	h.drv.setState(stopped.ID, runtime.StateStopped)
	h.drv.forget(vanished.ID)
	h.drv.addOrphan("orphan0000000000000")
	if _, err := h.st.UpdateSandbox(ctx, expired.ID, func(s *store.Sandbox) error {
		s.EndAt = time.Now().Add(-time.Minute)
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	o2 := h.orchestrator(t)
	defer o2.Close()

	if _, ok := o2.Route(alive.ID); !ok {
		t.Error("running sandbox was not adopted")
	}
	if rec, err := o2.Get(ctx, paused.ID); err != nil || rec.State != store.StatePaused {
		t.Errorf("paused sandbox after restart: %+v %v", rec, err)
	}
	for _, id := range []string{stopped.ID, vanished.ID} {
		rec, _ := h.st.GetSandbox(ctx, id)
		if rec.State != store.StateKilled || rec.EndReason == "" {
			t.Errorf("lost sandbox %s recorded as %s (%q)", id, rec.State, rec.EndReason)
		}
		if h.drv.box(id) != nil || h.net.has(id) {
			t.Errorf("lost sandbox %s left resources", id)
		}
	}
	if h.drv.box("orphan0000000000000") != nil {
		t.Error("orphaned container was not removed")
	}
	waitFor(t, 5*time.Second, "the expired sandbox to be reaped after restart", func() bool {
		_, err := o2.Get(ctx, expired.ID)
		return errors.Is(err, ErrNotFound)
	})
}

// leasingTemplates is fakeTemplates that records leases like
// template.Manager does.
type leasingTemplates struct {
	fakeTemplates
	mu         sync.Mutex
	leases     map[string]string // sandbox → rootfs
	reconciled []string          // holders dropped by ReconcileLeases
}

func (l *leasingTemplates) Lease(rootfs, id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leases[id] = rootfs
	return nil
}

func (l *leasingTemplates) Release(id string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.leases, id)
	return nil
}

func (l *leasingTemplates) ReconcileLeases(live func(string) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for id := range l.leases {
		if !live(id) {
			delete(l.leases, id)
			l.reconciled = append(l.reconciled, id)
		}
	}
	return nil
}

func (l *leasingTemplates) held(id string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	r, ok := l.leases[id]
	return r, ok
}

// TestSandboxLeasesItsRootfs: a sandbox holds its template's tree from boot
// until it is killed; a failed create releases it; after a restart the
// leases of sandboxes that did not survive are dropped and the survivors'
// kept.
func TestSandboxLeasesItsRootfs(t *testing.T) {
	h := newHarness(t)
	tpls := &leasingTemplates{leases: map[string]string{}}
	o := h.orchestratorWith(t, func(c *Config) { c.Templates = tpls })
	a, b := create(t, o, time.Hour), create(t, o, time.Hour)
	if r, ok := tpls.held(a.ID); !ok || r != "/nonexistent" {
		t.Fatalf("running sandbox's lease = %q, %v; want its template's rootfs", r, ok)
	}
	if err := o.Kill(context.Background(), a.ID); err != nil {
		t.Fatal(err)
	}
	if _, ok := tpls.held(a.ID); ok {
		t.Error("a killed sandbox still holds its rootfs")
	}

	h.drv.mu.Lock()
	h.drv.fail = errors.New("runtime refused")
	h.drv.mu.Unlock()
	if _, err := o.Create(context.Background(), CreateRequest{Template: "base", Timeout: time.Hour}); err == nil {
		t.Fatal("create succeeded with a failing runtime")
	}
	h.drv.mu.Lock()
	h.drv.fail = nil
	h.drv.mu.Unlock()
	tpls.mu.Lock()
	n := len(tpls.leases)
	tpls.mu.Unlock()
	if n != 1 {
		t.Errorf("after a failed create %d leases are held, want 1 (the running sandbox's)", n)
	}

	// A stale lease (a sandbox lost in a crash) is dropped on restart; the
	// adopted sandbox keeps its own.
	o.Close()
	_ = tpls.Lease("/nonexistent", "lostinacrash")
	o2 := h.orchestratorWith(t, func(c *Config) { c.Templates = tpls })
	defer o2.Close()
	if _, ok := tpls.held(b.ID); !ok {
		t.Error("the adopted sandbox lost its lease on restart")
	}
	if _, ok := tpls.held("lostinacrash"); ok {
		t.Error("the lease of a sandbox that is gone survived the restart")
	}
}

// The gateway cuts requests in flight when a route's Stopped closes: it must
// close on pause and on kill, and a resumed sandbox gets a fresh one.
func TestRouteStoppedClosesOnPauseAndKill(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	ctx := context.Background()
	sb := create(t, o, time.Hour)
	closed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	rt, _ := o.Route(sb.ID)
	if rt.Stopped == nil || closed(rt.Stopped) {
		t.Fatal("running sandbox's route has no open Stopped channel")
	}
	if err := o.Pause(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if !closed(rt.Stopped) {
		t.Fatal("pause left Stopped open")
	}
	if _, _, err := o.Connect(ctx, sb.ID, time.Minute); err != nil {
		t.Fatal(err)
	}
	rt2, _ := o.Route(sb.ID)
	if rt2.Stopped == nil || closed(rt2.Stopped) {
		t.Fatal("resumed sandbox's route has no open Stopped channel")
	}
	if err := o.Kill(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if !closed(rt2.Stopped) {
		t.Fatal("kill left Stopped open")
	}
}
