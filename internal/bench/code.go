package bench

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
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
// the same interpreter server run on the host: steady-state round-trips,
// then create to the first result against a server cold start plus its
// first execute.
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

// ErrCodeFailed means the benchmark cell raised an error.
var ErrCodeFailed = errors.New("code raised an error")

// runCode runs the benchmark cell in sb through the SDK and checks its result.
func runCode(ctx context.Context, sb *sandbox.Sandbox) error {
	exec, err := sb.RunCode(ctx, benchCode, &sandbox.RunCodeOptions{Language: "python"})
	if err != nil {
		return err
	}
	if e := exec.Error; e != nil {
		return fmt.Errorf("%w: %s: %s", ErrCodeFailed, e.Name, e.Value)
	}
	if text := exec.Text(); text != benchCodeResult {
		return fmt.Errorf("runCode(%q) returned %q, want %q", benchCode, text, benchCodeResult)
	}
	return nil
}

func (r *runner) runCodeRoundTrip(ctx context.Context) error {
	sb, err := r.create(ctx, r.o.CodeTemplate)
	if err != nil {
		return err
	}
	defer r.kill(context.WithoutCancel(ctx), sb.ID)
	warmup := r.o.Warmup * 5
	s, err := timeIt(ctx, warmup, r.o.CodeN, func(ctx context.Context) error { return runCode(ctx, sb) })
	if err != nil {
		return err
	}
	var bl []namedSamples
	if hs, err := hostInterpreterRoundTrips(ctx, r.o.Server.Binary, warmup, r.o.CodeN); err == nil {
		bl = append(bl, namedSamples{"interpreter on host", hs})
	} else {
		r.rr.Errors = append(r.rr.Errors, "baseline interpreter on host: "+err.Error())
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
		sb, err := r.create(ctx, r.o.CodeTemplate)
		if err != nil {
			return err
		}
		err = runCode(ctx, sb)
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
		for k, v := range sb.CreateTiming {
			phases[k] = append(phases[k], v)
		}
	}
	var bl []namedSamples
	if hs, err := hostInterpreterColdStarts(ctx, r.o.Server.Binary, warmup, r.o.CodeColdN); err == nil {
		bl = append(bl, namedSamples{"interpreter start+first runCode on host", hs})
	} else {
		r.rr.Errors = append(r.rr.Errors, "baseline interpreter cold start on host: "+err.Error())
	}
	r.add(Result{Scenario: ScenarioCreateRunCode, Latency: Summarize(samples), Phases: summarizeAll(phases)}, bl)
	return nil
}

func (r *runner) track(id string) {
	r.mu.Lock()
	r.live[id] = true
	r.mu.Unlock()
}
