package sandbox

import (
	"context"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/process"
)

// PTY runs interactive shells on pseudo-terminals.
type PTY struct {
	s *Sandbox
}

// PTYOptions configures a terminal; Cols and Rows are required.
type PTYOptions struct {
	Cols, Rows uint32
	// OnData gets the raw terminal output (stdout and stderr merged).
	OnData func([]byte)
	Envs   map[string]string
	Cwd    string
	User   string
	// Timeout is the terminal's lifetime; 0 means 60 s, NoTimeout unlimited.
	Timeout time.Duration
}

// Create starts /bin/bash -i -l on a new terminal and returns its handle;
// use Wait to wait for the shell to exit.
func (p *PTY) Create(ctx context.Context, opts PTYOptions) (*CommandHandle, error) {
	if opts.Cols == 0 || opts.Rows == 0 {
		return nil, newError(ErrInvalidArgument, 0, "", "PTY size needs cols and rows", nil)
	}
	envs := map[string]string{"TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
	for k, v := range opts.Envs {
		envs[k] = v
	}
	req := &process.StartRequest{
		Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-i", "-l"}, Envs: envs},
		Pty:     &process.PTY{Size: &process.PTY_Size{Cols: opts.Cols, Rows: opts.Rows}},
	}
	if opts.Cwd != "" {
		req.Process.Cwd = &opts.Cwd
	}
	o := &RunOptions{User: opts.User, Timeout: opts.Timeout, OnPTY: opts.OnData}
	return p.s.startProcess(ctx, req, o, true)
}

// Connect attaches to a running terminal by PID.
func (p *PTY) Connect(ctx context.Context, pid uint32, onData func([]byte), timeout time.Duration) (*CommandHandle, error) {
	return p.s.Commands.Connect(ctx, pid, &RunOptions{OnPTY: onData, Timeout: timeout})
}

// SendInput writes to the terminal (send 0x04 for EOF).
func (p *PTY) SendInput(ctx context.Context, pid uint32, data []byte) error {
	return p.s.sendInput(ctx, pid, &process.ProcessInput{Input: &process.ProcessInput_Pty{Pty: data}})
}

// Resize changes the terminal size.
func (p *PTY) Resize(ctx context.Context, pid uint32, cols, rows uint32) error {
	ctx, cancel := p.s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&process.UpdateRequest{
		Process: pidSelector(pid),
		Pty:     &process.PTY{Size: &process.PTY_Size{Cols: cols, Rows: rows}},
	})
	p.s.rpcHeaders(req.Header(), "", false)
	_, err := p.s.proc.Update(ctx, req)
	return rpcError(err)
}

// Kill sends SIGKILL to the terminal's shell; false means it was gone.
func (p *PTY) Kill(ctx context.Context, pid uint32) (bool, error) {
	return p.s.signal(ctx, pid, process.Signal_SIGNAL_SIGKILL)
}
