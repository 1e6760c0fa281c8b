package orchestrator

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// transitions is the sandbox lifecycle: the states each state may move to.
// Every state change goes through transition, which enforces it.
var transitions = map[store.SandboxState][]store.SandboxState{
	store.StateCreating: {store.StateRunning, store.StateKilled},
	store.StateRunning:  {store.StatePaused, store.StateKilled},
	store.StatePaused:   {store.StateRunning, store.StateKilled},
	store.StateKilled:   nil,
}

// canMove reports whether the lifecycle allows from → to.
func canMove(from, to store.SandboxState) bool {
	return slices.Contains(transitions[from], to)
}

// transition is the one place a sandbox changes state: it checks the move
// against the table, applies change to the record and writes it to the
// store, then updates the in-memory view the gateway reads, and appends
// event to the sandbox's log ("" appends none, for callers that log later).
// The caller holds the sandbox's lock.
func (o *Orchestrator) transition(ctx context.Context, id string, to store.SandboxState, event string, change func(*store.Sandbox)) (*store.Sandbox, error) {
	now := time.Now().UTC()
	rec, err := o.cfg.Store.UpdateSandbox(ctx, id, func(s *store.Sandbox) error {
		if !canMove(s.State, to) {
			return fmt.Errorf("%w: sandbox %s cannot go from %s to %s", ErrConflict, id, s.State, to)
		}
		if change != nil {
			change(s)
		}
		s.State = to
		s.UpdatedAt = now
		switch to {
		case store.StatePaused:
			s.PausedAt = now
		case store.StateRunning:
			s.PausedAt = time.Time{}
		case store.StateKilled:
			s.EndedAt = now
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	switch e, ok := o.live[id]; {
	case to == store.StateKilled:
		o.untrackLocked(id)
	case ok:
		e.setStateLocked(rec.State)
		e.pausedAt = rec.PausedAt
	case to == store.StateRunning:
		ip, perr := netip.ParseAddr(rec.IP)
		if perr != nil {
			o.mu.Unlock()
			return nil, fmt.Errorf("sandbox %s is running without an address: %w", id, perr)
		}
		o.trackLocked(rec, ip)
	}
	o.mu.Unlock()
	if event != "" {
		o.event(ctx, id, "info", event)
	}
	return rec, nil
}
