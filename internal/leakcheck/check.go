package leakcheck

import (
	"strings"
	"testing"
	"time"
)

// RetryWindow is how long Check waits for asynchronous cleanup (exiting
// processes, lazily released mounts) before it reports a leak.
var RetryWindow = 3 * time.Second

// Check fails t with every item that exists now but did not in before,
// retrying for RetryWindow first. Use it with t.Cleanup or at the end of a
// test:
//
//	before := leakcheck.MustSnapshot(t)
//	t.Cleanup(func() { leakcheck.Check(t, before) })
func Check(t testing.TB, before *State) {
	t.Helper()
	var leaks []string
	deadline := time.Now().Add(RetryWindow)
	for {
		after, err := SnapshotWith(before.opts)
		if err != nil {
			t.Fatalf("leakcheck: %v", err)
			return
		}
		leaks = before.Diff(after)
		if len(leaks) == 0 {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("leakcheck: %d leaked resource(s):\n  %s", len(leaks), strings.Join(leaks, "\n  "))
}

// MustSnapshot is SnapshotWith that fails the test on error.
func MustSnapshot(t testing.TB, o Options) *State {
	t.Helper()
	s, err := SnapshotWith(o)
	if err != nil {
		t.Fatalf("leakcheck: %v", err)
	}
	return s
}
