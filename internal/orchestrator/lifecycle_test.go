package orchestrator

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

func TestTransitionsTable(t *testing.T) {
	all := []store.SandboxState{store.StateCreating, store.StateRunning, store.StatePaused, store.StateKilled}
	allowed := map[[2]store.SandboxState]bool{
		{store.StateCreating, store.StateRunning}: true,
		{store.StateCreating, store.StateKilled}:  true,
		{store.StateRunning, store.StatePaused}:   true,
		{store.StateRunning, store.StateKilled}:   true,
		{store.StatePaused, store.StateRunning}:   true,
		{store.StatePaused, store.StateKilled}:    true,
	}
	for _, from := range all {
		if _, ok := transitions[from]; !ok {
			t.Errorf("state %s is missing from the table", from)
		}
		for _, to := range all {
			if got := canMove(from, to); got != allowed[[2]store.SandboxState{from, to}] {
				t.Errorf("canMove(%s, %s) = %v", from, to, got)
			}
		}
	}
}

// transition refuses a move the table does not allow, writes nothing, and
// keeps store, in-memory view and log in step for the moves it makes.
func TestTransitionKeepsViewsInStep(t *testing.T) {
	h := newHarness(t)
	o := h.orchestrator(t)
	defer o.Close()
	ctx := context.Background()
	sb := create(t, o, time.Minute)

	unlock := o.lock(sb.ID)
	rec, err := o.transition(ctx, sb.ID, store.StatePaused, "test pause", nil)
	unlock()
	if err != nil || rec.State != store.StatePaused || rec.PausedAt.IsZero() {
		t.Fatalf("running → paused: %+v, %v", rec, err)
	}
	if rt, _ := o.Route(sb.ID); rt.Running {
		t.Error("the gateway still sees a paused sandbox as running")
	}
	events, _ := h.st.ListEvents(ctx, sb.ID, time.Time{}, 100)
	if len(events) == 0 || events[len(events)-1].Message != "test pause" {
		t.Errorf("events %+v lack the transition's", events)
	}

	if err := o.Kill(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	_, err = o.transition(ctx, sb.ID, store.StateRunning, "", nil)
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("killed → running: %v, want ErrConflict", err)
	}
	got, _ := h.st.GetSandbox(ctx, sb.ID)
	if got.State != store.StateKilled || got.EndedAt.IsZero() || got.EndReason == "" {
		t.Errorf("killed record %+v", got)
	}
	if _, ok := o.Route(sb.ID); ok {
		t.Error("a killed sandbox is still routed")
	}
}
