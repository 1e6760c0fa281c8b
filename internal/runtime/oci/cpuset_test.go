package oci

import (
	"fmt"
	"strings"
	"testing"
)

func TestCPUSetPick(t *testing.T) {
	c := cpuSet{0, 1, 2, 3, 8, 9}
	if got := c.pick("a", 0); got != "" {
		t.Errorf("no CPU count: cpuset %q, want none", got)
	}
	if got := c.pick("a", 6); got != "" {
		t.Errorf("all CPUs: cpuset %q, want none", got)
	}
	if got := c.pick("a", 9); got != "" {
		t.Errorf("more than the host's CPUs: cpuset %q, want none", got)
	}
	if a, b := c.pick("sandbox-1", 2), c.pick("sandbox-1", 2); a != b {
		t.Errorf("same id gave %q then %q", a, b)
	}
	uses := map[string]int{}
	for i := range 600 {
		got := c.pick(fmt.Sprintf("sb%d", i), 2)
		parts := strings.Split(got, ",")
		if len(parts) != 2 || parts[0] == parts[1] {
			t.Fatalf("pick 2: %q", got)
		}
		for _, p := range parts {
			uses[p]++
		}
	}
	if len(uses) != len(c) {
		t.Fatalf("CPUs used: %v, want all of %v", uses, c)
	}
	for cpu, n := range uses {
		if n < 120 || n > 280 { // 200 each on average
			t.Errorf("CPU %s chosen %d times of 1200: uneven %v", cpu, n, uses)
		}
	}
}
