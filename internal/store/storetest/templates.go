package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var templateTests = []test{
	{"PutGetRoundTrip", testTemplateRoundTrip},
	{"PutReplaces", testTemplateReplace},
	{"AliasTaken", testTemplateAliasTaken},
	{"GetMissing", testTemplateGetMissing},
	{"List", testTemplateList},
	{"Delete", testTemplateDelete},
	{"Touch", testTemplateTouch},
}

func newTemplate(id string, aliases ...string) *store.Template {
	return &store.Template{
		ID:          id,
		TeamID:      store.DefaultTeamID,
		Aliases:     aliases,
		RootfsDir:   "/var/lib/airlock/templates/" + id,
		BuildStatus: "ready",
		EnvdVersion: "0.2.0",
		CPUCount:    2,
		MemoryMB:    512,
		DiskSizeMB:  4096,
		StartCmd:    "/.airlock/envd interpreter --addr ':49999'",
		Runtime:     "runsc",
		ReadyCmd:    "[ -f /tmp/ready ]",
		User:        "worker",
		Workdir:     "/app",
		Envs:        map[string]string{"A": "1", "PATH": "/opt/bin:/usr/bin"},
		BuildID:     "b-" + id,
		Public:      true,
		SpawnCount:  7,
		LastSpawnAt: at(-time.Minute),
		CreatedAt:   at(-time.Hour),
		UpdatedAt:   at(-30 * time.Minute),
	}
}

func mustPutTemplate(t *testing.T, s store.Store, tps ...*store.Template) {
	t.Helper()
	for _, tp := range tps {
		if err := s.PutTemplate(t.Context(), tp); err != nil {
			t.Fatalf("PutTemplate(%s): %v", tp.ID, err)
		}
	}
}

func testTemplateRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	full := newTemplate("tmpl-base", "base", "default", "z-last")
	bare := &store.Template{ID: "tmpl-bare", BuildStatus: "building"} // built in: TeamID ""
	team := newTemplate("tmpl-team", "team-tmpl")
	team.TeamID = "t-acme"
	mustPutTemplate(t, s, full, bare, team)
	cases := []struct {
		key  string
		want *store.Template
	}{
		{"tmpl-base", full},
		{"base", full},
		{"default", full},
		{"z-last", full},
		{"tmpl-bare", bare},
		{"tmpl-team", team},
		{"team-tmpl", team},
	}
	for _, tc := range cases {
		t.Run(tc.key, func(t *testing.T) {
			got, err := s.GetTemplate(ctx, tc.key)
			if err != nil {
				t.Fatalf("GetTemplate: %v", err)
			}
			checkTemplate(t, "GetTemplate", got, tc.want)
		})
	}
	got, err := s.GetTemplate(ctx, "tmpl-bare")
	if err != nil {
		t.Fatalf("GetTemplate: %v", err)
	}
	if !got.LastSpawnAt.IsZero() || !got.CreatedAt.IsZero() {
		t.Errorf("zero times came back as %v, %v", got.LastSpawnAt, got.CreatedAt)
	}
}

func testTemplateReplace(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPutTemplate(t, s, newTemplate("tmpl-base", "base", "old"))
	repl := newTemplate("tmpl-base", "base", "new")
	repl.BuildStatus, repl.RootfsDir, repl.Public, repl.SpawnCount = "error", "/other", false, 0
	repl.StartCmd = "" // clearing the start command must stick
	repl.Runtime = "runc"
	repl.ReadyCmd, repl.User, repl.Workdir, repl.BuildID = "", "root", "/srv", "b-next"
	repl.Envs = map[string]string{"B": "2"} // replaces the map, not merges into it
	repl.TeamID = "t-acme"
	repl.LastSpawnAt = time.Time{}
	mustPutTemplate(t, s, repl)

	for _, key := range []string{"tmpl-base", "base", "new"} {
		got, err := s.GetTemplate(ctx, key)
		if err != nil {
			t.Fatalf("GetTemplate(%s): %v", key, err)
		}
		checkTemplate(t, "after replace", got, repl)
	}
	if _, err := s.GetTemplate(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTemplate(dropped alias): err = %v, want ErrNotFound", err)
	}
	all, err := s.ListTemplates(ctx)
	if err != nil {
		t.Fatalf("ListTemplates: %v", err)
	}
	if len(all) != 1 {
		t.Errorf("ListTemplates has %d templates after replace, want 1", len(all))
	}
}

func testTemplateAliasTaken(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := newTemplate("tmpl-a", "shared")
	mustPutTemplate(t, s, a)
	if err := s.PutTemplate(ctx, newTemplate("tmpl-b", "mine", "shared")); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("PutTemplate with another template's alias: err = %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetTemplate(ctx, "shared")
	if err != nil {
		t.Fatalf("GetTemplate: %v", err)
	}
	checkTemplate(t, "alias owner", got, a)
	if _, err := s.GetTemplate(ctx, "tmpl-b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failed PutTemplate left tmpl-b behind: err = %v", err)
	}
	if _, err := s.GetTemplate(ctx, "mine"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failed PutTemplate left alias behind: err = %v", err)
	}
}

func testTemplateGetMissing(t *testing.T, s store.Store) {
	mustPutTemplate(t, s, newTemplate("tmpl-a", "a"))
	for _, key := range []string{"tmpl-b", "b", ""} {
		if _, err := s.GetTemplate(t.Context(), key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetTemplate(%q): err = %v, want ErrNotFound", key, err)
		}
	}
}

func testTemplateList(t *testing.T, s store.Store) {
	ctx := t.Context()
	empty, err := s.ListTemplates(ctx)
	if err != nil || len(empty) != 0 {
		t.Fatalf("ListTemplates on empty store = %d templates, %v", len(empty), err)
	}
	want := []*store.Template{newTemplate("tmpl-c"), newTemplate("tmpl-a", "a1", "a2"), newTemplate("tmpl-b", "b")}
	want[0].TeamID = ""       // built in
	want[2].TeamID = "t-acme" // another team's
	mustPutTemplate(t, s, want...)
	got, err := s.ListTemplates(ctx)
	if err != nil {
		t.Fatalf("ListTemplates: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("ListTemplates returned %d templates, want %d", len(got), len(want))
	}
	byID := func(a, b *store.Template) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(got, byID)
	slices.SortFunc(want, byID)
	for i := range want {
		checkTemplate(t, "ListTemplates", got[i], want[i])
	}
}

func testTemplateDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustPutTemplate(t, s, newTemplate("tmpl-a", "a"), newTemplate("tmpl-b", "b"))
	if err := s.DeleteTemplate(ctx, "tmpl-a"); err != nil {
		t.Fatalf("DeleteTemplate: %v", err)
	}
	for _, key := range []string{"tmpl-a", "a"} {
		if _, err := s.GetTemplate(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetTemplate(%s) after delete: err = %v, want ErrNotFound", key, err)
		}
	}
	if _, err := s.GetTemplate(ctx, "b"); err != nil {
		t.Errorf("GetTemplate(b): other template gone: %v", err)
	}
	if err := s.DeleteTemplate(ctx, "tmpl-a"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteTemplate twice: err = %v, want ErrNotFound", err)
	}
	// A deleted template's alias is free again.
	mustPutTemplate(t, s, newTemplate("tmpl-c", "a"))
}

func testTemplateTouch(t *testing.T, s store.Store) {
	ctx := t.Context()
	tp := newTemplate("tmpl-a", "a")
	tp.SpawnCount, tp.LastSpawnAt = 0, time.Time{}
	mustPutTemplate(t, s, tp)
	for i := 1; i <= 3; i++ {
		if err := s.TouchTemplate(ctx, "tmpl-a", at(time.Duration(i)*time.Microsecond)); err != nil {
			t.Fatalf("TouchTemplate: %v", err)
		}
	}
	got, err := s.GetTemplate(ctx, "tmpl-a")
	if err != nil {
		t.Fatalf("GetTemplate: %v", err)
	}
	want := *tp
	want.SpawnCount, want.LastSpawnAt = 3, at(3*time.Microsecond)
	checkTemplate(t, "after touches", got, &want)
	if err := s.TouchTemplate(ctx, "tmpl-none", baseTime); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TouchTemplate missing: err = %v, want ErrNotFound", err)
	}
}
