package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenStore(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	for _, spec := range []string{"", "sqlite:" + filepath.Join(dir, "other.db"), "sqlite://" + filepath.Join(dir, "third.db")} {
		st, err := openStore(ctx, spec, dir)
		if err != nil {
			t.Fatalf("openStore(%q): %v", spec, err)
		}
		st.Close()
	}
	for _, name := range []string{"airlock.db", "other.db", "third.db"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s was not created: %v", name, err)
		}
	}
	for _, bad := range []string{"mysql://x", "sqlite:", "/var/lib/x.db"} {
		if _, err := openStore(ctx, bad, dir); err == nil {
			t.Errorf("openStore(%q) accepted", bad)
		}
	}
}
