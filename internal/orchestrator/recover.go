package orchestrator

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// recover reconciles the store with what exists on the host after a restart:
// live sandboxes whose container still runs are adopted; records whose
// container is gone are closed with a reason; containers and network
// endpoints nobody owns are removed.
func (o *Orchestrator) recover(ctx context.Context) error {
	containers := map[string]runtime.Info{}
	owner := map[string]runtime.Driver{}
	for _, d := range o.drivers {
		infos, err := d.List(ctx)
		if err != nil {
			return fmt.Errorf("list %s containers: %w", d.Name(), err)
		}
		for _, in := range infos {
			containers[in.ID], owner[in.ID] = in, d
		}
	}
	eps, err := o.cfg.Network.List(ctx)
	if err != nil {
		return fmt.Errorf("list network endpoints: %w", err)
	}
	endpoints := make(map[string]bool, len(eps))
	for _, ep := range eps {
		endpoints[ep.ID] = true
	}

	records, _, err := o.cfg.Store.ListSandboxes(ctx, store.SandboxFilter{
		States: []store.SandboxState{store.StateCreating, store.StateRunning, store.StatePaused},
	})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	owned := map[string]bool{}
	for _, sb := range records {
		in, hasContainer := containers[sb.ID]
		ip, ipErr := netip.ParseAddr(sb.IP)
		owned[sb.ID] = true // either adopted or cleaned below; never an orphan
		switch {
		case sb.State == store.StateCreating:
			o.cleanupLost(ctx, sb.ID, "interrupted while being created")
		case !hasContainer || ipErr != nil || !endpoints[sb.ID]:
			o.cleanupLost(ctx, sb.ID, "lost: its container or network was gone after a restart")
		case in.State == runtime.StateStopped || in.State == runtime.StateCreated:
			o.cleanupLost(ctx, sb.ID, "lost: its container had stopped")
		default:
			state := store.StateRunning
			if in.State == runtime.StatePaused {
				state = store.StatePaused
			}
			if state != sb.State {
				rec, err := o.transition(ctx, sb.ID, state, "", nil)
				if err != nil {
					return fmt.Errorf("record state of %s: %w", sb.ID, err)
				}
				sb = rec
			}
			o.track(sb, ip)
			o.log.Info("adopted sandbox", "sandbox", sb.ID, "state", state)
			// An expired one is reaped by the next reaper tick.
		}
	}
	for id := range containers {
		if !owned[id] {
			o.log.Warn("removing orphaned container", "sandbox", id)
			if err := owner[id].Kill(ctx, id); err != nil {
				o.log.Error("remove orphaned container", "sandbox", id, "err", err)
			}
		}
	}
	for id := range endpoints {
		if !owned[id] {
			if err := o.cfg.Network.Detach(ctx, id); err != nil {
				o.log.Error("remove orphaned network endpoint", "sandbox", id, "err", err)
			}
		}
	}
	if l, ok := o.cfg.Templates.(TemplateLeaser); ok {
		live := func(id string) bool {
			o.mu.Lock()
			defer o.mu.Unlock()
			_, ok := o.live[id]
			return ok
		}
		if err := l.ReconcileLeases(live); err != nil {
			o.log.Error("reconcile template leases", "err", err)
		}
	}
	return nil
}

func (o *Orchestrator) cleanupLost(ctx context.Context, id, reason string) {
	o.log.Warn("cleaning up sandbox after restart", "sandbox", id, "reason", reason)
	o.teardown(ctx, id)
	o.finish(ctx, id, reason)
}
