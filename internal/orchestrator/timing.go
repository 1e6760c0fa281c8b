package orchestrator

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Timings collects the duration of each phase of one Create, for debug logs
// and the X-Airlock-Timing response header that `airlock bench` reads.
type Timings struct {
	mu     sync.Mutex
	phases []phase
	last   time.Time
}

type phase struct {
	name string
	d    time.Duration
}

type timingsKey struct{}

// WithTimings returns a context in which Create records its phases into t.
func WithTimings(ctx context.Context, t *Timings) context.Context {
	return context.WithValue(ctx, timingsKey{}, t)
}

func timingsFrom(ctx context.Context) *Timings {
	t, _ := ctx.Value(timingsKey{}).(*Timings)
	return t
}

// start begins timing; each mark records the time since the previous mark.
func (t *Timings) start() {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.last = time.Now()
	t.mu.Unlock()
}

func (t *Timings) mark(name string) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	t.phases = append(t.phases, phase{name, now.Sub(t.last)})
	t.last = now
}

// MarkPhase records a phase that ended inside the runtime driver
// (runtime.PhaseMarker).
func (t *Timings) MarkPhase(name string) { t.mark(name) }

// Add records a phase measured elsewhere (e.g. the API's own overhead).
func (t *Timings) Add(name string, d time.Duration) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.phases = append(t.phases, phase{name, d})
	t.mu.Unlock()
}

// Total is the sum of the recorded phases.
func (t *Timings) Total() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var sum time.Duration
	for _, p := range t.phases {
		sum += p.d
	}
	return sum
}

// String renders "phase=1.234ms, phase=…" in recording order.
func (t *Timings) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	parts := make([]string, len(t.phases))
	for i, p := range t.phases {
		parts[i] = p.name + "=" + p.d.String()
	}
	return strings.Join(parts, ", ")
}

// attrs renders the phases for slog.
func (t *Timings) attrs() []any {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]any, 0, 2*len(t.phases))
	for _, p := range t.phases {
		out = append(out, p.name, p.d)
	}
	return out
}
