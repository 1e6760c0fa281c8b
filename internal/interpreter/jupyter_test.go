package interpreter

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// jCapture records an execution's outputs (this file's own Emitter so it does
// not depend on other kernels' test helpers).
type jCapture struct {
	mu      sync.Mutex
	count   int
	stdout  strings.Builder
	stderr  strings.Builder
	results []Result
	errs    []ExecError
}

func (c *jCapture) ExecutionCount(n int) { c.mu.Lock(); c.count = n; c.mu.Unlock() }
func (c *jCapture) Stdout(s string, _ time.Time) {
	c.mu.Lock()
	c.stdout.WriteString(s)
	c.mu.Unlock()
}
func (c *jCapture) Stderr(s string, _ time.Time) {
	c.mu.Lock()
	c.stderr.WriteString(s)
	c.mu.Unlock()
}
func (c *jCapture) Result(r Result)   { c.mu.Lock(); c.results = append(c.results, r); c.mu.Unlock() }
func (c *jCapture) Error(e ExecError) { c.mu.Lock(); c.errs = append(c.errs, e); c.mu.Unlock() }

func (c *jCapture) main() (Result, bool) {
	for _, r := range c.results {
		if r.IsMainResult {
			return r, true
		}
	}
	return Result{}, false
}

// requirePython fails (never skips) when the template's Python stack is
// missing on the test host.
func requirePython(t *testing.T) {
	t.Helper()
	out, err := exec.Command("/usr/bin/python3", "-c", "import ipykernel, numpy, pandas, matplotlib").CombinedOutput()
	if err != nil {
		t.Fatalf("/usr/bin/python3 with ipykernel, numpy, pandas and matplotlib is required "+
			"(apt-get install -y python3-ipykernel python3-numpy python3-pandas python3-matplotlib): %v\n%s", err, out)
	}
}

func requireR(t *testing.T) {
	t.Helper()
	out, err := exec.Command("R", "--slave", "-e", "library(IRkernel)").CombinedOutput()
	if err != nil {
		t.Fatalf("R with IRkernel is required (apt-get install -y r-cran-irkernel): %v\n%s", err, out)
	}
}

func jStartKernel(t *testing.T, factory Factory, env map[string]string) Kernel {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	k, err := factory(ctx, KernelOptions{Cwd: t.TempDir(), Env: env})
	if err != nil {
		t.Fatalf("start kernel: %v", err)
	}
	t.Logf("kernel %s cold start: %v", k.Language(), time.Since(start))
	t.Cleanup(func() { k.Close() })
	return k
}

func jrun(t *testing.T, k Kernel, code string, env map[string]string) *jCapture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := &jCapture{}
	if err := k.Execute(ctx, code, env, c); err != nil {
		t.Fatalf("Execute(%q): %v", code, err)
	}
	return c
}

func jWantMain(t *testing.T, c *jCapture, text string) {
	t.Helper()
	r, ok := c.main()
	if !ok {
		t.Fatalf("no main result; results %+v, errors %+v, stderr %q", c.results, c.errs, c.stderr.String())
	}
	if r.Text != text {
		t.Fatalf("main result text = %q, want %q", r.Text, text)
	}
}

func TestJupyterPython(t *testing.T) {
	requirePython(t)
	k := jStartKernel(t, NewPythonKernel, map[string]string{"FROM_OPTS": "opt"})

	start := time.Now()
	c := jrun(t, k, "1 + 1", nil)
	t.Logf("1+1 round trip: %v", time.Since(start))
	jWantMain(t, c, "2")
	if c.count != 1 {
		t.Errorf("execution count = %d, want 1", c.count)
	}

	t.Run("state and stdout", func(t *testing.T) {
		c := jrun(t, k, "x = 1\nprint(x)\nx + 1", nil)
		if got := c.stdout.String(); got != "1\n" {
			t.Errorf("stdout = %q", got)
		}
		jWantMain(t, c, "2")
		jWantMain(t, jrun(t, k, "x * 10", nil), "10")
	})
	t.Run("stderr", func(t *testing.T) {
		c := jrun(t, k, "import sys; print('oops', file=sys.stderr)", nil)
		if got := c.stderr.String(); got != "oops\n" {
			t.Errorf("stderr = %q", got)
		}
	})
	t.Run("error", func(t *testing.T) {
		c := jrun(t, k, "1/0", nil)
		if len(c.errs) != 1 {
			t.Fatalf("errors = %+v, want one", c.errs)
		}
		e := c.errs[0]
		if e.Name != "ZeroDivisionError" || e.Value != "division by zero" || !strings.Contains(e.Traceback, "ZeroDivisionError") {
			t.Errorf("error = %+v", e)
		}
	})
	t.Run("several displays", func(t *testing.T) {
		c := jrun(t, k, "from IPython.display import display, HTML\ndisplay(1)\ndisplay(HTML('<b>x</b>'))\n'last'", nil)
		if len(c.results) != 3 {
			t.Fatalf("results = %+v, want 3", c.results)
		}
		if r := c.results[0]; r.IsMainResult || r.Text != "1" {
			t.Errorf("first = %+v", r)
		}
		if r := c.results[1]; r.IsMainResult || r.HTML != "<b>x</b>" {
			t.Errorf("second = %+v", r)
		}
		if r := c.results[2]; !r.IsMainResult || r.Text != "'last'" {
			t.Errorf("third = %+v", r)
		}
	})
	t.Run("env", func(t *testing.T) {
		jWantMain(t, jrun(t, k, "import os; os.environ['FROM_OPTS']", nil), "'opt'")
		c := jrun(t, k, "os.environ.get('ONCE'), os.environ['FROM_OPTS']", map[string]string{"ONCE": "1", "FROM_OPTS": "x'\"\n"})
		jWantMain(t, c, `('1', 'x\'"\n')`)
		jWantMain(t, jrun(t, k, "os.environ.get('ONCE'), os.environ['FROM_OPTS']", nil), "(None, 'opt')")
		if err := k.(envSetter).SetEnv(context.Background(), map[string]string{"SANDBOX": "s"}); err != nil {
			t.Fatal(err)
		}
		jWantMain(t, jrun(t, k, "os.environ['SANDBOX']", nil), "'s'")
	})
	t.Run("cwd", func(t *testing.T) {
		c := jrun(t, k, "import os; os.getcwd()", nil)
		r, _ := c.main()
		if !strings.Contains(r.Text, "Test") {
			t.Errorf("cwd = %s, want the test's temp dir", r.Text)
		}
	})
}

func TestJupyterInterrupt(t *testing.T) {
	requirePython(t)
	k := jStartKernel(t, NewPythonKernel, nil)
	jrun(t, k, "y = 42", nil)

	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	c := &jCapture{}
	start := time.Now()
	err := k.Execute(ctx, "while True: pass", nil, c)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Execute = %v, want the context's error", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("interrupt took %v", took)
	}
	if len(c.errs) != 1 || c.errs[0].Name != "KeyboardInterrupt" {
		t.Errorf("errors = %+v, want KeyboardInterrupt", c.errs)
	}
	jWantMain(t, jrun(t, k, "y", nil), "42")
}

func TestJupyterCrashAndRestart(t *testing.T) {
	requirePython(t)
	k := jStartKernel(t, NewPythonKernel, nil)
	jrun(t, k, "z = 1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := k.Execute(ctx, "import os; os._exit(1)", nil, &jCapture{})
	if !errors.Is(err, ErrKernelDied) {
		t.Fatalf("Execute = %v, want ErrKernelDied", err)
	}
	if err := k.Execute(ctx, "1", nil, &jCapture{}); !errors.Is(err, ErrKernelDied) {
		t.Fatalf("Execute on a dead kernel = %v, want ErrKernelDied", err)
	}
	if err := k.Restart(ctx); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	jWantMain(t, jrun(t, k, "1 + 1", nil), "2")
	c := jrun(t, k, "z", nil)
	if len(c.errs) != 1 || c.errs[0].Name != "NameError" {
		t.Errorf("state survived a restart: %+v", c.errs)
	}
}

// rValue is the text of the cell's last rich output: IRkernel publishes
// visible values as display_data, not execute_result (so, as with E2B's
// Jupyter server, they are not main results).
func rValue(t *testing.T, c *jCapture) string {
	t.Helper()
	if len(c.results) == 0 {
		t.Fatalf("no result; errors %+v, stderr %q", c.errs, c.stderr.String())
	}
	return c.results[len(c.results)-1].Text
}

func TestJupyterR(t *testing.T) {
	requireR(t)
	k := jStartKernel(t, NewRKernel, nil)
	start := time.Now()
	c := jrun(t, k, "1+1", nil)
	t.Logf("R 1+1 round trip: %v", time.Since(start))
	if got := rValue(t, c); got != "[1] 2" {
		t.Errorf("1+1 = %q", got)
	}
	jrun(t, k, "x <- 5", nil)
	if got := rValue(t, jrun(t, k, "x * 2", nil)); got != "[1] 10" {
		t.Errorf("state: x * 2 = %q", got)
	}
	c = jrun(t, k, "cat('hi\\n'); stop('bad')", nil)
	if c.stdout.String() != "hi\n" || len(c.errs) != 1 || !strings.Contains(c.errs[0].Value, "bad") {
		t.Errorf("stdout %q, errors %+v", c.stdout.String(), c.errs)
	}
	if got := rValue(t, jrun(t, k, "Sys.getenv('ONCE')", map[string]string{"ONCE": "a\"b"})); got != `[1] "a\"b"` {
		t.Errorf("execution env = %s", got)
	}
	if got := rValue(t, jrun(t, k, "Sys.getenv('ONCE', unset = 'none')", nil)); got != `[1] "none"` {
		t.Errorf("env after execution = %s", got)
	}
	// Prompting for input fails at once instead of waiting for a reply
	// that never comes (IRkernel's own readline blocks on the stdin channel).
	for _, code := range []string{`x <- readline("name? ")`, `if (nchar(readline()) == 0) print("empty")`} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c = &jCapture{}
		err := k.Execute(ctx, code, nil, c)
		cancel()
		if err != nil || len(c.errs) != 1 || !strings.Contains(c.errs[0].Value, "StdinNotImplementedError") {
			t.Errorf("%s: err %v, errors %+v", code, err, c.errs)
		}
	}
	if got := rValue(t, jrun(t, k, "x * 3", nil)); got != "[1] 15" {
		t.Errorf("after a refused prompt: x * 3 = %q", got)
	}
}
