package sandbox

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/process"
)

// Commands runs and manages processes in the sandbox.
type Commands struct {
	s *Sandbox
}

// RunOptions configures a command. The zero value runs as the sandbox's
// default user in its default directory with a 60 s timeout.
type RunOptions struct {
	Envs map[string]string
	Cwd  string
	User string
	// Timeout is the command's lifetime, enforced by envd and locally;
	// 0 means 60 s, NoTimeout means unlimited.
	Timeout time.Duration
	// Stdin keeps stdin open for SendStdin; otherwise it is /dev/null.
	Stdin bool
	// Tag labels the process (ProcessInfo.Tag).
	Tag string

	// OnStdout/OnStderr get output decoded as UTF-8, chunk by chunk.
	OnStdout func(string)
	OnStderr func(string)
	// Stdout/Stderr get the raw output bytes.
	Stdout io.Writer
	Stderr io.Writer
	// OnPTY gets raw terminal output of PTY processes.
	OnPTY func([]byte)
}

// CommandResult is a finished command.
type CommandResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
	// Error is envd's error text for a failed command, e.g. "exit status 1".
	Error string
}

// ProcessInfo describes a running process.
type ProcessInfo struct {
	PID  uint32
	Tag  string
	Cmd  string
	Args []string
	Envs map[string]string
	Cwd  string
}

func (o *RunOptions) orDefault() *RunOptions {
	if o == nil {
		return &RunOptions{}
	}
	return o
}

func commandTimeout(d time.Duration) time.Duration {
	switch {
	case d < 0:
		return 0
	case d == 0:
		return DefaultCommandTimeout
	default:
		return d
	}
}

// Run runs cmd with /bin/bash -l -c and waits for it. A non-zero exit
// returns the result and a *CommandExitError. Cancelling ctx stops
// waiting (the process keeps running until its timeout).
func (c *Commands) Run(ctx context.Context, cmd string, opts *RunOptions) (*CommandResult, error) {
	h, err := c.start(ctx, cmd, opts.orDefault(), false)
	if err != nil {
		return nil, err
	}
	defer h.Disconnect()
	return h.Wait(ctx)
}

// Exec runs a program directly, without a shell: argv[0] is the program
// (looked up in PATH) and the rest its arguments, so nothing in them is
// interpreted. It waits like Run. An Airlock extension: the official SDKs
// always go through bash.
func (c *Commands) Exec(ctx context.Context, argv []string, opts *RunOptions) (*CommandResult, error) {
	if len(argv) == 0 || argv[0] == "" {
		return nil, newError(ErrInvalidArgument, 0, "", "exec needs a program", nil)
	}
	o := opts.orDefault()
	h, err := c.s.startProcess(ctx, startRequest(argv, o), o, false)
	if err != nil {
		return nil, err
	}
	defer h.Disconnect()
	return h.Wait(ctx)
}

// Start runs cmd in the background and returns once the process started.
// The output keeps streaming into opts' callbacks until Wait returns or
// Disconnect is called; ctx only bounds the start.
func (c *Commands) Start(ctx context.Context, cmd string, opts *RunOptions) (*CommandHandle, error) {
	return c.start(ctx, cmd, opts.orDefault(), true)
}

func (c *Commands) start(ctx context.Context, cmd string, o *RunOptions, background bool) (*CommandHandle, error) {
	return c.s.startProcess(ctx, startRequest([]string{"/bin/bash", "-l", "-c", cmd}, o), o, background)
}

func startRequest(argv []string, o *RunOptions) *process.StartRequest {
	stdin := o.Stdin
	req := &process.StartRequest{
		Process: &process.ProcessConfig{Cmd: argv[0], Args: argv[1:], Envs: o.Envs},
		Stdin:   &stdin,
	}
	if o.Cwd != "" {
		req.Process.Cwd = &o.Cwd
	}
	if o.Tag != "" {
		req.Tag = &o.Tag
	}
	return req
}

// Connect attaches to a running process by PID, streaming its output from
// now on into opts' callbacks (only the output fields of opts are used,
// plus Timeout).
func (c *Commands) Connect(ctx context.Context, pid uint32, opts *RunOptions) (*CommandHandle, error) {
	o := opts.orDefault()
	sctx, cancel := c.s.streamCtx(ctx, o.Timeout, true)
	req := connect.NewRequest(&process.ConnectRequest{Process: pidSelector(pid)})
	c.s.rpcHeaders(req.Header(), o.User, true)
	stop := c.s.handshakeGuard(ctx, cancel)
	stream, err := c.s.proc.Connect(sctx, req)
	if err != nil {
		stop()
		cancel()
		return nil, rpcError(err)
	}
	return newHandle(c.s, streamOf[process.ConnectResponse]{stream}, o, cancel, stop)
}

// List returns the running processes.
func (c *Commands) List(ctx context.Context) ([]ProcessInfo, error) {
	ctx, cancel := c.s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&process.ListRequest{})
	c.s.rpcHeaders(req.Header(), "", false)
	resp, err := c.s.proc.List(ctx, req)
	if err != nil {
		return nil, rpcError(err)
	}
	out := make([]ProcessInfo, 0, len(resp.Msg.GetProcesses()))
	for _, p := range resp.Msg.GetProcesses() {
		cfg := p.GetConfig()
		out = append(out, ProcessInfo{
			PID: p.GetPid(), Tag: p.GetTag(),
			Cmd: cfg.GetCmd(), Args: cfg.GetArgs(), Envs: cfg.GetEnvs(), Cwd: cfg.GetCwd(),
		})
	}
	return out, nil
}

// Kill sends SIGKILL to a process; false means it did not exist.
func (c *Commands) Kill(ctx context.Context, pid uint32) (bool, error) {
	return c.s.signal(ctx, pid, process.Signal_SIGNAL_SIGKILL)
}

// SendStdin writes to the stdin of a process started with Stdin: true.
func (c *Commands) SendStdin(ctx context.Context, pid uint32, data []byte) error {
	return c.s.sendInput(ctx, pid, &process.ProcessInput{Input: &process.ProcessInput_Stdin{Stdin: data}})
}

// CloseStdin closes the stdin of a process (EOF).
func (c *Commands) CloseStdin(ctx context.Context, pid uint32) error {
	ctx, cancel := c.s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&process.CloseStdinRequest{Process: pidSelector(pid)})
	c.s.rpcHeaders(req.Header(), "", false)
	_, err := c.s.proc.CloseStdin(ctx, req)
	return rpcError(err)
}

func pidSelector(pid uint32) *process.ProcessSelector {
	return &process.ProcessSelector{Selector: &process.ProcessSelector_Pid{Pid: pid}}
}

func (s *Sandbox) signal(ctx context.Context, pid uint32, sig process.Signal) (bool, error) {
	ctx, cancel := s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&process.SendSignalRequest{Process: pidSelector(pid), Signal: sig})
	s.rpcHeaders(req.Header(), "", false)
	_, err := s.proc.SendSignal(ctx, req)
	if isCode(err, connect.CodeNotFound) {
		return false, nil
	}
	if err != nil {
		return false, rpcError(err)
	}
	return true, nil
}

func (s *Sandbox) sendInput(ctx context.Context, pid uint32, in *process.ProcessInput) error {
	ctx, cancel := s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&process.SendInputRequest{Process: pidSelector(pid), Input: in})
	s.rpcHeaders(req.Header(), "", false)
	_, err := s.proc.SendInput(ctx, req)
	return rpcError(err)
}

// streamCtx is the context of a long-lived stream: it carries the
// operation timeout (sent as Connect-Timeout-Ms by connect-go) and, for
// background streams, is detached from ctx's cancellation.
func (s *Sandbox) streamCtx(ctx context.Context, timeout time.Duration, background bool) (context.Context, context.CancelFunc) {
	if background {
		ctx = context.WithoutCancel(ctx)
	}
	if t := commandTimeout(timeout); t > 0 {
		return context.WithTimeout(ctx, t)
	}
	return context.WithCancel(ctx)
}

// handshakeGuard aborts the stream if the start event does not arrive
// within the request timeout or ctx ends first; the returned func
// disarms it.
func (s *Sandbox) handshakeGuard(ctx context.Context, cancel context.CancelFunc) func() {
	var timer *time.Timer
	if t := s.client.cfg.requestTimeout(); t > 0 {
		timer = time.AfterFunc(t, cancel)
	}
	stopCtx := context.AfterFunc(ctx, cancel)
	return func() {
		if timer != nil {
			timer.Stop()
		}
		stopCtx()
	}
}

func (s *Sandbox) startProcess(ctx context.Context, msg *process.StartRequest, o *RunOptions, background bool) (*CommandHandle, error) {
	sctx, cancel := s.streamCtx(ctx, o.Timeout, background)
	req := connect.NewRequest(msg)
	s.rpcHeaders(req.Header(), o.User, true)
	stop := s.handshakeGuard(ctx, cancel)
	stream, err := s.proc.Start(sctx, req)
	if err != nil {
		stop()
		cancel()
		return nil, rpcError(err)
	}
	return newHandle(s, streamOf[process.StartResponse]{stream}, o, cancel, stop)
}

// eventStream unifies Start and Connect response streams.
type eventStream interface {
	Receive() bool
	Event() *process.ProcessEvent
	Err() error
	Close() error
}

type eventMsg interface {
	GetEvent() *process.ProcessEvent
}

type streamOf[T any] struct {
	*connect.ServerStreamForClient[T]
}

func (s streamOf[T]) Event() *process.ProcessEvent {
	var m any = s.Msg()
	return m.(eventMsg).GetEvent()
}

var errDisconnected = errors.New("disconnected from the process")

// CommandHandle is a running process whose output is being streamed.
type CommandHandle struct {
	PID uint32

	s      *Sandbox
	stream eventStream
	cancel context.CancelFunc
	o      *RunOptions
	done   chan struct{}

	mu         sync.Mutex
	stdout     strings.Builder
	stderr     strings.Builder
	outDec     utf8Decoder
	errDec     utf8Decoder
	result     *CommandResult
	err        error
	discarding bool
}

// newHandle reads the start event, then streams the rest in the background.
func newHandle(s *Sandbox, stream eventStream, o *RunOptions, cancel context.CancelFunc, stopGuard func()) (*CommandHandle, error) {
	defer stopGuard()
	if !stream.Receive() {
		err := stream.Err()
		_ = stream.Close()
		cancel()
		if err == nil {
			return nil, newError(ErrSandbox, 0, "", "stream ended before the start event", nil)
		}
		return nil, rpcError(err)
	}
	start := stream.Event().GetStart()
	if start == nil {
		_ = stream.Close()
		cancel()
		return nil, newError(ErrSandbox, 0, "", "expected start event", nil)
	}
	h := &CommandHandle{PID: start.GetPid(), s: s, stream: stream, cancel: cancel, o: o, done: make(chan struct{})}
	go h.read()
	return h, nil
}

func (h *CommandHandle) read() {
	defer close(h.done)
	defer h.cancel()
	defer h.stream.Close()
	for h.stream.Receive() {
		ev := h.stream.Event()
		switch e := ev.GetEvent().(type) {
		case *process.ProcessEvent_Data:
			h.data(e.Data)
		case *process.ProcessEvent_End:
			h.end(e.End)
			return
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flush()
	switch err := h.stream.Err(); {
	case h.discarding:
		h.err = newError(ErrSandbox, 0, "", errDisconnected.Error(), errDisconnected)
	case err != nil:
		h.err = rpcError(err)
	default:
		h.err = newError(ErrSandbox, 0, "", "process exited without a result", nil)
	}
}

func (h *CommandHandle) data(d *process.ProcessEvent_DataEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch out := d.GetOutput().(type) {
	case *process.ProcessEvent_DataEvent_Stdout:
		h.output(out.Stdout, &h.outDec, &h.stdout, h.o.Stdout, h.o.OnStdout)
	case *process.ProcessEvent_DataEvent_Stderr:
		h.output(out.Stderr, &h.errDec, &h.stderr, h.o.Stderr, h.o.OnStderr)
	case *process.ProcessEvent_DataEvent_Pty:
		if h.o.OnPTY != nil {
			h.o.OnPTY(out.Pty)
		}
	}
}

func (h *CommandHandle) output(b []byte, dec *utf8Decoder, acc *strings.Builder, w io.Writer, cb func(string)) {
	if w != nil {
		_, _ = w.Write(b)
	}
	if s := dec.decode(b); s != "" {
		acc.WriteString(s)
		if cb != nil {
			cb(s)
		}
	}
}

// flush emits output held back by the UTF-8 decoders.
func (h *CommandHandle) flush() {
	if s := h.outDec.flush(); s != "" {
		h.stdout.WriteString(s)
		if h.o.OnStdout != nil {
			h.o.OnStdout(s)
		}
	}
	if s := h.errDec.flush(); s != "" {
		h.stderr.WriteString(s)
		if h.o.OnStderr != nil {
			h.o.OnStderr(s)
		}
	}
}

func (h *CommandHandle) end(e *process.ProcessEvent_EndEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.flush()
	h.result = &CommandResult{
		ExitCode: int(e.GetExitCode()),
		Stdout:   h.stdout.String(),
		Stderr:   h.stderr.String(),
		Error:    e.GetError(),
	}
	if e.GetExitCode() != 0 {
		h.err = &CommandExitError{
			ExitCode: int(e.GetExitCode()), Stdout: h.result.Stdout,
			Stderr: h.result.Stderr, ErrorMessage: e.GetError(),
		}
	}
}

// Wait blocks until the process ends and returns its result; a non-zero
// exit also returns a *CommandExitError. If ctx ends first, Wait returns
// ctx's error and the output keeps streaming.
func (h *CommandHandle) Wait(ctx context.Context) (*CommandResult, error) {
	select {
	case <-h.done:
	case <-ctx.Done():
		return nil, newError(ErrTimeout, 0, "", "waiting for the command: "+ctx.Err().Error(), ctx.Err())
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.result, h.err
}

// Done is closed when the output stream ends.
func (h *CommandHandle) Done() <-chan struct{} { return h.done }

// Stdout returns the stdout received so far.
func (h *CommandHandle) Stdout() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stdout.String()
}

// Stderr returns the stderr received so far.
func (h *CommandHandle) Stderr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stderr.String()
}

// Disconnect stops streaming output; the process keeps running and can be
// attached to again with Commands.Connect.
func (h *CommandHandle) Disconnect() {
	h.mu.Lock()
	if h.result == nil {
		h.discarding = true
	}
	h.mu.Unlock()
	h.cancel()
}

// Kill sends SIGKILL to the process; false means it was already gone.
func (h *CommandHandle) Kill(ctx context.Context) (bool, error) {
	return h.s.signal(ctx, h.PID, process.Signal_SIGNAL_SIGKILL)
}

// SendStdin writes to the process' stdin (started with Stdin: true).
func (h *CommandHandle) SendStdin(ctx context.Context, data []byte) error {
	return h.s.Commands.SendStdin(ctx, h.PID, data)
}

// CloseStdin closes the process' stdin.
func (h *CommandHandle) CloseStdin(ctx context.Context) error {
	return h.s.Commands.CloseStdin(ctx, h.PID)
}
