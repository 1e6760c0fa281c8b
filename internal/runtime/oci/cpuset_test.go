package oci

import (
	"fmt"
	"os"
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

func TestRotateLog(t *testing.T) {
	p := t.TempDir() + "/runtime.log"
	var content strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&content, "line %04d of the runtime's complaints\n", i)
	}
	if err := os.WriteFile(p, []byte(content.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rotateLog(p, 1<<20, 1024); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(p); len(data) != content.Len() {
		t.Fatalf("a log under the cap was rotated: %d bytes of %d", len(data), content.Len())
	}
	if err := rotateLog(p, 4096, 1024); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(data) > 1100 || !strings.HasPrefix(lines[0], "[airlock: ") || lines[len(lines)-1] != "line 1999 of the runtime's complaints" {
		t.Fatalf("rotated log (%d bytes): first %q, last %q", len(data), lines[0], lines[len(lines)-1])
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "line ") {
			t.Fatalf("rotated log has a partial line %q", l)
		}
	}
	// The runtime appends after a rotation.
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("after\n")
	f.Close()
	if data, _ := os.ReadFile(p); !strings.HasSuffix(string(data), "complaints\nafter\n") {
		t.Errorf("append after rotation: %q", data[max(0, len(data)-60):])
	}
}
