package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var eventTests = []test{
	{"List", testEvents},
	{"Capped", testEventsCapped},
}

// testEventsCapped appends far more than a sandbox's log keeps: the newest
// stay, the oldest go, and another sandbox's log is untouched.
func testEventsCapped(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.AppendEvent(ctx, store.Event{SandboxID: "quiet", Time: at(0), Level: "info", Message: "only"}); err != nil {
		t.Fatal(err)
	}
	n := store.MaxEventsPerSandbox + 3*store.EventTrimEvery + 5
	for i := range n {
		e := store.Event{SandboxID: "chatty", Time: at(time.Duration(i) * time.Millisecond), Level: "info", Message: fmt.Sprint(i)}
		if err := s.AppendEvent(ctx, e); err != nil {
			t.Fatalf("AppendEvent %d: %v", i, err)
		}
	}
	got, err := s.ListEvents(ctx, "chatty", time.Time{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < store.MaxEventsPerSandbox || len(got) > store.MaxEventsPerSandbox+store.EventTrimEvery {
		t.Fatalf("%d events kept of %d appended, want %d..%d", len(got), n, store.MaxEventsPerSandbox, store.MaxEventsPerSandbox+store.EventTrimEvery)
	}
	if last := got[len(got)-1].Message; last != fmt.Sprint(n-1) {
		t.Errorf("newest kept event is %s, want %d", last, n-1)
	}
	if first := got[0].Message; first != fmt.Sprint(n-len(got)) {
		t.Errorf("oldest kept event is %s, want %d: the kept ones are not the newest", first, n-len(got))
	}
	if q, err := s.ListEvents(ctx, "quiet", time.Time{}, 0); err != nil || len(q) != 1 {
		t.Errorf("the other sandbox's log = %v, %v; want its one event", q, err)
	}
}

func testEvents(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Appended out of time order; "same-1" and "same-2" share a time and
	// must come back in append order.
	appends := []store.Event{
		{SandboxID: "sb-1", Time: at(3 * time.Second), Level: "info", Message: "third"},
		{SandboxID: "sb-1", Time: at(time.Second), Level: "debug", Message: "first"},
		{SandboxID: "sb-2", Time: at(2 * time.Second), Level: "info", Message: "other sandbox"},
		{SandboxID: "sb-1", Time: at(2 * time.Second), Level: "warn", Message: "same-1"},
		{SandboxID: "sb-1", Time: at(2 * time.Second), Level: "error", Message: "same-2"},
		{SandboxID: "sb-1", Time: at(4*time.Second + time.Microsecond), Level: "info", Message: "fourth ✓"},
	}
	for _, e := range appends {
		if err := s.AppendEvent(ctx, e); err != nil {
			t.Fatalf("AppendEvent(%s): %v", e.Message, err)
		}
	}
	cases := []struct {
		name    string
		sandbox string
		since   time.Time
		limit   int
		want    []string
	}{
		{"all", "sb-1", time.Time{}, 0, []string{"first", "same-1", "same-2", "third", "fourth ✓"}},
		{"since is inclusive", "sb-1", at(2 * time.Second), 0, []string{"same-1", "same-2", "third", "fourth ✓"}},
		{"since microsecond", "sb-1", at(4*time.Second + time.Microsecond), 0, []string{"fourth ✓"}},
		{"since after last", "sb-1", at(time.Minute), 0, nil},
		{"limit", "sb-1", time.Time{}, 2, []string{"first", "same-1"}},
		{"since and limit", "sb-1", at(2 * time.Second), 3, []string{"same-1", "same-2", "third"}},
		{"other sandbox", "sb-2", time.Time{}, 0, []string{"other sandbox"}},
		{"unknown sandbox", "sb-3", time.Time{}, 0, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListEvents(ctx, tc.sandbox, tc.since, tc.limit)
			if err != nil {
				t.Fatalf("ListEvents: %v", err)
			}
			msgs := make([]string, len(got))
			for i, e := range got {
				msgs[i] = e.Message
				if e.SandboxID != tc.sandbox {
					t.Errorf("event %q has SandboxID %q", e.Message, e.SandboxID)
				}
				if e.ID <= 0 {
					t.Errorf("event %q has ID %d, want a positive ID", e.Message, e.ID)
				}
			}
			checkIDs(t, "ListEvents messages", msgs, tc.want)
		})
	}

	t.Run("fields round-trip", func(t *testing.T) {
		got, err := s.ListEvents(ctx, "sb-1", at(2*time.Second), 2)
		if err != nil || len(got) != 2 {
			t.Fatalf("ListEvents = %v, %v", got, err)
		}
		if e := got[1]; e.Level != "error" || !e.Time.Equal(at(2*time.Second)) {
			t.Errorf("event = %+v, want level error at %v", e, at(2*time.Second))
		}
		if got[0].ID >= got[1].ID {
			t.Errorf("IDs %d, %d do not grow in append order", got[0].ID, got[1].ID)
		}
	})
}
