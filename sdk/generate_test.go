package sdk_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestGeneratedMatchesSpec regenerates each package of wire types from its
// description in spec/ and fails when the checked-in code is not what the
// description produces: edit the spec, then run `make generate`.
func TestGeneratedMatchesSpec(t *testing.T) {
	for _, pkg := range []struct{ dir, spec string }{
		{"controlapi", "../spec/control-api.yaml"},
		{"envdapi", "../spec/envd-http.yaml"},
	} {
		t.Run(pkg.dir, func(t *testing.T) {
			tmp := t.TempDir()
			cfg, err := os.ReadFile(filepath.Join(pkg.dir, "oapi.yaml"))
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(tmp, "types.gen.go")
			cfg = bytes.Replace(cfg, []byte("output: types.gen.go"), []byte("output: "+out), 1)
			if err := os.WriteFile(filepath.Join(tmp, "oapi.yaml"), cfg, 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("go", "tool", "oapi-codegen", "-config", filepath.Join(tmp, "oapi.yaml"), pkg.spec)
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("oapi-codegen: %v\n%s", err, b)
			}
			want, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(pkg.dir, "types.gen.go"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("sdk/%s/types.gen.go is stale: run `make generate` after editing %s", pkg.dir, pkg.spec)
			}
		})
	}
}
