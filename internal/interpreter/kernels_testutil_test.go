package interpreter

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// kernelRecEvent is one call on a kernelRecorder.
type kernelRecEvent struct {
	Kind  string // "count", "stdout", "stderr", "result", "error"
	Text  string
	Count int
	Res   Result
	Err   ExecError
}

// kernelRecorder records everything a kernel emits, in order.
type kernelRecorder struct {
	mu     sync.Mutex
	events []kernelRecEvent
}

func (r *kernelRecorder) add(e kernelRecEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

func (r *kernelRecorder) ExecutionCount(n int) { r.add(kernelRecEvent{Kind: "count", Count: n}) }
func (r *kernelRecorder) Stdout(text string, _ time.Time) {
	r.add(kernelRecEvent{Kind: "stdout", Text: text})
}
func (r *kernelRecorder) Stderr(text string, _ time.Time) {
	r.add(kernelRecEvent{Kind: "stderr", Text: text})
}
func (r *kernelRecorder) Result(res Result) { r.add(kernelRecEvent{Kind: "result", Res: res}) }
func (r *kernelRecorder) Error(e ExecError) { r.add(kernelRecEvent{Kind: "error", Err: e}) }

func (r *kernelRecorder) snapshot() []kernelRecEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]kernelRecEvent(nil), r.events...)
}

// stdout is all stdout text concatenated.
func (r *kernelRecorder) stdout() string { return r.joined("stdout") }
func (r *kernelRecorder) stderr() string { return r.joined("stderr") }

func (r *kernelRecorder) joined(kind string) string {
	var b strings.Builder
	for _, e := range r.snapshot() {
		if e.Kind == kind {
			b.WriteString(e.Text)
		}
	}
	return b.String()
}

// streams is stdout and stderr merged in emission order, stderr marked "E:".
func (r *kernelRecorder) streams() string {
	var b strings.Builder
	for _, e := range r.snapshot() {
		switch e.Kind {
		case "stdout":
			b.WriteString(e.Text)
		case "stderr":
			b.WriteString("E:" + e.Text)
		}
	}
	return b.String()
}

func (r *kernelRecorder) errors() []ExecError {
	var errs []ExecError
	for _, e := range r.snapshot() {
		if e.Kind == "error" {
			errs = append(errs, e.Err)
		}
	}
	return errs
}

func (r *kernelRecorder) results() []Result {
	var res []Result
	for _, e := range r.snapshot() {
		if e.Kind == "result" {
			res = append(res, e.Res)
		}
	}
	return res
}

func (r *kernelRecorder) count() int {
	for _, e := range r.snapshot() {
		if e.Kind == "count" {
			return e.Count
		}
	}
	return -1
}

// kernelRun executes code with a fresh recorder and fails the test on a
// non-nil error.
func kernelRun(t *testing.T, k Kernel, code string, env map[string]string) *kernelRecorder {
	t.Helper()
	rec := &kernelRecorder{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := k.Execute(ctx, code, env, rec); err != nil {
		t.Fatalf("Execute(%q): %v", code, err)
	}
	return rec
}

// kernelLiveInGroup lists live (non-zombie) processes of process group pgid.
func kernelLiveInGroup(pgid int) []int { return kernelGroupMembers(pgid) }

// kernelProcAlive reports whether pid exists and is not a zombie.
func kernelProcAlive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && s[i+2] != 'Z'
}
