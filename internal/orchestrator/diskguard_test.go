package orchestrator

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// diskDriver is a fakeDriver whose host disk can be made low and whose
// sandboxes' disk use the test sets.
type diskDriver struct {
	*fakeDriver
	mu   sync.Mutex
	low  bool
	used map[string]uint64
}

func (d *diskDriver) HostDiskLow() (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.low, nil
}

func (d *diskDriver) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	st, err := d.fakeDriver.Stats(ctx, id)
	d.mu.Lock()
	defer d.mu.Unlock()
	st.DiskUsed = d.used[id]
	return st, err
}

func (d *diskDriver) set(low bool, used map[string]uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.low = low
	for id, u := range used {
		d.used[id] = u
	}
}

// TestDiskGuardPausesWriters: with the host's disk below its reserve, the
// biggest sandbox is paused first, then every one whose disk grows; idle
// ones keep running, and nothing is paused once there is space again.
func TestDiskGuardPausesWriters(t *testing.T) {
	h := newHarness(t)
	d := &diskDriver{fakeDriver: h.drv, used: map[string]uint64{}}
	o := h.orchestratorWith(t, func(c *Config) { c.Driver = d })
	defer o.Close()
	a, b, c := create(t, o, time.Hour), create(t, o, time.Hour), create(t, o, time.Hour)
	state := func(id string) store.SandboxState {
		sb, err := h.st.GetSandbox(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		return sb.State
	}
	d.set(true, map[string]uint64{a.ID: 100, b.ID: 500, c.ID: 50})
	waitFor(t, 5*time.Second, "the biggest sandbox paused", func() bool { return state(b.ID) == store.StatePaused })
	if state(a.ID) != store.StateRunning || state(c.ID) != store.StateRunning {
		t.Fatal("sandboxes that were not the biggest were paused on the first low tick")
	}
	d.set(true, map[string]uint64{a.ID: 200})
	waitFor(t, 5*time.Second, "the writing sandbox paused", func() bool { return state(a.ID) == store.StatePaused })
	time.Sleep(5 * o.cfg.ReapInterval)
	if state(c.ID) != store.StateRunning {
		t.Error("an idle sandbox was paused")
	}
	evs, err := o.Events(context.Background(), b.ID, time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var said bool
	for _, e := range evs {
		said = said || strings.Contains(e.Message, "host's disk")
	}
	if !said {
		t.Errorf("the paused sandbox's log does not say why: %v", evs)
	}
	// Space first, growth after: a tick between the two reads (disk low?,
	// then usage) must not see the old low with the new growth.
	d.set(false, nil)
	time.Sleep(2 * o.cfg.ReapInterval)
	d.set(false, map[string]uint64{c.ID: 10_000})
	time.Sleep(5 * o.cfg.ReapInterval)
	if state(c.ID) != store.StateRunning {
		t.Error("a sandbox was paused with enough space on the host")
	}
}
