// Package roottest decides, for tests that need root (mounts, namespaces,
// cgroups, other users), whether they run: with AIRLOCK_TEST_ROOT=1 (as
// scripts/test.sh sets) they must run and fail without root; without it a
// non-root run skips them, saying why, so `go test ./...` is green anywhere.
package roottest

import (
	"os"
	"testing"
)

// Env is the variable that makes root-only tests mandatory.
const Env = "AIRLOCK_TEST_ROOT"

// Require skips or fails t unless it runs as root; why says what needs root.
func Require(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv(Env) == "1" {
		t.Fatalf("%s needs root, and %s=1 makes root-only tests mandatory", why, Env)
	}
	t.Skipf("%s needs root; run as root (scripts/test.sh sets %s=1, so CI never skips this)", why, Env)
}
