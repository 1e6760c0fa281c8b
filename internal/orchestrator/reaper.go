package orchestrator

import (
	"context"
	"errors"
	"time"

	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// logRotateEvery is how many reaper ticks pass between log rotations
// (10 s at the default 250 ms).
const logRotateEvery = 40

// reapLoop kills (or pauses, with autoPause) sandboxes whose time is up. The
// expiry lives in the store, so a restarted server keeps enforcing it.
func (o *Orchestrator) reapLoop() {
	defer o.wg.Done()
	t := time.NewTicker(o.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case now := <-t.C:
			o.reapOnce(now)
		}
	}
}

func (o *Orchestrator) reapOnce(now time.Time) {
	type due struct {
		id        string
		autoPause bool
	}
	var expired []due
	var stale []string // paused for longer than the retention
	o.mu.Lock()
	for id, e := range o.live {
		if e.state == store.StateRunning && e.endAt.Before(now) {
			expired = append(expired, due{id, e.autoPause})
		}
		if r := o.cfg.PausedRetention; r > 0 && e.state == store.StatePaused && !e.pausedAt.IsZero() && e.pausedAt.Add(r).Before(now) {
			stale = append(stale, id)
		}
	}
	o.mu.Unlock()
	ctx := context.Background()
	o.guardDisk(ctx)
	if o.reaps++; o.reaps%logRotateEvery == 0 {
		for _, d := range o.drivers {
			if r, ok := d.(runtime.LogRotator); ok {
				if err := r.RotateLogs(ctx); err != nil {
					o.log.Warn("rotate sandbox logs", "runtime", d.Name(), "err", err)
				}
			}
		}
	}
	for _, id := range stale {
		stillStale := func(sb *store.Sandbox) bool {
			return sb.State == store.StatePaused && !sb.PausedAt.IsZero() && sb.PausedAt.Add(o.cfg.PausedRetention).Before(now)
		}
		if err := o.killIf(ctx, id, "paused for longer than the retention of "+o.cfg.PausedRetention.String(), stillStale); err != nil && !errors.Is(err, ErrNotFound) {
			o.log.Error("kill paused sandbox past its retention", "sandbox", id, "err", err)
		} else {
			o.log.Info("paused sandbox expired", "sandbox", id)
		}
	}
	for _, d := range expired {
		if d.autoPause {
			err := o.Pause(ctx, d.id)
			if err == nil || errors.Is(err, ErrConflict) {
				continue
			}
			if !errors.Is(err, runtime.ErrNotSupported) {
				o.log.Error("auto-pause on timeout failed; killing", "sandbox", d.id, "err", err)
			}
		}
		if err := o.kill(ctx, d.id, "timeout"); err != nil && !errors.Is(err, ErrNotFound) {
			o.log.Error("kill expired sandbox", "sandbox", d.id, "err", err)
		} else {
			o.log.Info("sandbox timed out", "sandbox", d.id)
		}
	}
}
