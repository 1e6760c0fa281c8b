package orchestrator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/tenancy"
)

func createAs(o *Orchestrator, team, tpl string) (*store.Sandbox, error) {
	return o.Create(context.Background(), CreateRequest{Template: tpl, Timeout: time.Minute, Secure: true, AllowInternet: true, PublicTraffic: true, Team: team})
}

func TestTemplatesOfOtherTeams(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	if _, err := createAs(o, "ta", "private-b"); !errors.Is(err, ErrTemplateNotFound) {
		t.Errorf("team ta created from team tb's private template: %v", err)
	}
	for _, c := range []struct{ team, tpl string }{{"tb", "private-b"}, {"ta", "public-b"}, {"ta", "base"}} {
		sb, err := createAs(o, c.team, c.tpl)
		if err != nil {
			t.Fatalf("%s from %s: %v", c.team, c.tpl, err)
		}
		if sb.TeamID != c.team {
			t.Errorf("sandbox team %q, want %q", sb.TeamID, c.team)
		}
		if got, err := o.Owner(context.Background(), sb.ID); err != nil || got != c.team {
			t.Errorf("Owner = %q, %v", got, err)
		}
	}
	sb, err := o.Create(context.Background(), CreateRequest{Template: "base", Timeout: time.Minute})
	if err != nil || sb.TeamID != store.DefaultTeamID {
		t.Errorf("create without a team: %+v, %v; want the default team", sb, err)
	}
	if _, err := o.Owner(context.Background(), "inope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Owner of an unknown sandbox: %v", err)
	}
}

func TestTeamLimits(t *testing.T) {
	h := newHarness(t)
	o := h.orchestratorWith(t, func(c *Config) {
		c.Limits = tenancy.NewLimiter(tenancy.Limits{MaxSandboxes: 2})
		c.DefaultMemoryMB = 256
	})
	defer o.Close()
	a1, err := createAs(o, "ta", "base")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := createAs(o, "ta", "base"); err != nil {
		t.Fatal(err)
	}
	if _, err := createAs(o, "ta", "base"); !errors.Is(err, tenancy.ErrLimitExceeded) {
		t.Fatalf("third sandbox of a team limited to 2: %v", err)
	}
	// Another team has its own allowance.
	if _, err := createAs(o, "tb", "base"); err != nil {
		t.Fatalf("other team: %v", err)
	}
	// A paused sandbox does not count; resuming it does.
	if err := o.Pause(context.Background(), a1.ID); err != nil {
		t.Fatal(err)
	}
	a3, err := createAs(o, "ta", "base")
	if err != nil {
		t.Fatalf("create with one of two paused: %v", err)
	}
	if _, _, err := o.Connect(context.Background(), a1.ID, time.Minute); !errors.Is(err, tenancy.ErrLimitExceeded) {
		t.Errorf("resume past the limit: %v", err)
	}
	if err := o.Kill(context.Background(), a3.ID); err != nil {
		t.Fatal(err)
	}
	if _, resumed, err := o.Connect(context.Background(), a1.ID, time.Minute); err != nil || !resumed {
		t.Errorf("resume after a kill made room: %v %v", resumed, err)
	}
}

// Creates in flight count: a burst of parallel creates cannot overshoot.
func TestTeamLimitUnderConcurrency(t *testing.T) {
	h := newHarness(t)
	o := h.orchestratorWith(t, func(c *Config) {
		c.Limits = tenancy.NewLimiter(tenancy.Limits{MaxSandboxes: 3, MaxMemoryMB: 100000})
	})
	defer o.Close()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, over int
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := createAs(o, "ta", "base")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, tenancy.ErrLimitExceeded):
				over++
			default:
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok != 3 || over != 7 {
		t.Errorf("%d created, %d refused; want 3 and 7", ok, over)
	}
}

func TestTeamMemoryAndRate(t *testing.T) {
	h := newHarness(t)
	o := h.orchestratorWith(t, func(c *Config) {
		c.DefaultMemoryMB = 512
		c.Limits = tenancy.NewLimiter(tenancy.Limits{MaxMemoryMB: 1024})
	})
	defer o.Close()
	for i := range 2 {
		if _, err := createAs(o, "ta", "base"); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}
	if _, err := createAs(o, "ta", "base"); !errors.Is(err, tenancy.ErrLimitExceeded) {
		t.Errorf("third 512 MiB sandbox under a 1024 MiB cap: %v", err)
	}

	h2 := newHarness(t)
	o2 := h2.orchestratorWith(t, func(c *Config) {
		c.Limits = tenancy.NewLimiter(tenancy.Limits{CreatesPerSecond: 0.001, CreateBurst: 2})
	})
	defer o2.Close()
	for i := range 2 {
		if _, err := createAs(o2, "ta", "base"); err != nil {
			t.Fatalf("create %d within the burst: %v", i, err)
		}
	}
	if _, err := createAs(o2, "ta", "base"); !errors.Is(err, tenancy.ErrLimitExceeded) {
		t.Errorf("create past the burst: %v", err)
	}
	if _, err := createAs(o2, "tb", "base"); err != nil {
		t.Errorf("another team's first create: %v", err)
	}
}

func TestPausedRetention(t *testing.T) {
	h := newHarness(t)
	o := h.orchestratorWith(t, func(c *Config) { c.PausedRetention = 200 * time.Millisecond })
	defer o.Close()
	kept := create(t, o, time.Hour)
	paused := create(t, o, time.Hour)
	if err := o.Pause(context.Background(), paused.ID); err != nil {
		t.Fatal(err)
	}
	rec, err := h.st.GetSandbox(context.Background(), paused.ID)
	if err != nil || rec.PausedAt.IsZero() {
		t.Fatalf("paused record has no PausedAt: %+v %v", rec, err)
	}
	waitFor(t, 5*time.Second, "the paused sandbox to expire", func() bool {
		sb, err := h.st.GetSandbox(context.Background(), paused.ID)
		return err == nil && sb.State == store.StateKilled
	})
	if sb, _ := h.st.GetSandbox(context.Background(), kept.ID); sb.State != store.StateRunning {
		t.Errorf("the running sandbox was touched: %s", sb.State)
	}
}

func TestConnectCannotPassMaxTimeout(t *testing.T) {
	h := newHarness(t)
	o := h.orchestratorWith(t, func(c *Config) { c.MaxTimeout = time.Hour })
	defer o.Close()
	sb := create(t, o, time.Minute)
	if _, _, err := o.Connect(context.Background(), sb.ID, 2*time.Hour); !errors.Is(err, ErrInvalid) {
		t.Errorf("connect for 2 h with a 1 h maximum: %v", err)
	}
	if _, _, err := o.Connect(context.Background(), sb.ID, time.Hour); err != nil {
		t.Errorf("connect at the maximum: %v", err)
	}
}
