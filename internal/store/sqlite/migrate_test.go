package sqlite

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// teamsVersion is the migration that added teams.
const teamsVersion = 4

// The helpers below write rows as Airlock did before teams (schema versions
// 1 to 3), in SQL of that time: the Store's own statements name columns
// that a database of those versions lacks.

func insertPreTeamsSandbox(t *testing.T, s *Store, sb *store.Sandbox) {
	t.Helper()
	var e encoder
	args := []any{
		sb.ID, sb.TemplateID, sb.Alias, string(sb.State), sb.Runtime,
		e.strMap(sb.Metadata), e.strMap(sb.EnvVars), sb.Secure,
		sb.AccessToken, sb.TrafficToken, sb.AllowInternet, sb.AutoPause,
		sb.CPUCount, sb.MemoryMB, sb.DiskSizeMB, sb.IP,
		e.time(sb.StartedAt), e.time(sb.EndAt), e.time(sb.EndedAt), sb.EndReason, e.time(sb.UpdatedAt),
	}
	if e.err != nil {
		t.Fatal(e.err)
	}
	_, err := s.write.ExecContext(t.Context(), `INSERT INTO sandboxes (id, template_id, alias, state, runtime,
		metadata, env_vars, secure, access_token, traffic_token, allow_internet, auto_pause,
		cpu_count, memory_mb, disk_size_mb, ip, started_at, end_at, ended_at, end_reason, updated_at)
		VALUES (`+placeholders(len(args))+`)`, args...)
	if err != nil {
		t.Fatalf("insert pre-teams sandbox %s: %v", sb.ID, err)
	}
}

// insertPreTeamsTemplate needs schema version 3 (start_cmd).
func insertPreTeamsTemplate(t *testing.T, s *Store, tp *store.Template) {
	t.Helper()
	ctx := t.Context()
	var e encoder
	args := []any{tp.ID, tp.RootfsDir, tp.BuildStatus, tp.EnvdVersion, tp.CPUCount, tp.MemoryMB,
		tp.DiskSizeMB, tp.StartCmd, tp.Public, tp.SpawnCount, e.time(tp.LastSpawnAt), e.time(tp.CreatedAt), e.time(tp.UpdatedAt)}
	if e.err != nil {
		t.Fatal(e.err)
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO templates (id, rootfs_dir, build_status, envd_version,
		cpu_count, memory_mb, disk_size_mb, start_cmd, public, spawn_count, last_spawn_at, created_at, updated_at)
		VALUES (`+placeholders(len(args))+`)`, args...)
	if err != nil {
		t.Fatalf("insert pre-teams template %s: %v", tp.ID, err)
	}
	for i, alias := range tp.Aliases {
		if _, err := s.write.ExecContext(ctx, `INSERT INTO template_aliases (alias, template_id, position) VALUES (?, ?, ?)`,
			alias, tp.ID, i); err != nil {
			t.Fatalf("insert alias %s of %s: %v", alias, tp.ID, err)
		}
	}
}

func insertPreTeamsAPIKey(t *testing.T, s *Store, k *store.APIKey) {
	t.Helper()
	var e encoder
	args := []any{k.ID, k.Name, k.Hash, k.Mask, e.time(k.CreatedAt), e.time(k.LastUsed), k.Revoked}
	if e.err != nil {
		t.Fatal(e.err)
	}
	_, err := s.write.ExecContext(t.Context(), `INSERT INTO api_keys (id, name, hash, mask, created_at, last_used, revoked)
		VALUES (`+placeholders(len(args))+`)`, args...)
	if err != nil {
		t.Fatalf("insert pre-teams API key %s: %v", k.ID, err)
	}
}

// A database from before teams: its key and sandbox join the default
// team, the built-in templates stay built in and every other template
// joins the default team.
func TestMigratesToTeams(t *testing.T) {
	ctx := t.Context()
	if m := migrations[teamsVersion-1]; m.name != "0004_teams.sql" {
		t.Fatalf("migration %d is %s, want 0004_teams.sql", teamsVersion, m.name)
	}
	path := filepath.Join(t.TempDir(), "airlock.db")
	old, err := open(ctx, path, migrations[:teamsVersion-1])
	if err != nil {
		t.Fatalf("open at version %d: %v", teamsVersion-1, err)
	}
	key := &store.APIKey{ID: "key-old", Name: "ops", Hash: "h-old", Mask: "e2b_…", CreatedAt: t0, LastUsed: t0.Add(time.Minute)}
	sb := &store.Sandbox{
		ID: "sb-old", TemplateID: "tmpl-base", Alias: "base", State: store.StatePaused, Runtime: "runsc",
		Metadata: map[string]string{"owner": "alice"}, EnvVars: map[string]string{"A": "b"},
		Secure: true, AccessToken: "tok", CPUCount: 2, MemoryMB: 512, DiskSizeMB: 2048, IP: "10.11.0.2",
		StartedAt: t0, EndAt: t0.Add(time.Hour), EndReason: "", UpdatedAt: t0.Add(time.Second),
	}
	base := &store.Template{ID: "tmpl-base", Aliases: []string{"base"}, BuildStatus: "ready", CreatedAt: t0}
	ci := &store.Template{ID: "tmpl-ci", Aliases: []string{"ci", "code-interpreter-v1"}, BuildStatus: "ready", CreatedAt: t0}
	mine := &store.Template{ID: "tmpl-mine", Aliases: []string{"mine"}, BuildStatus: "ready", CreatedAt: t0}
	noAlias := &store.Template{ID: "tmpl-noalias", BuildStatus: "error", CreatedAt: t0}
	insertPreTeamsAPIKey(t, old, key)
	insertPreTeamsSandbox(t, old, sb)
	for _, tp := range []*store.Template{base, ci, mine, noAlias} {
		insertPreTeamsTemplate(t, old, tp)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	var v int
	rawQuery(t, path, "PRAGMA user_version", &v)
	if v != teamsVersion-1 {
		t.Fatalf("user_version = %d before upgrade, want %d", v, teamsVersion-1)
	}

	s := mustOpen(t, path)
	defer s.Close()
	rawQuery(t, path, "PRAGMA user_version", &v)
	if v != len(migrations) {
		t.Errorf("user_version = %d after upgrade, want %d", v, len(migrations))
	}

	gotKey, err := s.GetAPIKeyByHash(ctx, "h-old")
	if err != nil {
		t.Fatalf("GetAPIKeyByHash after upgrade: %v", err)
	}
	wantKey := *key
	wantKey.TeamID = store.DefaultTeamID
	if !reflect.DeepEqual(*gotKey, wantKey) {
		t.Errorf("API key after upgrade\n got: %+v\nwant: %+v", *gotKey, wantKey)
	}

	gotSB, err := s.GetSandbox(ctx, "sb-old")
	if err != nil {
		t.Fatalf("GetSandbox after upgrade: %v", err)
	}
	wantSB := *sb
	wantSB.TeamID = store.DefaultTeamID
	if !reflect.DeepEqual(*gotSB, wantSB) {
		t.Errorf("sandbox after upgrade\n got: %+v\nwant: %+v", *gotSB, wantSB)
	}
	if !gotSB.PausedAt.IsZero() {
		t.Errorf("PausedAt = %v after upgrade, want zero", gotSB.PausedAt)
	}
	listed, _, err := s.ListSandboxes(ctx, store.SandboxFilter{TeamID: store.DefaultTeamID})
	if err != nil || len(listed) != 1 || listed[0].ID != "sb-old" {
		t.Errorf("ListSandboxes(default team) after upgrade = %v, %v", listed, err)
	}

	for _, tc := range []struct {
		key, team string
	}{
		{"base", ""},
		{"code-interpreter-v1", ""},
		{"mine", store.DefaultTeamID},
		{"tmpl-base", ""}, // by ID
		{"tmpl-mine", store.DefaultTeamID},
	} {
		tp, err := s.GetTemplate(ctx, tc.key)
		if err != nil {
			t.Errorf("GetTemplate(%s) after upgrade: %v", tc.key, err)
			continue
		}
		if tp.TeamID != tc.team {
			t.Errorf("template %s (%s) has TeamID %q after upgrade, want %q", tc.key, tp.ID, tp.TeamID, tc.team)
		}
	}
	tmpls, err := s.ListTemplates(ctx)
	if err != nil {
		t.Fatalf("ListTemplates: %v", err)
	}
	teams := map[string]string{}
	for _, tp := range tmpls {
		teams[tp.ID] = tp.TeamID
	}
	wantTeams := map[string]string{"tmpl-base": "", "tmpl-ci": "", "tmpl-mine": store.DefaultTeamID, "tmpl-noalias": store.DefaultTeamID}
	if !reflect.DeepEqual(teams, wantTeams) {
		t.Errorf("template teams after upgrade = %v, want %v", teams, wantTeams)
	}

	all, err := s.ListTeams(ctx)
	if err != nil {
		t.Fatalf("ListTeams: %v", err)
	}
	if len(all) != 1 || *all[0] != (store.Team{ID: store.DefaultTeamID, Name: store.DefaultTeamID}) {
		t.Errorf("ListTeams after upgrade = %+v, want only the default team", all)
	}
}
