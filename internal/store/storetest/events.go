package storetest

import (
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var eventTests = []test{
	{"List", testEvents},
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
