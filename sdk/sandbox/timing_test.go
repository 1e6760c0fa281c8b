package sandbox

import (
	"testing"
	"time"
)

func TestParseTiming(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]time.Duration
	}{
		{"", nil},
		{"netns=4.5ms, runtime=89ms", map[string]time.Duration{"netns": 4500 * time.Microsecond, "runtime": 89 * time.Millisecond}},
		{"bad, x=notaduration, pool_claim=12µs", map[string]time.Duration{"pool_claim": 12 * time.Microsecond}},
	}
	for _, tc := range tests {
		got := parseTiming(tc.in)
		if len(got) != len(tc.want) {
			t.Errorf("parseTiming(%q) = %v, want %v", tc.in, got, tc.want)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("parseTiming(%q)[%s] = %v, want %v", tc.in, k, got[k], v)
			}
		}
	}
}
