package bench

import (
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: Summarize must sort
	}
	tests := []struct {
		name               string
		in                 []time.Duration
		min, p50, p90, p99 time.Duration
	}{
		{"empty", nil, 0, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"hundred", ms(hundred...), time.Millisecond, 50 * time.Millisecond, 90 * time.Millisecond, 99 * time.Millisecond},
		{"three", ms(3, 1, 2), time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Summarize(tc.in)
			if s.N != len(tc.in) || s.Min != tc.min || s.P50 != tc.p50 || s.P90 != tc.p90 || s.P99 != tc.p99 {
				t.Fatalf("Summarize = %+v, want n=%d min=%v p50=%v p90=%v p99=%v", s, len(tc.in), tc.min, tc.p50, tc.p90, tc.p99)
			}
		})
	}
}
