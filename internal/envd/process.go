package envd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"syscall"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
	rpc "github.com/airlock-sandbox/airlock/proto/process"
	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
)

const (
	// defaultPath is used when envd itself has no PATH (e.g. as PID 1).
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

var errDeadline = errors.New("process deadline exceeded")

// Process implements the process.Process Connect service.
type Process struct {
	state *State
	log   *slog.Logger
	procs *procTable
}

var _ processconnect.ProcessHandler = (*Process)(nil)

// NewProcess returns the process service working on st's configuration.
func NewProcess(st *State, log *slog.Logger) *Process {
	return &Process{state: st, log: log, procs: newProcTable()}
}

func userError(err error) error {
	if errors.Is(err, ErrUnknownUser) {
		return rpcError(errdefs.Mark(errdefs.ErrUnauthorized, err))
	}
	return rpcError(err)
}

// Start spawns a process and streams its events until it ends.
func (s *Process) Start(ctx context.Context, req *connect.Request[rpc.StartRequest], stream *connect.ServerStream[rpc.StartResponse]) error {
	u, err := s.state.UserFromHeader(req.Header())
	if err != nil {
		return userError(err)
	}
	cfg := req.Msg.GetProcess()
	if cfg == nil || cfg.GetCmd() == "" {
		return rpcError(errdefs.Newf(errdefs.ErrInvalid, "process.cmd is required"))
	}
	dir := s.state.ResolvePath(u, cfg.GetCwd())
	if fi, err := os.Stat(dir); err != nil {
		return rpcError(errdefs.Newf(errdefs.ErrInvalid, "cwd '%s' does not exist", dir))
	} else if !fi.IsDir() {
		return rpcError(errdefs.Newf(errdefs.ErrInvalid, "cwd '%s' is not a directory", dir))
	}
	env := s.buildEnv(u, cfg.GetEnvs())
	path, err := lookPath(cfg.GetCmd(), env)
	if err != nil {
		return rpcError(fmt.Errorf("error starting process: %w", err))
	}

	sp := spawnSpec{
		config: &rpc.ProcessConfig{Cmd: cfg.GetCmd(), Args: cfg.GetArgs(), Envs: cfg.GetEnvs(), Cwd: cfg.Cwd},
		tag:    req.Msg.Tag,
		path:   path,
		env:    env,
		dir:    dir,
		user:   u,
		stdin:  req.Msg.Stdin == nil || *req.Msg.Stdin, // absent means open, for old clients
	}
	if sp.config.Envs == nil {
		sp.config.Envs = map[string]string{}
	}
	if req.Msg.Pty != nil {
		sp.pty = req.Msg.GetPty().GetSize()
		if sp.pty == nil {
			sp.pty = &rpc.PTY_Size{Cols: 80, Rows: 24}
		}
	}
	p, err := spawn(sp, s.log)
	if err != nil {
		return rpcError(fmt.Errorf("error starting process: %w", err))
	}
	sub := p.subscribe() // before run: no output can be missed
	s.procs.add(p)
	p.run(s.procs.retire)
	p.log.Info("process started", "cmd", cfg.GetCmd(), "user", u.Name, "pty", sp.pty != nil)

	// The deadline belongs to the process, not to this request: a client
	// that disconnects early leaves it running until the deadline.
	if dl, ok := ctx.Deadline(); ok {
		t := time.AfterFunc(time.Until(dl), func() {
			if err := p.signal(syscall.SIGKILL); err == nil {
				p.log.Info("process killed at deadline")
			}
		})
		go func() {
			<-p.done
			t.Stop()
		}()
	}

	return s.stream(ctx, req.Header(), p, sub, func(ev *rpc.ProcessEvent) error {
		return stream.Send(&rpc.StartResponse{Event: ev})
	})
}

// Connect re-attaches to a running (or recently finished) process.
func (s *Process) Connect(ctx context.Context, req *connect.Request[rpc.ConnectRequest], stream *connect.ServerStream[rpc.ConnectResponse]) error {
	p, err := s.procs.find(req.Msg.GetProcess(), true)
	if err != nil {
		return notFound(req.Msg.GetProcess())
	}
	return s.stream(ctx, req.Header(), p, p.subscribe(), func(ev *rpc.ProcessEvent) error {
		return stream.Send(&rpc.ConnectResponse{Event: ev})
	})
}

// stream sends start, then the subscriber's events with keepalives in
// between (keepaliveInterval is shared with WatchDir), then end. sub is nil for a process that has already finished.
func (s *Process) stream(ctx context.Context, h http.Header, p *proc, sub *subscriber, send func(*rpc.ProcessEvent) error) error {
	defer p.unsubscribe(sub)
	if err := send(&rpc.ProcessEvent{Event: &rpc.ProcessEvent_Start{Start: &rpc.ProcessEvent_StartEvent{Pid: uint32(p.pid)}}}); err != nil {
		return err
	}
	var events <-chan *rpc.ProcessEvent
	if sub != nil {
		events = sub.ch
	} else {
		closed := make(chan *rpc.ProcessEvent)
		close(closed)
		events = closed
	}
	interval := keepaliveInterval(h)
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		var ev *rpc.ProcessEvent
		select {
		case <-ctx.Done():
			return contextError(ctx)
		case <-timer.C:
			ev = &rpc.ProcessEvent{Event: &rpc.ProcessEvent_Keepalive{Keepalive: &rpc.ProcessEvent_KeepAlive{}}}
		case data, ok := <-events:
			if !ok {
				if ctx.Err() != nil {
					return contextError(ctx)
				}
				// The deadline kill may win the race against ctx's own timer.
				if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
					return rpcError(errdefs.Mark(errdefs.ErrTimeout, errDeadline))
				}
				return send(&rpc.ProcessEvent{Event: &rpc.ProcessEvent_End{End: p.endEvent()}})
			}
			ev = data
		}
		if err := send(ev); err != nil {
			return err
		}
		timer.Reset(interval)
	}
}

func contextError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return rpcError(errdefs.Mark(errdefs.ErrTimeout, errDeadline))
	}
	return rpcError(ctx.Err())
}

func notFound(sel *rpc.ProcessSelector) error {
	switch s := sel.GetSelector().(type) {
	case *rpc.ProcessSelector_Pid:
		return rpcError(errdefs.Newf(errdefs.ErrNotFound, "process with pid %d not found", s.Pid))
	case *rpc.ProcessSelector_Tag:
		return rpcError(errdefs.Newf(errdefs.ErrNotFound, "process with tag %q not found", s.Tag))
	}
	return rpcError(errdefs.Newf(errdefs.ErrNotFound, "process not found: no selector"))
}

// buildEnv layers the user's basics, the sandbox env and the request env;
// later layers win.
func (s *Process) buildEnv(u *User, req map[string]string) []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	vars := map[string]string{"PATH": path, "HOME": u.Home, "USER": u.Name, "LOGNAME": u.Name}
	order := []string{"PATH", "HOME", "USER", "LOGNAME"}
	add := func(m map[string]string) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys) // deterministic environment order
		for _, k := range keys {
			if _, seen := vars[k]; !seen {
				order = append(order, k)
			}
			vars[k] = m[k]
		}
	}
	add(s.state.Config().EnvVars)
	add(req)
	env := make([]string, 0, len(order))
	for _, k := range order {
		env = append(env, k+"="+vars[k])
	}
	return env
}

// List returns the processes that are still running.
func (s *Process) List(_ context.Context, _ *connect.Request[rpc.ListRequest]) (*connect.Response[rpc.ListResponse], error) {
	resp := &rpc.ListResponse{}
	for _, p := range s.procs.list() {
		resp.Processes = append(resp.Processes, &rpc.ProcessInfo{Config: p.config, Pid: uint32(p.pid), Tag: p.tag})
	}
	slices.SortFunc(resp.Processes, func(a, b *rpc.ProcessInfo) int { return int(a.Pid) - int(b.Pid) })
	return connect.NewResponse(resp), nil
}

// SendInput writes to a process' stdin pipe or PTY.
func (s *Process) SendInput(ctx context.Context, req *connect.Request[rpc.SendInputRequest]) (*connect.Response[rpc.SendInputResponse], error) {
	p, err := s.procs.find(req.Msg.GetProcess(), false)
	if err != nil {
		return nil, notFound(req.Msg.GetProcess())
	}
	if err := writeInput(ctx, p, req.Msg.GetInput()); err != nil {
		return nil, err
	}
	return connect.NewResponse(&rpc.SendInputResponse{}), nil
}

func writeInput(ctx context.Context, p *proc, in *rpc.ProcessInput) error {
	var err error
	switch v := in.GetInput().(type) {
	case *rpc.ProcessInput_Stdin:
		err = p.write(ctx, v.Stdin, false)
	case *rpc.ProcessInput_Pty:
		err = p.write(ctx, v.Pty, true)
	default:
		return rpcError(errdefs.Newf(errdefs.ErrInvalid, "input must set stdin or pty"))
	}
	if err != nil {
		return rpcError(err)
	}
	return nil
}

// StreamInput is SendInput as a client stream: a start event selecting the
// process, then data events.
func (s *Process) StreamInput(ctx context.Context, stream *connect.ClientStream[rpc.StreamInputRequest]) (*connect.Response[rpc.StreamInputResponse], error) {
	var p *proc
	for stream.Receive() {
		switch ev := stream.Msg().GetEvent().(type) {
		case *rpc.StreamInputRequest_Start:
			found, err := s.procs.find(ev.Start.GetProcess(), false)
			if err != nil {
				return nil, notFound(ev.Start.GetProcess())
			}
			p = found
		case *rpc.StreamInputRequest_Data:
			if p == nil {
				return nil, rpcError(errdefs.Newf(errdefs.ErrConflict, "start event must come first"))
			}
			if err := writeInput(ctx, p, ev.Data.GetInput()); err != nil {
				return nil, err
			}
		}
	}
	if err := stream.Err(); err != nil {
		return nil, err
	}
	return connect.NewResponse(&rpc.StreamInputResponse{}), nil
}

// CloseStdin closes a process' stdin pipe; closing twice is fine.
func (s *Process) CloseStdin(_ context.Context, req *connect.Request[rpc.CloseStdinRequest]) (*connect.Response[rpc.CloseStdinResponse], error) {
	p, err := s.procs.find(req.Msg.GetProcess(), false)
	if err != nil {
		return nil, notFound(req.Msg.GetProcess())
	}
	if err := p.closeStdin(); err != nil {
		if errors.Is(err, errIsPTY) {
			// Outside the vocabulary on purpose: E2B's envd answers Unknown here.
			return nil, connect.NewError(connect.CodeUnknown, fmt.Errorf("%w: send Ctrl-D (0x04) as input instead", err))
		}
		return nil, rpcError(err)
	}
	return connect.NewResponse(&rpc.CloseStdinResponse{}), nil
}

// SendSignal delivers SIGKILL or SIGTERM to a process' group.
func (s *Process) SendSignal(_ context.Context, req *connect.Request[rpc.SendSignalRequest]) (*connect.Response[rpc.SendSignalResponse], error) {
	var sig syscall.Signal
	switch req.Msg.GetSignal() {
	case rpc.Signal_SIGNAL_SIGKILL:
		sig = syscall.SIGKILL
	case rpc.Signal_SIGNAL_SIGTERM:
		sig = syscall.SIGTERM
	default:
		return nil, rpcError(errdefs.Newf(errdefs.ErrNotSupported, "signal %s is not supported", req.Msg.GetSignal()))
	}
	p, err := s.procs.find(req.Msg.GetProcess(), false)
	if err != nil {
		return nil, notFound(req.Msg.GetProcess())
	}
	if err := p.signal(sig); err != nil {
		if errors.Is(err, errFinished) {
			return nil, notFound(req.Msg.GetProcess())
		}
		return nil, rpcError(err)
	}
	p.log.Info("signal sent", "signal", sig)
	return connect.NewResponse(&rpc.SendSignalResponse{}), nil
}

// Update resizes a process' PTY.
func (s *Process) Update(_ context.Context, req *connect.Request[rpc.UpdateRequest]) (*connect.Response[rpc.UpdateResponse], error) {
	p, err := s.procs.find(req.Msg.GetProcess(), false)
	if err != nil {
		return nil, notFound(req.Msg.GetProcess())
	}
	if size := req.Msg.GetPty().GetSize(); size != nil {
		if err := p.resize(size); err != nil {
			return nil, rpcError(err)
		}
	} else if !p.hasPTY() {
		return nil, rpcError(errNotPTY)
	}
	return connect.NewResponse(&rpc.UpdateResponse{}), nil
}
