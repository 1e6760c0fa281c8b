package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestReportOutputs(t *testing.T) {
	ms := time.Millisecond
	rep := &Report{Machine: Machine{CPU: "test cpu", Cores: 2, MemoryMB: 1024, Kernel: "6.0"}, Runtimes: []RuntimeReport{{
		Runtime: "runc",
		Results: []Result{{
			Scenario:  ScenarioCreate,
			Latency:   Summarize([]time.Duration{80 * ms, 90 * ms}),
			Baselines: []Baseline{{Name: "bare runc run", Latency: Summarize([]time.Duration{40 * ms}), Ratio: 2}},
			Phases:    map[string]Summary{"runtime": Summarize([]time.Duration{60 * ms}), "netns": Summarize([]time.Duration{4 * ms})},
		}},
		Idle: &IdleResult{Created: 5, StopReason: "reached --idle-max 5", PSSPerBoxKB: 2048},
	}}}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{ScenarioCreate, "80.0ms", "2.0× bare runc run (40.0ms)", "netns=4.00ms runtime=60.0ms", "idle: 5 sandboxes", "PSS 2.0 MiB"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if got := back.Runtimes[0].Results[0]; got.Latency.P50 != 80*ms || got.Baselines[0].Ratio != 2 {
		t.Errorf("JSON round trip = %+v", got)
	}
}

func TestLoopbackBaselines(t *testing.T) {
	lb, err := newLoopback()
	if err != nil {
		t.Fatal(err)
	}
	defer lb.close()
	ctx := context.Background()
	if err := lb.roundTrip(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lb.execRoundTrip(ctx); err != nil {
		t.Fatal(err)
	}
	if err := lb.transfer(ctx, bytes.Repeat([]byte("x"), 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := diskCopy(t.TempDir(), []byte("data")); err != nil {
		t.Fatal(err)
	}
}

// The floors the envd round-trip is compared with, as Go benchmarks.

func BenchmarkLoopbackHTTPRoundTrip(b *testing.B) {
	benchLoopback(b, (*loopback).roundTrip)
}

func BenchmarkLoopbackHTTPExec(b *testing.B) {
	benchLoopback(b, (*loopback).execRoundTrip)
}

func BenchmarkHostShellTrue(b *testing.B) {
	benchLoop(b, hostShell)
}

// benchLoopback runs op against a fresh loopback server.
func benchLoopback(b *testing.B, op func(*loopback, context.Context) error) {
	lb, err := newLoopback()
	if err != nil {
		b.Fatal(err)
	}
	defer lb.close()
	benchLoop(b, func(ctx context.Context) error { return op(lb, ctx) })
}

func benchLoop(b *testing.B, fn func(context.Context) error) {
	ctx := context.Background()
	for b.Loop() {
		if err := fn(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
