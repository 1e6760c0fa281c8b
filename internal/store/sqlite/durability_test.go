package sqlite

import (
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)

func mustOpen(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

// rawQuery reads one value straight from the file, bypassing the Store.
func rawQuery(t *testing.T, path, q string, dest any) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatalf("sql.Open: %v", err)
	}
	defer db.Close()
	if err := db.QueryRow(q).Scan(dest); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "airlock.db")
	s := mustOpen(t, path)
	sb := &store.Sandbox{ID: "sb-1", State: store.StateRunning, StartedAt: t0, Metadata: map[string]string{"k": "v"}}
	steps := []error{
		s.CreateSandbox(ctx, sb),
		s.PutTemplate(ctx, &store.Template{ID: "tmpl-1", Aliases: []string{"base"}, CreatedAt: t0}),
		s.CreateAPIKey(ctx, &store.APIKey{ID: "key-1", Hash: "h1", CreatedAt: t0}),
		s.AppendEvent(ctx, store.Event{SandboxID: "sb-1", Time: t0, Level: "info", Message: "started"}),
	}
	if err := errors.Join(steps...); err != nil {
		t.Fatalf("writing: %v", err)
	}
	if _, err := s.UpdateSandbox(ctx, "sb-1", func(sb *store.Sandbox) error {
		sb.State = store.StatePaused
		return nil
	}); err != nil {
		t.Fatalf("UpdateSandbox: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = mustOpen(t, path)
	defer s.Close()
	got, err := s.GetSandbox(ctx, "sb-1")
	if err != nil {
		t.Fatalf("GetSandbox after reopen: %v", err)
	}
	if got.State != store.StatePaused || !got.StartedAt.Equal(t0) || got.Metadata["k"] != "v" {
		t.Errorf("sandbox after reopen = %+v", got)
	}
	if _, err := s.GetTemplate(ctx, "base"); err != nil {
		t.Errorf("GetTemplate after reopen: %v", err)
	}
	if _, err := s.GetAPIKeyByHash(ctx, "h1"); err != nil {
		t.Errorf("GetAPIKeyByHash after reopen: %v", err)
	}
	if evs, err := s.ListEvents(ctx, "sb-1", time.Time{}, 0); err != nil || len(evs) != 1 {
		t.Errorf("ListEvents after reopen = %v, %v", evs, err)
	}

	var mode string
	rawQuery(t, path, "PRAGMA journal_mode", &mode)
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestMigratesOldSchema(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "airlock.db")

	// A database as the first release left it: only migration 1.
	old, err := open(ctx, path, migrations[:1])
	if err != nil {
		t.Fatalf("open at version 1: %v", err)
	}
	// Through SQL of that version: the Store's own statements name
	// columns that later migrations add.
	insertPreTeamsSandbox(t, old, &store.Sandbox{ID: "sb-old", State: store.StateRunning, StartedAt: t0})
	old.Close()
	var v int
	rawQuery(t, path, "PRAGMA user_version", &v)
	if v != 1 {
		t.Fatalf("user_version = %d before upgrade, want 1", v)
	}

	s := mustOpen(t, path)
	defer s.Close()
	rawQuery(t, path, "PRAGMA user_version", &v)
	if v != len(migrations) {
		t.Errorf("user_version = %d after upgrade, want %d", v, len(migrations))
	}
	var n int
	rawQuery(t, path, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'sandboxes_by_start'", &n)
	if n != 1 {
		t.Error("index from migration 2 is missing")
	}
	got, err := s.GetSandbox(ctx, "sb-old")
	if err != nil || !got.StartedAt.Equal(t0) {
		t.Fatalf("GetSandbox after upgrade = %+v, %v", got, err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "airlock.db")
	mustOpen(t, path).Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if s, err := Open(path); !errors.Is(err, ErrSchemaTooNew) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

func TestMigrationsAreNumbered(t *testing.T) {
	for i, m := range migrations {
		if m.version != i+1 {
			t.Errorf("migration %s has version %d, want %d", m.name, m.version, i+1)
		}
	}
	if len(migrations) < 2 {
		t.Errorf("%d migrations; the upgrade test needs at least 2", len(migrations))
	}
}

// Two Stores on one file stand in for two processes: the busy timeout and
// BEGIN IMMEDIATE must make their writers wait for each other, not fail.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "airlock.db")
	a, b := mustOpen(t, path), mustOpen(t, path)
	defer a.Close()
	defer b.Close()
	if err := a.CreateSandbox(ctx, &store.Sandbox{ID: "sb-1", StartedAt: t0}); err != nil {
		t.Fatal(err)
	}
	const perStore = 25
	var wg sync.WaitGroup
	errs := make(chan error, 2*perStore)
	for _, s := range []*Store{a, b} {
		for range perStore {
			wg.Go(func() {
				_, err := s.UpdateSandbox(ctx, "sb-1", func(sb *store.Sandbox) error {
					sb.MemoryMB++
					return nil
				})
				errs <- err
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpdateSandbox: %v", err)
		}
	}
	got, err := b.GetSandbox(ctx, "sb-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.MemoryMB != 2*perStore {
		t.Errorf("MemoryMB = %d, want %d", got.MemoryMB, 2*perStore)
	}
}

func TestOpenRejectsNonFile(t *testing.T) {
	for _, p := range []string{"", ":memory:", "x.db?mode=memory"} {
		if s, err := Open(p); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded; want an error", p)
		}
	}
}
