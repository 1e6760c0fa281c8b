package network

import (
	"context"
	"testing"
	"time"
)

// BenchmarkAttachDetach measures the sandbox-create hot path (Attach) and its
// teardown; attach-ns/op reports Attach alone.
func BenchmarkAttachDetach(b *testing.B) {
	ctx := context.Background()
	m := newTestManager(b, "altestb", "10.214.9.0/24")
	var attachTotal time.Duration
	n := 0
	for b.Loop() {
		id := randomID(b)
		start := time.Now()
		if _, err := m.Attach(ctx, id, Policy{AllowInternet: true}); err != nil {
			b.Fatal(err)
		}
		attachTotal += time.Since(start)
		n++
		if err := m.Detach(ctx, id); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(attachTotal.Nanoseconds())/float64(n), "attach-ns/op")
}
