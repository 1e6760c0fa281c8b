package orchestrator

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// MetricsInterval is how often running sandboxes' resource use is sampled
// (E2B's SDKs document metrics every 5 seconds). Samples sit at the start
// of their interval: a point at T stands for [T, T+MetricsInterval).
const MetricsInterval = 5 * time.Second

// metricsKeep is how many samples a sandbox keeps: its last hour.
const metricsKeep = int(time.Hour / MetricsInterval)

// Sample is one point of a sandbox's resource use.
type Sample struct {
	At         time.Time // the interval's start, a multiple of MetricsInterval
	CPUCount   int
	CPUUsedPct float64 // over the interval (over the lifetime for the first sample)
	MemUsed    int64
	MemTotal   int64
	MemCache   int64
	DiskUsed   int64
	DiskTotal  int64

	cpuNanos uint64
	taken    time.Time
}

// metricsHistory holds the samples of live sandboxes, oldest first.
type metricsHistory struct {
	mu sync.Mutex
	by map[string][]Sample
}

func (h *metricsHistory) last(id string) (Sample, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := h.by[id]
	if len(s) == 0 {
		return Sample{}, false
	}
	return s[len(s)-1], true
}

// add appends s, or replaces the sample of its interval with the newer s.
func (h *metricsHistory) add(id string, s Sample) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.by == nil {
		h.by = make(map[string][]Sample)
	}
	cur := h.by[id]
	if n := len(cur); n > 0 && !cur[n-1].At.Before(s.At) {
		if cur[n-1].At.Equal(s.At) && s.taken.After(cur[n-1].taken) {
			cur[n-1] = s
		}
		return
	}
	if len(cur) >= metricsKeep {
		cur = append(cur[:0], cur[len(cur)-metricsKeep+1:]...)
	}
	h.by[id] = append(cur, s)
}

// inRange returns the samples whose interval overlaps [start, end].
func (h *metricsHistory) inRange(id string, start, end time.Time) []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []Sample{}
	for _, s := range h.by[id] {
		if s.At.Add(MetricsInterval).After(start) && !s.At.After(end) {
			out = append(out, s)
		}
	}
	return out
}

// keepOnly drops the history of sandboxes not in live.
func (h *metricsHistory) keepOnly(live map[string]bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id := range h.by {
		if !live[id] {
			delete(h.by, id)
		}
	}
}

// metricsLoop samples every running sandbox at each interval boundary.
func (o *Orchestrator) metricsLoop() {
	defer o.wg.Done()
	for {
		now := time.Now()
		next := now.Truncate(MetricsInterval).Add(MetricsInterval)
		select {
		case <-o.stop:
			return
		case <-time.After(next.Sub(now)):
		}
		o.sampleAll()
	}
}

func (o *Orchestrator) sampleAll() {
	live := map[string]bool{}
	var running []string
	o.mu.Lock()
	for id, e := range o.live {
		live[id] = true
		if e.state == store.StateRunning {
			running = append(running, id)
		}
	}
	o.mu.Unlock()
	o.metrics.keepOnly(live)
	for _, id := range running {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if _, err := o.sample(ctx, id, time.Now()); err != nil {
			o.log.Debug("metrics sample", "sandbox", id, "err", err)
		}
		cancel()
	}
}

// sample records the sandbox's resource use now, in the interval now falls in.
func (o *Orchestrator) sample(ctx context.Context, id string, now time.Time) (Sample, error) {
	sb, st, err := o.Stats(ctx, id)
	if err != nil {
		return Sample{}, err
	}
	s := newSample(sb, st, now)
	if prev, ok := o.metrics.last(id); ok && now.After(prev.taken) && st.CPUUsageNanos >= prev.cpuNanos && sb.CPUCount > 0 {
		s.CPUUsedPct = 100 * float64(st.CPUUsageNanos-prev.cpuNanos) / float64(now.Sub(prev.taken).Nanoseconds()) / float64(sb.CPUCount)
	}
	o.metrics.add(id, s)
	return s, nil
}

func newSample(sb *store.Sandbox, st runtime.Stats, now time.Time) Sample {
	memTotal := int64(sb.MemoryMB) << 20
	if st.MemoryLimit > 0 && int64(st.MemoryLimit) < memTotal {
		memTotal = int64(st.MemoryLimit)
	}
	s := Sample{
		At:        now.Truncate(MetricsInterval),
		CPUCount:  sb.CPUCount,
		MemUsed:   int64(st.MemoryBytes),
		MemTotal:  memTotal,
		MemCache:  int64(st.MemoryCache),
		DiskUsed:  int64(st.DiskUsed),
		DiskTotal: int64(sb.DiskSizeMB) << 20,
		cpuNanos:  st.CPUUsageNanos,
		taken:     now,
	}
	if life := now.Sub(sb.StartedAt); life > 0 && sb.CPUCount > 0 {
		s.CPUUsedPct = 100 * float64(st.CPUUsageNanos) / float64(life.Nanoseconds()) / float64(sb.CPUCount)
	}
	return s
}

// Metrics returns a sandbox's samples whose interval overlaps [start, end]
// (zero times leave that side open). When the range reaches the current
// interval, a running sandbox is sampled now, so the last point is current
// (a sandbox just created has one at once).
func (o *Orchestrator) Metrics(ctx context.Context, id string, start, end time.Time) ([]Sample, error) {
	now := time.Now()
	if end.IsZero() || end.After(now) {
		end = now
	}
	if !start.IsZero() && start.After(end) {
		return []Sample{}, nil
	}
	sb, err := o.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if sb.State == store.StateRunning && !end.Before(now.Truncate(MetricsInterval)) {
		if _, err := o.sample(ctx, id, now); err != nil {
			return nil, fmt.Errorf("metrics of %s: %w", id, err)
		}
	}
	return o.metrics.inRange(id, start, end), nil
}
