package controlapi

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedMatchesSpec regenerates the types from spec/control-api.yaml
// and fails when types.gen.go is not what the description produces: edit
// the spec, then run `go generate ./sdk/controlapi`.
func TestGeneratedMatchesSpec(t *testing.T) {
	dir := t.TempDir()
	cfg, err := os.ReadFile("oapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "types.gen.go")
	cfg = bytes.Replace(cfg, []byte("output: types.gen.go"), []byte("output: "+out), 1)
	if err := os.WriteFile(filepath.Join(dir, "oapi.yaml"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "tool", "oapi-codegen", "-config", filepath.Join(dir, "oapi.yaml"), "../../spec/control-api.yaml")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, b)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("types.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("types.gen.go is stale: run `go generate ./sdk/controlapi` after editing spec/control-api.yaml")
	}
}
