package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestInstall(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "bin")
	data := []byte("#!/bin/sh\necho agent\n")
	path, err := install(dir, data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(filepath.Base(path), "envd-") || filepath.Dir(path) != dir {
		t.Errorf("installed at %s", path)
	}
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("content %q, %v", got, err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v, want 0755", fi.Mode().Perm())
	}
	// Again: the same path, the file left alone (it may be bind-mounted).
	before, _ := os.Stat(path)
	again, err := install(dir, data)
	if err != nil || again != path {
		t.Fatalf("second install = %s, %v; want %s", again, err, path)
	}
	if after, _ := os.Stat(path); !os.SameFile(before, after) {
		t.Error("second install replaced the file")
	}
	// Other content: another name; the first file stays for its users.
	other, err := install(dir, []byte("other"))
	if err != nil || other == path {
		t.Fatalf("install of other content = %s, %v", other, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("first agent removed: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".envd-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}
