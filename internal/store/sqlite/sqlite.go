// Package sqlite implements store.Store on an embedded SQLite database
// (modernc.org/sqlite, pure Go).
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/airlock-sandbox/airlock/internal/store"
)

// busyTimeoutMS bounds how long a connection waits for another process's
// lock before failing with SQLITE_BUSY.
const busyTimeoutMS = 10000

// readConns is the size of the read pool; WAL lets readers run alongside the
// single writer.
const readConns = 4

// Store is a store.Store backed by one SQLite file.
//
// Writes go through a pool of exactly one connection whose transactions
// start with BEGIN IMMEDIATE, so writers queue in Go instead of failing
// with SQLITE_BUSY; reads use a separate pool of read-only connections.
type Store struct {
	write *sql.DB
	read  *sql.DB
}

// Open opens (creating if needed) the database at path and brings its
// schema up to date. path must name a file: the two pools must share it.
func Open(path string) (*Store, error) {
	return open(context.Background(), path, migrations)
}

func open(ctx context.Context, path string, ms []migration) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") || strings.HasPrefix(path, ":memory:") {
		return nil, fmt.Errorf("sqlite: open %q: need a plain file path", path)
	}
	write, err := sql.Open("sqlite", dsn(path, false))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := migrate(ctx, write, ms); err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}

	read, err := sql.Open("sqlite", dsn(path, true))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	return &Store{write: write, read: read}, nil
}

// dsn builds the connection string; every pragma is set on each new
// connection of the pool.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS))
	q.Add("_pragma", "foreign_keys(1)")
	// FULL: a committed change survives power loss, not just a crash.
	q.Add("_pragma", "synchronous(FULL)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// journal_mode is stored in the file; setting it once on the
		// writer is enough for every connection.
		q.Add("_pragma", "journal_mode(WAL)")
		q.Set("_txlock", "immediate")
	}
	return path + "?" + q.Encode()
}

// Close closes both pools.
func (s *Store) Close() error {
	return errors.Join(s.read.Close(), s.write.Close())
}

var _ store.Store = (*Store)(nil)
