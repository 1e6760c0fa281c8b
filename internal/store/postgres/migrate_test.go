package postgres

import (
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// teamsVersion is the migration that added teams.
const teamsVersion = 3

// A database from before teams: its key and sandbox join the default
// team, the built-in templates stay built in and every other template
// joins the default team.
func TestMigratesToTeams(t *testing.T) {
	ctx := t.Context()
	if m := migrations[teamsVersion-1]; m.name != "0003_teams.sql" {
		t.Fatalf("migration %d is %s, want 0003_teams.sql", teamsVersion, m.name)
	}
	dsn := newDB(t)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close() // closing twice is harmless; this one covers t.Fatal
	if err := migrate(ctx, pool, migrations[:teamsVersion-1]); err != nil {
		t.Fatalf("migrate to version %d: %v", teamsVersion-1, err)
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)
	// SQL of that version: the Store's own statements name columns it lacks.
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`INSERT INTO api_keys (id, name, hash, mask, created_at, last_used, revoked)
		VALUES ('key-old', 'ops', 'h-old', 'e2b_…', $1, $1, false)`, t0)
	exec(`INSERT INTO sandboxes (id, template_id, alias, state, runtime, metadata, env_vars, secure,
		access_token, traffic_token, allow_internet, auto_pause, cpu_count, memory_mb,
		disk_size_mb, ip, started_at, end_at, ended_at, end_reason, updated_at)
		VALUES ('sb-old', 'tmpl-base', 'base', 'paused', 'runsc', '{"owner": "alice"}', '{}', true,
		'tok', '', false, true, 2, 512, 2048, '10.11.0.2', $1, $1, '0001-01-01 00:00:00+00', '', $1)`, t0)
	for _, id := range []string{"tmpl-base", "tmpl-ci", "tmpl-mine", "tmpl-noalias"} {
		exec(`INSERT INTO templates (id, rootfs_dir, build_status, envd_version, cpu_count, memory_mb,
			disk_size_mb, start_cmd, public, spawn_count, last_spawn_at, created_at, updated_at)
			VALUES ($1, '', 'ready', '', 0, 0, 0, '', true, 0, $2, $2, $2)`, id, t0)
	}
	for _, a := range []struct {
		alias, template string
		position        int
	}{{"base", "tmpl-base", 0}, {"ci", "tmpl-ci", 0}, {"code-interpreter-v1", "tmpl-ci", 1}, {"mine", "tmpl-mine", 0}} {
		exec(`INSERT INTO template_aliases (alias, template_id, position) VALUES ($1, $2, $3)`, a.alias, a.template, a.position)
	}
	pool.Close()

	s := mustOpen(t, dsn)
	defer s.Close()
	var versions int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != len(migrations) {
		t.Errorf("schema_migrations has %d rows after upgrade, want %d", versions, len(migrations))
	}

	key, err := s.GetAPIKeyByHash(ctx, "h-old")
	if err != nil {
		t.Fatalf("GetAPIKeyByHash after upgrade: %v", err)
	}
	wantKey := store.APIKey{ID: "key-old", TeamID: store.DefaultTeamID, Name: "ops", Hash: "h-old", Mask: "e2b_…", CreatedAt: t0, LastUsed: t0}
	if !reflect.DeepEqual(*key, wantKey) {
		t.Errorf("API key after upgrade\n got: %+v\nwant: %+v", *key, wantKey)
	}

	sb, err := s.GetSandbox(ctx, "sb-old")
	if err != nil {
		t.Fatalf("GetSandbox after upgrade: %v", err)
	}
	if sb.TeamID != store.DefaultTeamID || !sb.PausedAt.IsZero() || sb.PausedAt != (time.Time{}) ||
		sb.State != store.StatePaused || !sb.StartedAt.Equal(t0) || sb.Metadata["owner"] != "alice" {
		t.Errorf("sandbox after upgrade = %+v", sb)
	}
	listed, _, err := s.ListSandboxes(ctx, store.SandboxFilter{TeamID: store.DefaultTeamID})
	if err != nil || len(listed) != 1 || listed[0].ID != "sb-old" {
		t.Errorf("ListSandboxes(default team) after upgrade = %v, %v", listed, err)
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
