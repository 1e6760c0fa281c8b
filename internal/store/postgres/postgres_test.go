package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/storetest"

	"github.com/airlock-sandbox/airlock/internal/store/postgres/pgtest"
)

// srv is shared by the package's tests; each test gets its own database.
var srv *pgtest.Server

func TestMain(m *testing.M) {
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	var err error
	if srv, err = pgtest.Start(); err != nil {
		// Fail, not skip: these tests are the only check of this package.
		fmt.Fprintf(os.Stderr, "FAIL: cannot start a throwaway PostgreSQL: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := srv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "stopping PostgreSQL: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

var dbSeq atomic.Int64

// newDB creates an empty database, dropped when the test ends.
func newDB(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("airlock_test_%d", dbSeq.Add(1))
	if err := srv.Admin(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Admin(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database: %v", err)
		}
	})
	return srv.DSN(name)
}

func mustOpen(t *testing.T, dsn string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dsn)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return mustOpen(t, newDB(t)) })
}

func TestReopenKeepsData(t *testing.T) {
	ctx := t.Context()
	dsn := newDB(t)
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 123456000, time.UTC)
	s := mustOpen(t, dsn)
	if err := s.CreateSandbox(ctx, &store.Sandbox{ID: "sb-1", StartedAt: t0, Metadata: map[string]string{"k": "v"}}); err != nil {
		t.Fatalf("CreateSandbox: %v", err)
	}
	s.Close()

	s = mustOpen(t, dsn) // migrations must be a no-op the second time
	defer s.Close()
	got, err := s.GetSandbox(ctx, "sb-1")
	if err != nil || !got.StartedAt.Equal(t0) || got.Metadata["k"] != "v" {
		t.Fatalf("GetSandbox after reopen = %+v, %v", got, err)
	}
	var versions int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != len(migrations) {
		t.Errorf("schema_migrations has %d rows, want %d", versions, len(migrations))
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	ctx := t.Context()
	dsn := newDB(t)
	mustOpen(t, dsn).Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	_, err = conn.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES (99, 'future')`)
	conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, dsn); !errors.Is(err, ErrSchemaTooNew) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open of a newer schema: err = %v, want ErrSchemaTooNew", err)
	}
}

// Hosts starting together must not trip over each other's migrations.
func TestConcurrentOpen(t *testing.T) {
	dsn := newDB(t)
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			s, err := Open(t.Context(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("Open: %v", err)
		}
	}
}
