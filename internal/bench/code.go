package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/internal/interpreter"
)

// Code interpreter scenario names as they appear in reports.
const (
	ScenarioRunCode       = "runCode('1+1') round-trip"
	ScenarioCreateRunCode = "create→first runCode('1+1')"
)

// benchCode is what every code interpreter scenario runs, and its result.
const (
	benchCode       = "1+1"
	benchCodeResult = "2"
)

// codeInterpreter measures runCode in code-interpreter sandboxes against
// an ipykernel started on the host: steady-state round-trips, then create
// to the first result against a kernel cold start plus its first execute.
func (r *runner) codeInterpreter(ctx context.Context) error {
	if r.o.NoCode {
		r.rr.Notes = append(r.rr.Notes, "code interpreter scenarios skipped (--no-code)")
		return nil
	}
	tpls, err := r.c.Templates(ctx)
	if err != nil {
		return err
	}
	if ok, why := templateState(tpls, r.o.CodeTemplate); !ok {
		r.rr.Notes = append(r.rr.Notes, "code interpreter scenarios skipped: "+why)
		return nil
	}
	if err := r.runCodeRoundTrip(ctx); err != nil {
		return err
	}
	return r.createRunCode(ctx)
}

// runCode runs the benchmark cell in sb and checks its result.
func (r *runner) runCode(ctx context.Context, sb *Sandbox) error {
	text, err := r.c.RunCode(ctx, sb, benchCode)
	if err != nil {
		return err
	}
	if text != benchCodeResult {
		return fmt.Errorf("runCode(%q) returned %q, want %q", benchCode, text, benchCodeResult)
	}
	return nil
}

func (r *runner) runCodeRoundTrip(ctx context.Context) error {
	sb, err := r.c.Create(ctx, r.o.CodeTemplate, sandboxTimeout)
	if err != nil {
		return err
	}
	r.track(sb.ID)
	defer r.kill(context.WithoutCancel(ctx), sb.ID)
	warmup := r.o.Warmup * 5
	s, err := timeIt(ctx, warmup, r.o.CodeN, func(ctx context.Context) error { return r.runCode(ctx, sb) })
	if err != nil {
		return err
	}
	var bl []namedSamples
	if hs, err := hostKernelRoundTrips(ctx, warmup, r.o.CodeN); err == nil {
		bl = append(bl, namedSamples{"ipykernel on host", hs})
	} else {
		r.rr.Errors = append(r.rr.Errors, "baseline ipykernel on host: "+err.Error())
	}
	r.add(Result{Scenario: ScenarioRunCode, Latency: Summarize(s)}, bl)
	return nil
}

// createRunCode measures create → first runCode result, one sandbox at a
// time, killing each afterwards (not timed).
func (r *runner) createRunCode(ctx context.Context) error {
	const warmup = 1
	var samples []time.Duration
	phases := map[string][]time.Duration{}
	for i := 0; i < warmup+r.o.CodeColdN; i++ {
		t0 := time.Now()
		sb, err := r.c.Create(ctx, r.o.CodeTemplate, sandboxTimeout)
		if err != nil {
			return err
		}
		r.track(sb.ID)
		err = r.runCode(ctx, sb)
		d := time.Since(t0)
		kerr := r.kill(ctx, sb.ID)
		if err != nil {
			return err
		}
		if kerr != nil {
			return kerr
		}
		if i < warmup {
			continue
		}
		samples = append(samples, d)
		for k, v := range sb.Timing {
			phases[k] = append(phases[k], v)
		}
	}
	var bl []namedSamples
	if hs, err := hostKernelColdStarts(ctx, warmup, r.o.CodeColdN); err == nil {
		bl = append(bl, namedSamples{"ipykernel start+first execute on host", hs})
	} else {
		r.rr.Errors = append(r.rr.Errors, "baseline ipykernel cold start on host: "+err.Error())
	}
	r.add(Result{Scenario: ScenarioCreateRunCode, Latency: Summarize(samples), Phases: summarizeAll(phases)}, bl)
	return nil
}

func (r *runner) track(id string) {
	r.mu.Lock()
	r.live[id] = true
	r.mu.Unlock()
}

// hostKernel is an ipykernel on the host, started the way the in-sandbox
// interpreter starts its Python kernel.
type hostKernel struct {
	k   interpreter.Kernel
	dir string
}

func startHostKernel(ctx context.Context) (*hostKernel, error) {
	dir, err := os.MkdirTemp("", "airlock-bench-kernel-")
	if err != nil {
		return nil, err
	}
	k, err := interpreter.NewPythonKernel(ctx, interpreter.KernelOptions{Language: "python", Cwd: dir})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start ipykernel: %w", err)
	}
	return &hostKernel{k: k, dir: dir}, nil
}

func (h *hostKernel) close() {
	_ = h.k.Close()
	os.RemoveAll(h.dir)
}

// execute runs the benchmark cell and checks its result.
func (h *hostKernel) execute(ctx context.Context) error {
	var out resultCollector
	if err := h.k.Execute(ctx, benchCode, nil, &out); err != nil {
		return fmt.Errorf("ipykernel execute: %w", err)
	}
	return out.check()
}

// hostKernelRoundTrips times n executes on one warm host kernel.
func hostKernelRoundTrips(ctx context.Context, warmup, n int) ([]time.Duration, error) {
	h, err := startHostKernel(ctx)
	if err != nil {
		return nil, err
	}
	defer h.close()
	return timeIt(ctx, warmup, n, h.execute)
}

// hostKernelColdStarts times n fresh kernels from start to the result of
// their first execute; stopping each is not timed, like the sandbox kill.
func hostKernelColdStarts(ctx context.Context, warmup, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := 0; i < warmup+n; i++ {
		t0 := time.Now()
		h, err := startHostKernel(ctx)
		if err != nil {
			return out, err
		}
		err = h.execute(ctx)
		d := time.Since(t0)
		h.close()
		if err != nil {
			return out, err
		}
		if i >= warmup {
			out = append(out, d)
		}
	}
	return out, nil
}

// resultCollector is an interpreter.Emitter that keeps the main result and
// the error of one execution.
type resultCollector struct {
	mu   sync.Mutex
	text string
	err  *interpreter.ExecError
}

func (c *resultCollector) ExecutionCount(int)            {}
func (c *resultCollector) Stdout(string, time.Time)      {}
func (c *resultCollector) Stderr(string, time.Time)      {}
func (c *resultCollector) Error(e interpreter.ExecError) { c.mu.Lock(); c.err = &e; c.mu.Unlock() }
func (c *resultCollector) Result(res interpreter.Result) {
	if !res.IsMainResult {
		return
	}
	c.mu.Lock()
	c.text = res.Text
	c.mu.Unlock()
}

func (c *resultCollector) check() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return fmt.Errorf("%w: %s: %s", ErrCodeFailed, c.err.Name, c.err.Value)
	}
	if c.text != benchCodeResult {
		return fmt.Errorf("%q returned %q, want %q", benchCode, c.text, benchCodeResult)
	}
	return nil
}
