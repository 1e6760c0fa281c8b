package sandbox_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func TestCommandsExec(t *testing.T) {
	sbx := newSandbox(t, sandbox.CreateOptions{})
	ctx := ctxT(t, time.Minute)
	// No shell: metacharacters reach the program verbatim.
	res, err := sbx.Commands.Exec(ctx, []string{"printf", "%s|", "$HOME; echo injected", "*"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Stdout != "$HOME; echo injected|*|" {
		t.Fatalf("stdout = %q", res.Stdout)
	}
	res, err = sbx.Commands.Exec(ctx, []string{"pwd"}, &sandbox.RunOptions{Cwd: "/tmp", User: "root"})
	if err != nil || res.Stdout != "/tmp\n" {
		t.Fatalf("pwd in /tmp: %+v, %v", res, err)
	}
	var ee *sandbox.CommandExitError
	if _, err := sbx.Commands.Exec(ctx, []string{"false"}, nil); !errors.As(err, &ee) || ee.ExitCode != 1 {
		t.Fatalf("false: err = %v, want exit 1", err)
	}
	if _, err := sbx.Commands.Exec(ctx, nil, nil); !errors.Is(err, sandbox.ErrInvalidArgument) {
		t.Fatalf("empty argv: err = %v, want ErrInvalidArgument", err)
	}
}

func TestCreateTimingLogsMetrics(t *testing.T) {
	c := testClient()
	sbx := newSandbox(t, sandbox.CreateOptions{})
	ctx := ctxT(t, time.Minute)
	if len(sbx.CreateTiming) == 0 {
		t.Error("Create did not report the server's phase timings")
	}
	entries, err := c.Logs(ctx, sbx.ID, sandbox.LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 || !slices.ContainsFunc(entries, func(e sandbox.LogEntry) bool { return strings.Contains(e.Message, "creat") }) {
		t.Errorf("log has no create entry: %+v", entries)
	}
	if later, err := c.Logs(ctx, sbx.ID, sandbox.LogOptions{Since: time.Now().Add(time.Hour)}); err != nil || len(later) != 0 {
		t.Errorf("log since the future = %+v, %v; want none", later, err)
	}
	ms, err := c.Metrics(ctx, sbx.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 || ms[0].MemTotal <= 0 || ms[0].CpuCount <= 0 {
		t.Errorf("metrics = %+v", ms)
	}
	if _, err := c.Logs(ctx, "nosuchsandbox", sandbox.LogOptions{}); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("logs of a missing sandbox: err = %v, want ErrNotFound", err)
	}
	if _, err := c.Metrics(ctx, "nosuchsandbox"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("metrics of a missing sandbox: err = %v, want ErrNotFound", err)
	}
}

func TestTemplates(t *testing.T) {
	c := testClient()
	ctx := ctxT(t, time.Minute)
	ts, err := c.Templates(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ts, func(tp sandbox.Template) bool { return slices.Contains(tp.Aliases, "base") })
	if i < 0 {
		t.Fatalf("no base template in %+v", ts)
	}
	if ts[i].BuildStatus != "ready" || ts[i].CpuCount <= 0 || ts[i].MemoryMB <= 0 {
		t.Errorf("base = %+v", ts[i])
	}
	// Built-in templates belong to no team: deleting one is refused.
	if err := c.DeleteTemplate(ctx, "base"); err == nil {
		t.Error("deleting the built-in base template succeeded")
	}
	if err := c.DeleteTemplate(ctx, "no-such-template"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("deleting a missing template: err = %v, want ErrNotFound", err)
	}
}
