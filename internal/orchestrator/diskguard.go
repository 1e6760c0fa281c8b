package orchestrator

import (
	"context"
	"errors"

	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// diskLowEvent is the log line of a sandbox the disk guard paused.
const diskLowEvent = "sandbox paused: the host's disk fell below the space the server keeps for itself while this sandbox was writing; free space on the host (or kill sandboxes), then resume it"

// guardDisk keeps the host's disk from filling up under the server: sandbox
// disks are sparse images that together may promise more than the host
// has. While a driver reports its filesystem below the reserve, every
// running sandbox of it whose disk grew since the last tick is paused (on
// the first low tick, the one using most), which stops the writing without
// losing anything. Sandboxes that are not writing keep running.
func (o *Orchestrator) guardDisk(ctx context.Context) {
	var low []runtime.Driver
	for _, d := range o.drivers {
		if hd, ok := d.(runtime.HostDisk); ok {
			if isLow, err := hd.HostDiskLow(); err != nil {
				o.log.Warn("check host disk", "runtime", d.Name(), "err", err)
			} else if isLow {
				low = append(low, d)
			}
		}
	}
	if len(low) == 0 {
		o.diskSeen = nil
		return
	}
	o.mu.Lock()
	var running []string
	for id, e := range o.live {
		if e.state == store.StateRunning {
			running = append(running, id)
		}
	}
	o.mu.Unlock()
	first := o.diskSeen == nil
	seen := make(map[string]uint64, len(running))
	var pause []string
	var biggest string
	for _, id := range running {
		sb, err := o.cfg.Store.GetSandbox(ctx, id)
		if err != nil {
			continue
		}
		drv, err := o.driver(sb.Runtime)
		if err != nil || !containsDriver(low, drv) {
			continue
		}
		st, err := drv.Stats(ctx, id)
		if err != nil {
			continue
		}
		seen[id] = st.DiskUsed
		if prev, ok := o.diskSeen[id]; ok && st.DiskUsed > prev {
			pause = append(pause, id)
		}
		if biggest == "" || st.DiskUsed > seen[biggest] {
			biggest = id
		}
	}
	if first && biggest != "" && seen[biggest] > 0 {
		pause = append(pause, biggest)
	}
	o.diskSeen = seen
	for _, id := range pause {
		o.log.Warn("host disk below its reserve: pausing a sandbox that is writing", "sandbox", id, "disk_used", seen[id])
		if err := o.Pause(ctx, id); err != nil && !errors.Is(err, ErrConflict) {
			o.log.Error("pause sandbox on low host disk", "sandbox", id, "err", err)
			continue
		}
		o.event(ctx, id, "warn", diskLowEvent)
	}
}

func containsDriver(ds []runtime.Driver, d runtime.Driver) bool {
	for _, x := range ds {
		if x == d {
			return true
		}
	}
	return false
}
