package bench

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func TestTemplateState(t *testing.T) {
	tpls := []sandbox.Template{
		{TemplateID: "b1", Aliases: []string{"base"}, BuildStatus: "ready"},
		{TemplateID: "c1", Aliases: []string{"code-interpreter-v1"}, BuildStatus: "building"},
		{TemplateID: "old", Aliases: []string{"legacy"}},
	}
	tests := []struct {
		name   string
		ok     bool
		reason string
	}{
		{"base", true, ""},
		{"b1", true, ""},
		{"legacy", true, ""}, // no status reported: listed means usable
		{"code-interpreter-v1", false, "template code-interpreter-v1 is building, not ready"},
		{"missing", false, "the server has no template missing"},
	}
	for _, tc := range tests {
		ok, reason := templateState(tpls, tc.name)
		if ok != tc.ok || reason != tc.reason {
			t.Errorf("templateState(%q) = %v, %q; want %v, %q", tc.name, ok, reason, tc.ok, tc.reason)
		}
	}
}

func TestReportNotes(t *testing.T) {
	rep := &Report{Runtimes: []RuntimeReport{{Runtime: "runc", Notes: []string{"code interpreter scenarios skipped (--no-code)"}}}}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "note: code interpreter scenarios skipped (--no-code)") {
		t.Errorf("table lacks the note:\n%s", b.String())
	}
}

// TestHostInterpreterBaselines runs the host interpreter baselines for
// real, with an airlock binary built from this tree; the host needs
// python3-ipykernel and node (scripts/test-deps.sh installs them).
func TestHostInterpreterBaselines(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "airlock")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/airlock").CombinedOutput(); err != nil {
		t.Fatalf("build airlock: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	warm, err := hostInterpreterRoundTrips(ctx, bin, 1, 3)
	if err != nil {
		t.Fatalf("host interpreter round-trips (is python3-ipykernel installed?): %v", err)
	}
	cold, err := hostInterpreterColdStarts(ctx, bin, 0, 1)
	if err != nil {
		t.Fatalf("host interpreter cold start: %v", err)
	}
	if len(warm) != 3 || len(cold) != 1 {
		t.Fatalf("got %d warm and %d cold samples, want 3 and 1", len(warm), len(cold))
	}
	if Summarize(cold).P50 <= Summarize(warm).P50 {
		t.Errorf("cold start %v not slower than a warm round-trip %v", cold[0], Summarize(warm).P50)
	}
}
