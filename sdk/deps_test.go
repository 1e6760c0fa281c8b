// Package sdk_test guards the public SDK's dependencies.
package sdk_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoInternalImports fails if any SDK package depends, even
// indirectly, on the server's internal packages.
func TestNoInternalImports(t *testing.T) {
	const internal = "github.com/airlock-sandbox/airlock/internal/"
	out, err := exec.Command("go", "list", "-deps", "-test", "github.com/airlock-sandbox/airlock/sdk/...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) == 0 {
		t.Fatal("go list returned no packages")
	}
	var found bool
	for _, p := range pkgs {
		if strings.HasPrefix(p, internal) || p == strings.TrimSuffix(internal, "/") {
			t.Errorf("SDK depends on %s", p)
		}
		found = found || p == "github.com/airlock-sandbox/airlock/sdk/sandbox"
	}
	if !found {
		t.Fatal("sdk/sandbox missing from go list output")
	}
}
