package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/postgres"
	"github.com/airlock-sandbox/airlock/internal/store/postgres/pgtest"
)

// `airlock serve --store postgres://…` keeps everything in a real
// PostgreSQL server (started here): keys, sandboxes, their state across a
// restart of the server, and the kill.
func TestPostgresStore(t *testing.T) {
	pg, err := pgtest.Start()
	if err != nil {
		t.Fatalf("start PostgreSQL: %v", err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("stop PostgreSQL: %v", err)
		}
	})
	ctx := context.Background()
	if err := pg.Admin(ctx, "CREATE DATABASE airlock_it"); err != nil {
		t.Fatal(err)
	}
	url := pg.URL("airlock_it")

	s := startServer(t, runtimeRunc, "", "--store", url)
	sb := s.create(t, map[string]any{"timeout": 120})
	if got := sb.run(t, "echo in-pg", 30*time.Second).stdout; got != "in-pg\n" {
		t.Fatalf("command: %q", got)
	}
	s.stop()

	s2 := startServer(t, runtimeRunc, s.addr, "--store", url)
	sb.s = s2
	if code, b := s2.api("GET", "/sandboxes/"+sb.ID, nil); code != http.StatusOK {
		t.Fatalf("after a restart on the same store: %d %s", code, b)
	}
	if got := sb.run(t, "echo adopted", 30*time.Second).stdout; got != "adopted\n" {
		t.Fatalf("command after restart: %q", got)
	}
	sb.kill(t)

	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec, err := st.GetSandbox(ctx, sb.ID)
	if err != nil || rec.State != store.StateKilled || rec.TeamID != store.DefaultTeamID {
		t.Fatalf("record in PostgreSQL: %+v, %v", rec, err)
	}
	keys, err := st.ListAPIKeys(ctx)
	if err != nil || len(keys) < 2 {
		t.Fatalf("keys in PostgreSQL: %d, %v", len(keys), err)
	}
}
