package orchestrator

import (
	"slices"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
)

func TestMetricsHistoryRanges(t *testing.T) {
	var h metricsHistory
	base := time.Unix(1_700_000_000, 0) // a multiple of 5 s
	for i := range 4 {
		h.add("a", Sample{At: base.Add(time.Duration(i) * MetricsInterval)})
	}
	h.add("a", Sample{At: base.Add(MetricsInterval)}) // a second sample of an interval does not add a point
	at := func(ss []Sample) []int64 {
		out := []int64{}
		for _, s := range ss {
			out = append(out, s.At.Unix()-base.Unix())
		}
		return out
	}
	for _, c := range []struct {
		name       string
		start, end time.Time
		want       []int64
	}{
		{"all", time.Time{}, base.Add(time.Hour), []int64{0, 5, 10, 15}},
		{"a start inside an interval includes it", base.Add(7 * time.Second), base.Add(time.Hour), []int64{5, 10, 15}},
		{"a start on a boundary", base.Add(10 * time.Second), base.Add(time.Hour), []int64{10, 15}},
		{"an end inside an interval includes it", time.Time{}, base.Add(6 * time.Second), []int64{0, 5}},
		{"one instant", base.Add(12 * time.Second), base.Add(12 * time.Second), []int64{10}},
		{"before any sample", base.Add(-time.Hour), base.Add(-time.Minute), []int64{}},
		{"after the last", base.Add(20 * time.Second), base.Add(time.Hour), []int64{}},
	} {
		if got := at(h.inRange("a", c.start, c.end)); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := h.inRange("other", time.Time{}, base.Add(time.Hour)); got == nil || len(got) != 0 {
		t.Errorf("unknown sandbox: %#v, want an empty, non-nil list", got)
	}
	h.keepOnly(map[string]bool{"b": true})
	if _, ok := h.last("a"); ok {
		t.Error("history of a sandbox no longer live was kept")
	}
}

func TestMetricsHistoryIsBounded(t *testing.T) {
	var h metricsHistory
	base := time.Unix(1_700_000_000, 0)
	for i := range metricsKeep + 10 {
		h.add("a", Sample{At: base.Add(time.Duration(i) * MetricsInterval)})
	}
	all := h.inRange("a", time.Time{}, base.Add(100*time.Hour))
	if len(all) != metricsKeep || !all[0].At.Equal(base.Add(10*MetricsInterval)) {
		t.Errorf("%d samples from %v, want %d from the 10th", len(all), all[0].At, metricsKeep)
	}
}

func TestNewSampleUsesTheSmallerMemoryLimit(t *testing.T) {
	sb := &store.Sandbox{CPUCount: 2, MemoryMB: 512, DiskSizeMB: 1024, StartedAt: time.Unix(100, 0)}
	s := newSample(sb, runtime.Stats{MemoryLimit: 256 << 20, CPUUsageNanos: uint64(10 * time.Second)}, time.Unix(112, 0))
	if s.MemTotal != 256<<20 || s.DiskTotal != 1024<<20 || !s.At.Equal(time.Unix(110, 0)) {
		t.Errorf("sample = %+v", s)
	}
	if s.CPUUsedPct < 41.6 || s.CPUUsedPct > 41.7 { // 10 s of CPU over 12 s on 2 CPUs
		t.Errorf("cpu = %v", s.CPUUsedPct)
	}
}
