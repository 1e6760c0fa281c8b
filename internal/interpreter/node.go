package interpreter

import (
	"bufio"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The JavaScript/TypeScript kernel is one long-lived `node` process per
// context running node_runner.js (written to a temporary file that is removed
// as soon as node has loaded it).
//
// Control channel: fd 3 carries JSON-line commands to the runner, fd 4
// JSON-line events back. The runner turns process.stdout/stderr writes (and so
// console.*) into events on fd 4, which keeps user output ordered with results
// and unable to corrupt the framing. Whatever still reaches the real fd 1/2
// (e.g. child processes with inherited stdio) is forwarded as Stdout/Stderr.
//
// Interrupts: Go sends SIGINT to the process group. Synchronous code runs
// under vm's breakOnSigint and stops with an "Interrupted" error, state kept;
// a cell awaiting a promise is abandoned (the promise keeps running in the
// background). A busy loop after an `await` cannot be reached by SIGINT: after
// nodeInterruptGrace the process is killed (a fresh one starts with the next
// Execute), and the ExecError says that all state was lost.
//
// If the process exits (process.exit(), a crash), the cell gets
// ExecError{Name: "KernelExited"} and a fresh process is started
// transparently; Execute returns an error wrapping ErrKernelDied only when
// that restart fails.

//go:embed node_runner.js
var nodeRunnerJS string

const (
	nodeStartTimeout   = 30 * time.Second
	nodeInterruptGrace = 700 * time.Millisecond
	nodeDrainTimeout   = 2 * time.Second
)

// NewNodeKernel starts a kernel for "javascript" or "typescript" (aliases
// "js", "ts"). TypeScript needs the `typescript` npm package, found from the
// working directory, NODE_PATH or the global node_modules directories.
func NewNodeKernel(ctx context.Context, opts KernelOptions) (Kernel, error) {
	lang := strings.ToLower(strings.TrimSpace(opts.Language))
	switch lang {
	case "javascript", "js", "":
		lang = "javascript"
	case "typescript", "ts":
		lang = "typescript"
	default:
		return nil, fmt.Errorf("node kernel: unsupported language %q", opts.Language)
	}
	opts.Language = lang
	p, err := startNodeProc(ctx, opts)
	if err != nil {
		return nil, err
	}
	if lang == "typescript" && p.typescript == "" {
		p.kill()
		return nil, errors.New("typescript kernel: the \"typescript\" npm package was not found " +
			"(install it globally with `npm install -g typescript` or put it on NODE_PATH)")
	}
	return &nodeKernel{opts: opts, proc: p}, nil
}

type nodeKernel struct {
	opts   KernelOptions
	mu     sync.Mutex // serialises Execute, Restart and Close
	proc   *nodeProc
	count  int
	lastID int
	closed bool
}

func (k *nodeKernel) Language() string { return k.opts.Language }

func (k *nodeKernel) Restart(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return fmt.Errorf("node kernel closed: %w", ErrKernelDied)
	}
	k.count = 0
	return k.replaceProc(ctx)
}

func (k *nodeKernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	if k.proc != nil {
		k.proc.kill()
		k.proc = nil
	}
	return nil
}

// nodeCommand is one line on the runner's command channel.
type nodeCommand struct {
	Type  string            `json:"type"`
	ID    int               `json:"id"`
	Count int               `json:"count"`
	Lang  string            `json:"lang"`
	Code  string            `json:"code"`
	Env   map[string]string `json:"env,omitempty"`
}

// nodeEvent is one line from the runner (or a chunk of raw fd 1/2 output).
type nodeEvent struct {
	Type       string         `json:"type"`
	ID         int            `json:"id"`
	Text       string         `json:"text"`
	JSON       map[string]any `json:"json"`
	Name       string         `json:"name"`
	Value      string         `json:"value"`
	Traceback  string         `json:"traceback"`
	TypeScript string         `json:"typescript"`
}

func (k *nodeKernel) Execute(ctx context.Context, code string, env map[string]string, out Emitter) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return fmt.Errorf("node kernel closed: %w", ErrKernelDied)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if k.proc == nil || k.proc.hasExited() {
		if err := k.replaceProc(ctx); err != nil {
			return err
		}
	}
	k.count++
	k.lastID++
	out.ExecutionCount(k.count)
	id := k.lastID
	line, err := json.Marshal(nodeCommand{Type: "execute", ID: id, Count: k.count, Lang: k.opts.Language, Code: code, Env: env})
	if err != nil {
		return fmt.Errorf("encoding node command: %w", err)
	}
	p := k.proc
	go func() {
		// A failed write means the process is gone; p.exited reports that.
		_, _ = p.commands.Write(append(line, '\n'))
	}()

	var (
		interrupted bool
		grace       <-chan time.Time
		resend      *time.Ticker
		done        = ctx.Done()
	)
	defer func() {
		if resend != nil {
			resend.Stop()
		}
	}()
	for {
		select {
		case ev := <-p.events:
			if p.forward(ev, id, out) {
				if interrupted {
					return ctx.Err()
				}
				return nil
			}
		case <-p.exited:
			p.drain(id, out)
			out.Error(ExecError{
				Name: "KernelExited",
				Value: fmt.Sprintf("the JavaScript kernel exited (%s); a fresh kernel was started and all state was lost",
					p.exitDesc),
			})
			if err := k.replaceProc(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			if interrupted {
				return ctx.Err()
			}
			return nil
		case <-done:
			done = nil
			interrupted = true
			p.signalGroup(syscall.SIGINT)
			grace = time.After(nodeInterruptGrace)
			// A SIGINT that lands just before the cell's code starts
			// running is consumed without effect: repeat it.
			resend = time.NewTicker(nodeInterruptGrace / 5)
		case <-nodeTickerC(resend):
			p.signalGroup(syscall.SIGINT)
		case <-grace:
			// Kill now; the next Execute starts a fresh process, so the
			// interrupt itself returns quickly.
			p.kill()
			k.proc = nil
			p.drain(id, out)
			out.Error(ExecError{
				Name: "Interrupted",
				Value: "execution interrupted; the code did not yield to the interrupt, so the JavaScript kernel " +
					"was restarted and all state was lost",
			})
			return ctx.Err()
		}
	}
}

// replaceProc kills the current process (if any) and starts a fresh one.
func (k *nodeKernel) replaceProc(ctx context.Context) error {
	if k.proc != nil {
		k.proc.kill()
		k.proc = nil
	}
	p, err := startNodeProc(ctx, k.opts)
	if err != nil {
		return fmt.Errorf("%w: restarting node: %w", ErrKernelDied, err)
	}
	k.proc = p
	return nil
}

// nodeProc is one running node runner.
type nodeProc struct {
	groupProc
	commands   *os.File
	events     chan nodeEvent
	exitDesc   string
	typescript string // path of the typescript package, "" when absent
}

func startNodeProc(ctx context.Context, opts KernelOptions) (*nodeProc, error) {
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (*os.File, *os.File, error) {
		r, w, err := os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	cmdR, cmdW, err := pipe()
	if err != nil {
		return nil, fmt.Errorf("node command pipe: %w", err)
	}
	evR, evW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("node event pipe: %w", err)
	}
	outR, outW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("node stdout pipe: %w", err)
	}
	errR, errW, err := pipe()
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("node stderr pipe: %w", err)
	}

	// The runner must be a file: Node 18 crashes on import() from -e code
	// once the eval script has been garbage collected. Node has read the
	// file once it is ready, so the directory is removed right then.
	dir, err := os.MkdirTemp("", "airlock-node-")
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("node runner dir: %w", err)
	}
	defer os.RemoveAll(dir)
	runner := filepath.Join(dir, "runner.js")
	if err := os.WriteFile(runner, []byte(nodeRunnerJS), 0o600); err != nil {
		closeAll()
		return nil, fmt.Errorf("writing node runner: %w", err)
	}

	cmd := exec.Command("node", "--no-warnings", runner)
	cmd.Dir = opts.Cwd
	cmd.Env = kernelEnv(opts.Env)
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{cmdR, evW} // fd 3, fd 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	for _, f := range []*os.File{cmdR, evW, outW, errW} {
		f.Close()
	}
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("starting node: %w", err)
	}
	p := &nodeProc{
		groupProc: groupProc{cmd: cmd, exited: make(chan struct{})},
		commands:  cmdW,
		events:    make(chan nodeEvent, 256),
	}
	var readers sync.WaitGroup
	readers.Add(3)
	go func() { defer readers.Done(); p.readEvents(evR) }()
	go func() { defer readers.Done(); p.readRaw(outR, "stdout") }()
	go func() { defer readers.Done(); p.readRaw(errR, "stderr") }()
	go p.watch(&readers, nodeDrainTimeout, func(ps *os.ProcessState) { p.exitDesc = ps.String() }, evR, outR, errR, cmdW)

	if err := p.waitReady(ctx); err != nil {
		p.kill()
		return nil, err
	}
	return p, nil
}

func (p *nodeProc) waitReady(ctx context.Context) error {
	timeout := time.NewTimer(nodeStartTimeout)
	defer timeout.Stop()
	var stderr strings.Builder
	for {
		select {
		case ev := <-p.events:
			switch ev.Type {
			case "ready":
				p.typescript = ev.TypeScript
				return nil
			case "stderr":
				stderr.WriteString(ev.Text)
			}
		case <-p.exited:
			return fmt.Errorf("node exited during start-up (%s): %s", p.exitDesc, strings.TrimSpace(stderr.String()))
		case <-timeout.C:
			return errors.New("node did not start in time")
		case <-ctx.Done():
			return fmt.Errorf("starting node: %w", ctx.Err())
		}
	}
}

func (p *nodeProc) readEvents(r io.Reader) {
	br := bufio.NewReaderSize(r, 64*1024)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			var ev nodeEvent
			if jerr := json.Unmarshal(line, &ev); jerr == nil {
				p.events <- ev
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *nodeProc) readRaw(r io.Reader, kind string) {
	buf := make([]byte, 32*1024)
	var pending []byte
	for {
		n, err := r.Read(buf)
		pending = append(pending, buf[:n]...)
		cut := len(pending)
		if err == nil {
			cut = kernelUTF8Complete(pending)
		}
		if cut > 0 {
			p.events <- nodeEvent{Type: kind, Text: string(pending[:cut])}
			pending = append([]byte(nil), pending[cut:]...)
		}
		if err != nil {
			return
		}
	}
}

// forward passes one event of execution id to out and reports whether the
// execution is done. Output between executions (timers, background work)
// is delivered with the next execution.
func (p *nodeProc) forward(ev nodeEvent, id int, out Emitter) bool {
	switch ev.Type {
	case "stdout":
		out.Stdout(ev.Text, time.Now())
	case "stderr":
		out.Stderr(ev.Text, time.Now())
	case "result":
		if ev.ID == id {
			out.Result(Result{IsMainResult: true, Text: ev.Text, JSON: ev.JSON})
		}
	case "error":
		if ev.ID == id {
			out.Error(ExecError{Name: ev.Name, Value: ev.Value, Traceback: ev.Traceback})
		}
	case "done":
		return ev.ID == id
	}
	return false
}

// drain forwards events still queued after the process went away.
func (p *nodeProc) drain(id int, out Emitter) {
	for {
		select {
		case ev := <-p.events:
			p.forward(ev, id, out)
		default:
			return
		}
	}
}

// kill stops node and everything in its process group and waits until it is
// gone.
func (p *nodeProc) kill() { p.killGroup() }

// nodeTickerC is t's channel, nil (never ready) for a nil ticker.
func nodeTickerC(t *time.Ticker) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

var _ Kernel = (*nodeKernel)(nil)
