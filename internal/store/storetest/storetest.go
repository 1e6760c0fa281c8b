// Package storetest is the conformance suite that every store.Store
// implementation runs from its own tests, so that all of them keep the same
// contract.
package storetest

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// Run runs the whole suite. open must return a new, empty store for each
// call and remove anything it created (files, databases) in t.Cleanup; Run
// closes every store it gets.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	groups := []struct {
		name  string
		tests []test
	}{
		{"Sandbox", sandboxTests},
		{"List", listTests},
		{"Template", templateTests},
		{"TemplateBuild", templateBuildTests},
		{"APIKey", apiKeyTests},
		{"Team", teamTests},
		{"Event", eventTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					s := open(t)
					t.Cleanup(func() {
						if err := s.Close(); err != nil {
							t.Errorf("Close: %v", err)
						}
					})
					tc.fn(t, s)
				})
			}
		})
	}
	t.Run("Close", func(t *testing.T) { testClose(t, open(t)) })
}

type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

func testClose(t *testing.T, s store.Store) {
	ctx := t.Context()
	if err := s.CreateSandbox(ctx, newSandbox("sb-close", baseTime)); err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.GetSandbox(ctx, "sb-close"); err == nil {
		t.Fatal("GetSandbox after Close succeeded; want an error")
	}
}

// baseTime has microsecond precision, the finest every backend must keep,
// and a zone other than UTC so that conversion is exercised too.
var baseTime = time.Date(2025, 3, 14, 15, 9, 26, 535897000, time.FixedZone("X", 5*3600+1800))

// at returns baseTime shifted by d.
func at(d time.Duration) time.Time { return baseTime.Add(d) }

// newSandbox returns a sandbox with every field set to a non-zero value.
func newSandbox(id string, started time.Time) *store.Sandbox {
	return &store.Sandbox{
		ID:            id,
		TeamID:        store.DefaultTeamID,
		TemplateID:    "tmpl-base",
		Alias:         "base",
		State:         store.StateRunning,
		Runtime:       "runsc",
		Metadata:      map[string]string{"owner": "alice", "env": "dev", "with.dot": "a\"quote"},
		EnvVars:       map[string]string{"PATH": "/usr/bin", "EMPTY": ""},
		Secure:        true,
		AccessToken:   "tok-" + id,
		TrafficToken:  "traffic-" + id,
		AllowInternet: true,
		AutoPause:     true,
		CPUCount:      2,
		MemoryMB:      512,
		DiskSizeMB:    2048,
		IP:            "10.11.0.7",
		StartedAt:     started,
		EndAt:         started.Add(5*time.Minute + 123*time.Microsecond),
		PausedAt:      started.Add(2*time.Minute + 321*time.Microsecond),
		EndedAt:       started.Add(time.Minute + 456*time.Microsecond),
		EndReason:     "timeout",
		UpdatedAt:     started.Add(time.Second + 789*time.Microsecond),
	}
}

// normSandbox makes a copy fit for reflect.DeepEqual: times in UTC without
// monotonic readings, nil maps as empty.
func normSandbox(s *store.Sandbox) store.Sandbox {
	c := *s
	c.Metadata = normMap(c.Metadata)
	c.EnvVars = normMap(c.EnvVars)
	c.StartedAt = c.StartedAt.UTC()
	c.EndAt = c.EndAt.UTC()
	c.PausedAt = c.PausedAt.UTC()
	c.EndedAt = c.EndedAt.UTC()
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c
}

func normMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return maps.Clone(m)
}

func checkSandbox(t *testing.T, what string, got, want *store.Sandbox) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got nil sandbox", what)
	}
	g, w := normSandbox(got), normSandbox(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: sandbox mismatch\n got: %+v\nwant: %+v", what, g, w)
	}
}

func normTemplate(tp *store.Template) store.Template {
	c := *tp
	if c.Aliases == nil {
		c.Aliases = []string{}
	}
	if c.Envs == nil {
		c.Envs = map[string]string{}
	}
	c.LastSpawnAt = c.LastSpawnAt.UTC()
	c.CreatedAt = c.CreatedAt.UTC()
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c
}

func checkTemplate(t *testing.T, what string, got, want *store.Template) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got nil template", what)
	}
	g, w := normTemplate(got), normTemplate(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: template mismatch\n got: %+v\nwant: %+v", what, g, w)
	}
}

func normAPIKey(k *store.APIKey) store.APIKey {
	c := *k
	c.CreatedAt = c.CreatedAt.UTC()
	c.LastUsed = c.LastUsed.UTC()
	return c
}

func normTeam(tm *store.Team) store.Team {
	c := *tm
	c.CreatedAt = c.CreatedAt.UTC()
	return c
}

func checkTeam(t *testing.T, what string, got, want *store.Team) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got nil team", what)
	}
	g, w := normTeam(got), normTeam(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: team mismatch\n got: %+v\nwant: %+v", what, g, w)
	}
}

func checkAPIKey(t *testing.T, what string, got, want *store.APIKey) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got nil API key", what)
	}
	g, w := normAPIKey(got), normAPIKey(want)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s: API key mismatch\n got: %+v\nwant: %+v", what, g, w)
	}
}

// ids returns the IDs of sandboxes in order.
func ids(sbs []*store.Sandbox) []string {
	out := make([]string, len(sbs))
	for i, s := range sbs {
		out[i] = s.ID
	}
	return out
}

func checkIDs(t *testing.T, what string, got, want []string) {
	t.Helper()
	if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("%s: got IDs %v, want %v", what, got, want)
	}
}

func mustCreate(t *testing.T, s store.Store, sbs ...*store.Sandbox) {
	t.Helper()
	for _, sb := range sbs {
		if err := s.CreateSandbox(t.Context(), sb); err != nil {
			t.Fatalf("CreateSandbox(%s): %v", sb.ID, err)
		}
	}
}

func sbID(i int) string { return fmt.Sprintf("sb-%04d", i) }
