package interpreter

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-zeromq/zmq4"
)

// JupyterSpec describes how to run one Jupyter kernel and speak its
// language for the few snippets the server injects.
type JupyterSpec struct {
	Language string   // normalised language name reported by Language()
	Argv     []string // command; "{connection_file}" is replaced
	// InterruptMode is "signal" (SIGINT to the kernel, the default) or
	// "message" (interrupt_request on the control channel).
	InterruptMode string
	Env           map[string]string // added to the kernel's environment
	// Startup is run silently once the kernel answers (may be empty).
	Startup string
	// SetEnv returns code that sets vars for good; PushEnv code that saves
	// the current values and sets vars; PopEnv code that restores them.
	SetEnv  func(vars map[string]string) string
	PushEnv func(vars map[string]string) string
	PopEnv  string
}

const (
	jupyterStartTimeout    = 60 * time.Second
	jupyterInterruptGrace  = 3 * time.Second
	jupyterInterruptGiveUp = 10 * time.Second
	jupyterSilentTimeout   = 30 * time.Second
)

// NewJupyterKernel starts the kernel described by spec and waits until it
// answers kernel_info and publishes on iopub.
func NewJupyterKernel(ctx context.Context, opts KernelOptions, spec JupyterSpec) (Kernel, error) {
	if spec.Language == "" {
		spec.Language = opts.Language
	}
	k := &jupyterKernel{opts: opts, spec: spec, log: slog.Default().With("kernel", spec.Language)}
	p, err := startJupyter(ctx, opts, spec)
	if err != nil {
		return nil, err
	}
	k.proc = p
	return k, nil
}

type jupyterKernel struct {
	opts KernelOptions
	spec JupyterSpec
	log  *slog.Logger

	mu     sync.Mutex // guards proc and closed
	proc   *jupyterProc
	closed bool
}

var (
	_ Kernel    = (*jupyterKernel)(nil)
	_ envSetter = (*jupyterKernel)(nil)
)

func (k *jupyterKernel) Language() string { return k.spec.Language }

func (k *jupyterKernel) current() (*jupyterProc, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, fmt.Errorf("%w: kernel closed", ErrKernelDied)
	}
	return k.proc, nil
}

// Execute runs one cell. See Kernel.
func (k *jupyterKernel) Execute(ctx context.Context, code string, env map[string]string, out Emitter) error {
	p, err := k.current()
	if err != nil {
		return err
	}
	if len(env) > 0 && k.spec.PushEnv != nil {
		if err := p.silent(ctx, k.spec.PushEnv(env)); err != nil {
			return fmt.Errorf("set execution env: %w", err)
		}
		defer func() {
			// Restore even if the cell was interrupted.
			rctx, cancel := context.WithTimeout(context.Background(), jupyterSilentTimeout)
			defer cancel()
			if err := p.silent(rctx, k.spec.PopEnv); err != nil {
				k.log.Warn("restoring env after execution", "err", err)
			}
		}()
	}
	return p.execute(ctx, code, out, k.spec.InterruptMode)
}

// SetEnv sets sandbox-level variables for the kernel's lifetime.
func (k *jupyterKernel) SetEnv(ctx context.Context, env map[string]string) error {
	if k.spec.SetEnv == nil || len(env) == 0 {
		return nil
	}
	p, err := k.current()
	if err != nil {
		return err
	}
	return p.silent(ctx, k.spec.SetEnv(env))
}

// Restart replaces the kernel process with a fresh one.
func (k *jupyterKernel) Restart(ctx context.Context) error {
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return fmt.Errorf("%w: kernel closed", ErrKernelDied)
	}
	old := k.proc
	k.mu.Unlock()
	old.close()
	p, err := startJupyter(ctx, k.opts, k.spec)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		p.close()
		return fmt.Errorf("%w: kernel closed", ErrKernelDied)
	}
	k.proc = p
	return nil
}

// Close kills the kernel process group.
func (k *jupyterKernel) Close() error {
	k.mu.Lock()
	k.closed = true
	p := k.proc
	k.mu.Unlock()
	p.close()
	return nil
}

// jupyterProc is one kernel process and its channels.
type jupyterProc struct {
	cmd     *exec.Cmd
	dir     string
	signer  signer
	session string
	cancel  context.CancelFunc // closes the sockets
	shell   zmq4.Socket
	control zmq4.Socket
	iopub   zmq4.Socket
	stderr  *tailBuffer

	exited  chan struct{}
	exitErr error

	mu      sync.Mutex
	waiters map[string]*waiter // by request msg_id
}

// waiter receives the shell reply and iopub messages of one request.
type waiter struct {
	ch   chan *jupyterMsg
	done chan struct{}
}

type connectionInfo struct {
	ShellPort       int    `json:"shell_port"`
	IOPubPort       int    `json:"iopub_port"`
	StdinPort       int    `json:"stdin_port"`
	ControlPort     int    `json:"control_port"`
	HBPort          int    `json:"hb_port"`
	IP              string `json:"ip"`
	Key             string `json:"key"`
	Transport       string `json:"transport"`
	SignatureScheme string `json:"signature_scheme"`
	KernelName      string `json:"kernel_name"`
}

func startJupyter(ctx context.Context, opts KernelOptions, spec JupyterSpec) (*jupyterProc, error) {
	ctx, cancelStart := context.WithTimeout(ctx, jupyterStartTimeout)
	defer cancelStart()
	if len(spec.Argv) == 0 {
		return nil, errors.New("jupyter: empty kernel command")
	}
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	keyBytes := make([]byte, 32)
	_, _ = rand.Read(keyBytes)
	info := connectionInfo{
		ShellPort: ports[0], IOPubPort: ports[1], StdinPort: ports[2], ControlPort: ports[3], HBPort: ports[4],
		IP: "127.0.0.1", Key: hex.EncodeToString(keyBytes), Transport: "tcp",
		SignatureScheme: "hmac-sha256", KernelName: spec.Language,
	}
	dir, err := os.MkdirTemp("", "airlock-kernel-")
	if err != nil {
		return nil, fmt.Errorf("jupyter: %w", err)
	}
	connFile := filepath.Join(dir, "connection.json")
	raw, _ := json.Marshal(info)
	if err := os.WriteFile(connFile, raw, 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("jupyter: %w", err)
	}

	argv := make([]string, len(spec.Argv))
	for i, a := range spec.Argv {
		argv[i] = strings.ReplaceAll(a, "{connection_file}", connFile)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = opts.Cwd
	env := maps.Clone(spec.Env)
	if env == nil {
		env = map[string]string{}
	}
	maps.Copy(env, opts.Env)
	cmd.Env = mergeEnv(os.Environ(), env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	tail := newTailBuffer(8 << 10)
	cmd.Stdout, cmd.Stderr = tail, tail
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("jupyter: start %s kernel: %w", spec.Language, err)
	}

	sctx, cancel := context.WithCancel(context.Background())
	p := &jupyterProc{
		cmd: cmd, dir: dir, signer: signer{key: []byte(info.Key)}, session: newID(), cancel: cancel,
		stderr: tail, exited: make(chan struct{}), waiters: map[string]*waiter{},
	}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.exited)
		cancel()
	}()
	if err := p.connect(ctx, sctx, info); err != nil {
		p.close()
		return nil, err
	}
	if spec.Startup != "" {
		if err := p.silent(ctx, spec.Startup); err != nil {
			p.close()
			return nil, fmt.Errorf("jupyter: %s kernel startup code: %w", spec.Language, err)
		}
	}
	return p, nil
}

// connect dials the channels and waits until the kernel answers on shell
// and iopub (the subscription is only live once a message got through).
func (p *jupyterProc) connect(ctx, sctx context.Context, info connectionInfo) error {
	addr := func(port int) string { return fmt.Sprintf("tcp://%s:%d", info.IP, port) }
	opts := []zmq4.Option{zmq4.WithDialerRetry(50 * time.Millisecond), zmq4.WithDialerMaxRetries(-1)}
	p.shell = zmq4.NewDealer(sctx, opts...)
	p.control = zmq4.NewDealer(sctx, opts...)
	p.iopub = zmq4.NewSub(sctx, opts...)
	dial := func(s zmq4.Socket, port int) error {
		errc := make(chan error, 1)
		go func() { errc <- s.Dial(addr(port)) }()
		select {
		case err := <-errc:
			return err
		case <-ctx.Done():
			return p.startErr(ctx.Err())
		case <-p.exited:
			return p.startErr(nil)
		}
	}
	for _, d := range []struct {
		s    zmq4.Socket
		port int
	}{{p.shell, info.ShellPort}, {p.control, info.ControlPort}, {p.iopub, info.IOPubPort}} {
		if err := dial(d.s, d.port); err != nil {
			return fmt.Errorf("jupyter: connect: %w", err)
		}
	}
	if err := p.iopub.SetOption(zmq4.OptionSubscribe, ""); err != nil {
		return fmt.Errorf("jupyter: subscribe iopub: %w", err)
	}
	go p.read(p.shell)
	go p.read(p.control)
	go p.read(p.iopub)

	for {
		id, w, err := p.request(p.shell, "kernel_info_request", map[string]any{})
		if err != nil {
			return err
		}
		gotReply, gotIOPub := false, false
		timer := time.NewTimer(500 * time.Millisecond)
	wait:
		for !gotReply || !gotIOPub {
			select {
			case m := <-w.ch:
				if m.Header.MsgType == "kernel_info_reply" {
					gotReply = true
				} else {
					gotIOPub = true
				}
			case <-timer.C:
				break wait
			case <-ctx.Done():
				timer.Stop()
				p.forget(id)
				return p.startErr(ctx.Err())
			case <-p.exited:
				timer.Stop()
				p.forget(id)
				return p.startErr(nil)
			}
		}
		timer.Stop()
		p.forget(id)
		if gotReply && gotIOPub {
			return nil
		}
	}
}

// startErr describes a kernel that did not come up, with its output.
func (p *jupyterProc) startErr(cause error) error {
	msg := strings.TrimSpace(p.stderr.String())
	select {
	case <-p.exited:
		return fmt.Errorf("%w: kernel exited during startup (%v): %s", ErrKernelDied, p.exitErr, msg)
	default:
		return fmt.Errorf("jupyter: kernel not ready: %w: %s", cause, msg)
	}
}

// read dispatches a channel's messages to the waiter of their parent.
func (p *jupyterProc) read(s zmq4.Socket) {
	for {
		zm, err := s.Recv()
		if err != nil {
			return
		}
		m, err := p.signer.decode(zm.Frames)
		if err != nil {
			continue
		}
		p.mu.Lock()
		w := p.waiters[m.Parent.MsgID]
		p.mu.Unlock()
		if w == nil {
			continue
		}
		select {
		case w.ch <- m:
		case <-w.done:
		case <-p.exited:
			return
		}
	}
}

// request sends a message and registers a waiter for its replies.
func (p *jupyterProc) request(s zmq4.Socket, msgType string, content any) (string, *waiter, error) {
	id, frames, err := p.signer.encode(p.session, msgType, content)
	if err != nil {
		return "", nil, err
	}
	w := &waiter{ch: make(chan *jupyterMsg, 64), done: make(chan struct{})}
	p.mu.Lock()
	p.waiters[id] = w
	p.mu.Unlock()
	if err := s.SendMulti(zmq4.NewMsgFrom(frames...)); err != nil {
		p.forget(id)
		select {
		case <-p.exited:
			return "", nil, p.diedErr()
		default:
		}
		return "", nil, fmt.Errorf("jupyter: send %s: %w", msgType, err)
	}
	return id, w, nil
}

func (p *jupyterProc) forget(id string) {
	p.mu.Lock()
	w := p.waiters[id]
	delete(p.waiters, id)
	p.mu.Unlock()
	if w != nil {
		close(w.done)
	}
}

// diedErr reports the kernel's exit; its output goes to the log only (for
// ipykernel it is mostly the connection banner).
func (p *jupyterProc) diedErr() error {
	slog.Debug("kernel exited", "err", p.exitErr, "output", p.stderr.String())
	return fmt.Errorf("%w (%v)", ErrKernelDied, p.exitErr)
}

func (p *jupyterProc) interrupt(mode string) {
	if mode == "message" {
		if id, _, err := p.request(p.control, "interrupt_request", map[string]any{}); err == nil {
			time.AfterFunc(jupyterInterruptGrace, func() { p.forget(id) })
		}
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
}

// close kills the kernel's process group and releases its resources.
func (p *jupyterProc) close() {
	if p == nil {
		return
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
	p.cancel()
	for _, s := range []zmq4.Socket{p.shell, p.control, p.iopub} {
		if s != nil {
			_ = s.Close()
		}
	}
	os.RemoveAll(p.dir)
}

// freePorts reserves n distinct loopback ports and releases them for the
// kernel to bind (the usual Jupyter race, retried by restarting).
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("jupyter: reserve port: %w", err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// mergeEnv returns base with vars set (replacing existing entries).
func mergeEnv(base []string, vars map[string]string) []string {
	out := make([]string, 0, len(base)+len(vars))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := vars[k]; !ok {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append([]byte(nil), t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}
