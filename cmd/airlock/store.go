package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/postgres"
	"github.com/airlock-sandbox/airlock/internal/store/sqlite"
)

// storeFlagHelp documents --store for every command that opens the store.
const storeFlagHelp = `the store: "" for SQLite in the data dir, sqlite:PATH, or postgres://… (env AIRLOCK_STORE)`

// openStore opens the store a --store value names.
func openStore(ctx context.Context, spec, dataDir string) (store.Store, error) {
	switch {
	case spec == "":
		return sqlite.Open(filepath.Join(dataDir, "airlock.db"))
	case strings.HasPrefix(spec, "sqlite:"):
		p := strings.TrimPrefix(strings.TrimPrefix(spec, "sqlite:"), "//")
		if p == "" {
			return nil, fmt.Errorf("--store %q names no file", spec)
		}
		return sqlite.Open(p)
	case strings.HasPrefix(spec, "postgres://"), strings.HasPrefix(spec, "postgresql://"):
		return postgres.Open(ctx, spec)
	}
	return nil, fmt.Errorf("--store %q: want sqlite:PATH or postgres://…", spec)
}
