package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var teamTests = []test{
	{"DefaultExists", testTeamDefault},
	{"CreateGetRoundTrip", testTeamRoundTrip},
	{"CreateDuplicate", testTeamDuplicate},
	{"GetMissing", testTeamGetMissing},
	{"IDBeforeName", testTeamIDBeforeName},
	{"List", testTeamList},
}

// defaultTeam is the team every store has from the start.
var defaultTeam = &store.Team{ID: store.DefaultTeamID, Name: store.DefaultTeamID}

func mustCreateTeam(t *testing.T, s store.Store, teams ...*store.Team) {
	t.Helper()
	for _, tm := range teams {
		if err := s.CreateTeam(t.Context(), tm); err != nil {
			t.Fatalf("CreateTeam(%s): %v", tm.ID, err)
		}
	}
}

func testTeamDefault(t *testing.T, s store.Store) {
	ctx := t.Context()
	got, err := s.GetTeam(ctx, store.DefaultTeamID)
	if err != nil {
		t.Fatalf("GetTeam(%s) on a fresh store: %v", store.DefaultTeamID, err)
	}
	checkTeam(t, "default team", got, defaultTeam)
	if !got.CreatedAt.IsZero() {
		t.Errorf("default team CreatedAt = %v, want zero", got.CreatedAt)
	}
	all, err := s.ListTeams(ctx)
	if err != nil {
		t.Fatalf("ListTeams: %v", err)
	}
	if len(all) != 1 {
		t.Fatalf("ListTeams on a fresh store has %d teams, want only the default one", len(all))
	}
	checkTeam(t, "ListTeams", all[0], defaultTeam)
}

func testTeamRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme := &store.Team{ID: "t-acme", Name: "acme", CreatedAt: at(17 * time.Microsecond)}
	other := &store.Team{ID: "t-other", Name: "other.team_2", CreatedAt: at(time.Hour)}
	mustCreateTeam(t, s, acme, other)
	for _, tc := range []struct {
		key  string
		want *store.Team
	}{
		{"t-acme", acme},
		{"acme", acme},
		{"t-other", other},
		{"other.team_2", other},
		{store.DefaultTeamID, defaultTeam},
	} {
		got, err := s.GetTeam(ctx, tc.key)
		if err != nil {
			t.Errorf("GetTeam(%s): %v", tc.key, err)
			continue
		}
		checkTeam(t, "GetTeam("+tc.key+")", got, tc.want)
	}
}

func testTeamDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	acme := &store.Team{ID: "t-acme", Name: "acme", CreatedAt: baseTime}
	mustCreateTeam(t, s, acme)
	for _, tm := range []*store.Team{
		{ID: "t-acme", Name: "acme-2", CreatedAt: at(time.Hour)},         // ID taken
		{ID: "t-acme-2", Name: "acme", CreatedAt: at(time.Hour)},         // name taken
		{ID: store.DefaultTeamID, Name: "new", CreatedAt: at(time.Hour)}, // the default team's ID
		{ID: "t-new", Name: store.DefaultTeamID, CreatedAt: at(time.Hour)},
	} {
		if err := s.CreateTeam(ctx, tm); !errors.Is(err, store.ErrAlreadyExists) {
			t.Errorf("CreateTeam(%s, %s): err = %v, want ErrAlreadyExists", tm.ID, tm.Name, err)
		}
	}
	// The failed creates changed nothing and left nothing behind.
	for _, key := range []string{"t-acme", "acme"} {
		got, err := s.GetTeam(ctx, key)
		if err != nil {
			t.Fatalf("GetTeam(%s): %v", key, err)
		}
		checkTeam(t, "after failed duplicates", got, acme)
	}
	for _, key := range []string{"acme-2", "t-acme-2", "new", "t-new"} {
		if _, err := s.GetTeam(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetTeam(%s) after failed create: err = %v, want ErrNotFound", key, err)
		}
	}
	got, err := s.GetTeam(ctx, store.DefaultTeamID)
	if err != nil {
		t.Fatalf("GetTeam(default): %v", err)
	}
	checkTeam(t, "default team after failed duplicates", got, defaultTeam)
	all, err := s.ListTeams(ctx)
	if err != nil || len(all) != 2 {
		t.Errorf("ListTeams = %d teams, %v; want 2", len(all), err)
	}
}

func testTeamGetMissing(t *testing.T, s store.Store) {
	mustCreateTeam(t, s, &store.Team{ID: "t-acme", Name: "acme", CreatedAt: baseTime})
	for _, key := range []string{"t-none", "none", "acm", "t-acme ", ""} {
		if _, err := s.GetTeam(t.Context(), key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetTeam(%q): err = %v, want ErrNotFound", key, err)
		}
	}
}

// When one team's name is another's ID, GetTeam finds the team by ID, as
// GetTemplate prefers an ID to an alias.
func testTeamIDBeforeName(t *testing.T, s store.Store) {
	byID := &store.Team{ID: "alpha", Name: "first", CreatedAt: baseTime}
	byName := &store.Team{ID: "t-2", Name: "alpha", CreatedAt: at(time.Second)}
	mustCreateTeam(t, s, byName, byID)
	got, err := s.GetTeam(t.Context(), "alpha")
	if err != nil {
		t.Fatalf("GetTeam: %v", err)
	}
	checkTeam(t, "GetTeam(alpha)", got, byID)
}

func testTeamList(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Created out of order; t-a and t-b share a creation time.
	c := &store.Team{ID: "t-c", Name: "charlie", CreatedAt: at(2 * time.Second)}
	b := &store.Team{ID: "t-b", Name: "alpha", CreatedAt: at(time.Second)}
	a := &store.Team{ID: "t-a", Name: "bravo", CreatedAt: at(time.Second)}
	d := &store.Team{ID: "t-d", Name: "delta", CreatedAt: at(-time.Hour + time.Microsecond)}
	mustCreateTeam(t, s, c, b, a, d)
	got, err := s.ListTeams(ctx)
	if err != nil {
		t.Fatalf("ListTeams: %v", err)
	}
	want := []*store.Team{defaultTeam, d, a, b, c}
	if len(got) != len(want) {
		t.Fatalf("ListTeams returned %d teams, want %d", len(got), len(want))
	}
	for i := range want {
		checkTeam(t, "ListTeams", got[i], want[i])
	}
}
