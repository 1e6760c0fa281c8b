package sandbox_test

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// newInterpreter creates a code-interpreter-v1 sandbox for the test.
func newInterpreter(t *testing.T) *sandbox.Sandbox {
	t.Helper()
	return newSandbox(t, sandbox.CreateOptions{
		Template: sandbox.CodeInterpreterTemplate,
		EnvVars:  map[string]string{"SBX_LEVEL": "from-create"},
	})
}

func runCode(t *testing.T, sbx *sandbox.Sandbox, code string, o *sandbox.RunCodeOptions) *sandbox.Execution {
	t.Helper()
	exec, err := sbx.RunCode(ctxT(t, 2*time.Minute), code, o)
	if err != nil {
		t.Fatalf("RunCode(%q): %v", code, err)
	}
	if exec.Error != nil {
		t.Fatalf("RunCode(%q) raised %s: %s\n%s", code, exec.Error.Name, exec.Error.Value, exec.Error.Traceback)
	}
	return exec
}

func TestRunCode(t *testing.T) {
	sbx := newInterpreter(t)

	t.Run("state across cells", func(t *testing.T) {
		runCode(t, sbx, "x = 41", nil)
		exec := runCode(t, sbx, "x + 1", nil)
		if exec.Text() != "42" || exec.ExecutionCount < 2 {
			t.Fatalf("Text() = %q, count %d; want 42 and >= 2", exec.Text(), exec.ExecutionCount)
		}
	})

	t.Run("stdout callbacks in order", func(t *testing.T) {
		var got []string
		exec := runCode(t, sbx, "import sys\nfor i in range(5):\n    print(i, flush=True)\nprint('oops', file=sys.stderr)", &sandbox.RunCodeOptions{
			OnStdout: func(m sandbox.OutputMessage) {
				if m.Error || m.Timestamp.IsZero() {
					t.Errorf("stdout message %+v", m)
				}
				got = append(got, m.Line)
			},
		})
		if s := strings.Join(got, ""); s != "0\n1\n2\n3\n4\n" {
			t.Fatalf("OnStdout saw %q", s)
		}
		if !slices.Equal(got, exec.Logs.Stdout) || strings.Join(exec.Logs.Stderr, "") != "oops\n" {
			t.Fatalf("logs = %+v, callbacks %q", exec.Logs, got)
		}
	})

	t.Run("exception is data", func(t *testing.T) {
		var cb *sandbox.ExecutionError
		exec, err := sbx.RunCode(ctxT(t, time.Minute), "1/0", &sandbox.RunCodeOptions{
			OnError: func(e sandbox.ExecutionError) { cb = &e },
		})
		if err != nil {
			t.Fatalf("RunCode: %v (want a nil Go error)", err)
		}
		e := exec.Error
		if e == nil || e.Name != "ZeroDivisionError" || !strings.Contains(e.Value, "division by zero") ||
			!strings.Contains(e.Traceback, "ZeroDivisionError") {
			t.Fatalf("Error = %+v", e)
		}
		if cb == nil || *cb != *e {
			t.Fatalf("OnError got %+v, want %+v", cb, e)
		}
	})

	t.Run("matplotlib line chart", func(t *testing.T) {
		code := "import matplotlib.pyplot as plt\n" +
			"plt.figure()\nplt.plot([1, 2, 3], [1, 4, 9], label='squares')\n" +
			"plt.title('Squares')\nplt.xlabel('n')\nplt.ylabel('n^2')\nplt.show()"
		exec := runCode(t, sbx, code, nil)
		var chart *sandbox.Result
		for i := range exec.Results {
			if exec.Results[i].Chart != nil {
				chart = &exec.Results[i]
			}
		}
		if chart == nil {
			t.Fatalf("no chart among %d results", len(exec.Results))
		}
		png, err := base64.StdEncoding.DecodeString(chart.PNG)
		if err != nil || len(png) < 8 || string(png[1:4]) != "PNG" {
			t.Fatalf("PNG: %d bytes, err %v", len(png), err)
		}
		c := chart.Chart
		if c.Type != sandbox.ChartLine || c.Title != "Squares" || c.XLabel != "n" || len(c.Elements) != 1 {
			t.Fatalf("chart = %+v", c)
		}
		s, ok := c.Elements[0].(sandbox.PointSeries)
		if !ok || s.Label != "squares" || len(s.Points) != 3 || s.Points[2].X != 3.0 || s.Points[2].Y != 9.0 {
			t.Fatalf("series = %#v", c.Elements[0])
		}
	})

	t.Run("javascript", func(t *testing.T) {
		if got := runCode(t, sbx, "1+1", &sandbox.RunCodeOptions{Language: "js"}).Text(); got != "2" {
			t.Fatalf("js 1+1 = %q", got)
		}
	})

	t.Run("env vars", func(t *testing.T) {
		get := "import os\nstr(os.environ.get('PER_EXEC'))"
		if got := runCode(t, sbx, get, &sandbox.RunCodeOptions{Envs: map[string]string{"PER_EXEC": "only-now"}}).Text(); got != "only-now" {
			t.Fatalf("per-execution env = %q", got)
		}
		if got := runCode(t, sbx, get, nil).Text(); got != "None" {
			t.Fatalf("per-execution env leaked into the next execution: %q", got)
		}
		if got := runCode(t, sbx, "os.environ.get('SBX_LEVEL')", nil).Text(); got != "from-create" {
			t.Fatalf("sandbox-level env = %q", got)
		}
	})

	t.Run("timeout interrupts", func(t *testing.T) {
		c, err := sbx.CreateCodeContext(ctxT(t, time.Minute), nil)
		if err != nil {
			t.Fatal(err)
		}
		runCode(t, sbx, "y = 1", &sandbox.RunCodeOptions{Context: c})
		start := time.Now()
		_, err = sbx.RunCode(ctxT(t, time.Minute), "while True: pass", &sandbox.RunCodeOptions{Context: c, Timeout: 2 * time.Second})
		if !errors.Is(err, sandbox.ErrTimeout) {
			t.Fatalf("err = %v, want ErrTimeout", err)
		}
		if d := time.Since(start); d > 15*time.Second {
			t.Fatalf("timed out after %v, want ~2s", d)
		}
		// The kernel was interrupted: the context runs again, state intact.
		if got := runCode(t, sbx, "y + 1", &sandbox.RunCodeOptions{Context: c, Timeout: 30 * time.Second}).Text(); got != "2" {
			t.Fatalf("after timeout: %q", got)
		}
	})

	t.Run("language and context conflict", func(t *testing.T) {
		_, err := sbx.RunCode(ctxT(t, time.Minute), "1", &sandbox.RunCodeOptions{Language: "python", Context: &sandbox.CodeContext{ID: "x"}})
		if !errors.Is(err, sandbox.ErrInvalidArgument) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCodeContexts(t *testing.T) {
	sbx := newInterpreter(t)
	ctx := ctxT(t, 5*time.Minute)

	c, err := sbx.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Cwd: "/tmp"})
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == "" || c.Language != sandbox.LanguagePython || c.Cwd != "/tmp" {
		t.Fatalf("created %+v", c)
	}
	if got := runCode(t, sbx, "import os\nos.getcwd()", &sandbox.RunCodeOptions{Context: c}).Text(); got != "/tmp" {
		t.Fatalf("cwd = %q", got)
	}

	js, err := sbx.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Language: "js"})
	if err != nil {
		t.Fatal(err)
	}
	if js.Language != sandbox.LanguageJavaScript {
		t.Fatalf("js context language = %q, want javascript", js.Language)
	}
	if got := runCode(t, sbx, "1+1", &sandbox.RunCodeOptions{Context: js}).Text(); got != "2" {
		t.Fatalf("js context 1+1 = %q", got)
	}

	ids := func() []string {
		t.Helper()
		cs, err := sbx.ListCodeContexts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	if got := ids(); !slices.Contains(got, c.ID) || !slices.Contains(got, js.ID) || len(got) < 4 {
		t.Fatalf("list = %v, want both new contexts and the two defaults", got)
	}

	// Restart clears the state.
	runCode(t, sbx, "z = 5", &sandbox.RunCodeOptions{Context: c})
	if err := sbx.RestartCodeContext(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	exec, err := sbx.RunCode(ctx, "z", &sandbox.RunCodeOptions{Context: c})
	if err != nil || exec.Error == nil || exec.Error.Name != "NameError" {
		t.Fatalf("after restart: %+v, %v; want NameError", exec, err)
	}

	if err := sbx.RemoveCodeContext(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if slices.Contains(ids(), c.ID) {
		t.Fatal("removed context still listed")
	}
	if _, err := sbx.RunCode(ctx, "1", &sandbox.RunCodeOptions{Context: c}); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("RunCode in removed context: %v, want ErrNotFound", err)
	}
	for _, f := range []func() error{
		func() error { return sbx.RemoveCodeContext(ctx, c.ID) },
		func() error { return sbx.RestartCodeContext(ctx, c.ID) },
	} {
		if err := f(); !errors.Is(err, sandbox.ErrNotFound) {
			t.Fatalf("unknown context: %v, want ErrNotFound", err)
		}
	}
}
