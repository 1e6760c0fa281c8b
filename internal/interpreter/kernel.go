// Package interpreter is the code-interpreter server that runs inside
// code-interpreter sandboxes (port 49999): stateful execution contexts backed
// by kernels, streamed to clients as E2B's NDJSON.
package interpreter

import (
	"context"
	"errors"
	"time"
)

// ErrKernelDied means the kernel process exited or lost its connection; the
// context can be restarted.
var ErrKernelDied = errors.New("kernel died")

// Result is one rich output (execute_result or display_data). MIME-typed
// fields are filled from the kernel's bundle; empty fields are omitted on the
// wire.
type Result struct {
	IsMainResult bool
	Text         string         // text/plain
	HTML         string         // text/html
	Markdown     string         // text/markdown
	SVG          string         // image/svg+xml
	PNG          string         // image/png, base64
	JPEG         string         // image/jpeg, base64
	PDF          string         // application/pdf, base64
	LaTeX        string         // text/latex
	JSON         map[string]any // application/json
	JavaScript   string         // application/javascript
	Data         map[string]any // e2b/data
	Chart        map[string]any // e2b/chart
	Extra        map[string]any // every other MIME type
}

// ExecError is a user-code error; it is data, not a failure of the server.
type ExecError struct {
	Name      string
	Value     string
	Traceback string
}

// Emitter receives the outputs of one execution, in order. Implementations
// must be safe to call from the kernel's goroutines, one call at a time.
type Emitter interface {
	ExecutionCount(n int)
	Stdout(text string, at time.Time)
	Stderr(text string, at time.Time)
	Result(r Result)
	Error(e ExecError)
}

// Kernel runs code for one context, keeping state between executions.
// Execute calls are serialised by the caller (one at a time per kernel).
type Kernel interface {
	// Language is the normalised language name ("python", "javascript",
	// "typescript", "r", "bash").
	Language() string
	// Execute runs code with extra environment variables for this execution
	// only, streaming outputs to out. It returns when the execution ends.
	// Cancelling ctx interrupts the running code (the kernel stays usable).
	Execute(ctx context.Context, code string, env map[string]string, out Emitter) error
	// Restart discards all state and starts a fresh kernel.
	Restart(ctx context.Context) error
	// Close stops the kernel and releases its processes.
	Close() error
}

// KernelOptions configure a new kernel.
type KernelOptions struct {
	Language string
	Cwd      string            // initial working directory
	Env      map[string]string // sandbox-level environment
}

// Factory starts kernels for a language.
type Factory func(ctx context.Context, opts KernelOptions) (Kernel, error)
