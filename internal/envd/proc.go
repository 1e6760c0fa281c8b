package envd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	rpc "github.com/airlock-sandbox/airlock/proto/process"
)

const (
	pipeChunk = 32 << 10 // max stdout/stderr bytes per data event
	ptyChunk  = 16 << 10 // max PTY bytes per data event
	// drainGrace bounds how long output is drained after envd killed a
	// process: descendants that escaped its process group may hold the pipes.
	drainGrace = 2 * time.Second
)

var (
	errStdinClosed = errors.New("stdin is not open")
	errNotPTY      = errors.New("process has no pty")
	errIsPTY       = errors.New("process runs in a pty")
	errFinished    = errors.New("process has finished")
)

// spawnSpec is everything needed to start one process.
type spawnSpec struct {
	config *rpc.ProcessConfig // as requested, reported by List
	tag    *string
	path   string // resolved executable
	env    []string
	dir    string
	user   *User
	pty    *rpc.PTY_Size // nil: pipes
	stdin  bool          // pipes only: open a stdin pipe
}

// proc is one process started by envd, with its output fan-out.
type proc struct {
	pid    int
	config *rpc.ProcessConfig
	tag    *string
	log    *slog.Logger

	mu       sync.Mutex
	inMu     sync.Mutex // serialises input writes
	stdin    *os.File   // pipe write end; nil when closed or never opened
	tty      *os.File   // PTY master; nil for pipe processes
	subs     map[*subscriber]struct{}
	killed   bool // envd delivered a signal or enforced a deadline
	finished bool
	end      *rpc.ProcessEvent_EndEvent

	outputs []*os.File // read ends pumped into data events
	exitCh  <-chan syscall.WaitStatus
	done    chan struct{} // closed once end is set
}

// subscriber receives a process' events. ch carries data events and is
// closed after the last one; the end event is then in proc.end.
type subscriber struct {
	ch   chan *rpc.ProcessEvent
	gone chan struct{} // closed on unsubscribe so publishers never block on it
}

// spawn forks the process; output is not read until run is called, so that
// the caller can subscribe first without missing anything.
func spawn(sp spawnSpec, log *slog.Logger) (*proc, error) {
	p := &proc{
		config: sp.config,
		tag:    sp.tag,
		subs:   map[*subscriber]struct{}{},
		done:   make(chan struct{}),
	}
	var childFiles []*os.File // closed in the parent after the fork
	defer func() {
		for _, f := range childFiles {
			f.Close()
		}
	}()
	closeParent := func() {
		for _, f := range p.outputs {
			f.Close()
		}
		if p.stdin != nil {
			p.stdin.Close()
		}
	}

	sys := &syscall.SysProcAttr{Credential: credential(sp.user)}
	var fds []uintptr
	if sp.pty != nil {
		master, slave, err := openPTY(sp.pty)
		if err != nil {
			return nil, err
		}
		p.tty = master
		p.outputs = []*os.File{master}
		childFiles = append(childFiles, slave)
		fd := slave.Fd()
		fds = []uintptr{fd, fd, fd}
		sys.Setsid = true // own session and process group; the pty becomes its controlling terminal
		sys.Setctty = true
		sys.Ctty = 0
	} else {
		var stdin *os.File
		if sp.stdin {
			r, w, err := os.Pipe()
			if err != nil {
				return nil, fmt.Errorf("stdin pipe: %w", err)
			}
			p.stdin = w
			stdin = r
		} else {
			f, err := os.Open(os.DevNull)
			if err != nil {
				closeParent()
				return nil, fmt.Errorf("open %s: %w", os.DevNull, err)
			}
			stdin = f
		}
		childFiles = append(childFiles, stdin)
		fds = append(fds, stdin.Fd())
		for range 2 {
			r, w, err := os.Pipe()
			if err != nil {
				closeParent()
				return nil, fmt.Errorf("output pipe: %w", err)
			}
			p.outputs = append(p.outputs, r)
			childFiles = append(childFiles, w)
			fds = append(fds, w.Fd())
		}
		sys.Setpgid = true // own process group, so a kill reaches its children
	}

	argv := append([]string{sp.config.GetCmd()}, sp.config.GetArgs()...)
	pid, exitCh, err := procReaper.forkExec(sp.path, argv, &syscall.ProcAttr{
		Dir:   sp.dir,
		Env:   sp.env,
		Files: fds,
		Sys:   sys,
	})
	if err != nil {
		closeParent()
		return nil, fmt.Errorf("start %s: %w", sp.config.GetCmd(), err)
	}
	p.pid = pid
	p.exitCh = exitCh
	p.log = log.With("pid", pid)
	// envd runs with a very low oom_score_adj that children inherit; reset
	// theirs so the OOM killer picks user processes before envd.
	if err := os.WriteFile("/proc/"+strconv.Itoa(pid)+"/oom_score_adj", []byte("0"), 0); err != nil {
		p.log.Debug("reset oom_score_adj", "err", err)
	}
	return p, nil
}

func credential(u *User) *syscall.Credential {
	if u == nil {
		return nil
	}
	// An unprivileged envd (tests) can only run processes as itself.
	if os.Geteuid() != 0 && int(u.UID) == os.Geteuid() {
		return nil
	}
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: u.Groups}
}

// openPTY allocates a pseudo-terminal of the given size. pty.Open leaves
// the master in blocking mode; envd uses a non-blocking duplicate instead,
// so that deadlines and Close can interrupt reads and writes.
func openPTY(size *rpc.PTY_Size) (master, slave *os.File, err error) {
	m, slave, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("open pty: %w", err)
	}
	fd, err := unix.FcntlInt(m.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	m.Close()
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		slave.Close()
		return nil, nil, fmt.Errorf("duplicate pty master: %w", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := setWinsize(master, size); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// setWinsize resizes a PTY without File.Fd, which would make it blocking.
func setWinsize(f *os.File, s *rpc.PTY_Size) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return fmt.Errorf("resize pty: %w", err)
	}
	ws := &unix.Winsize{Row: uint16(s.GetRows()), Col: uint16(s.GetCols())}
	var ioctlErr error
	if err := rc.Control(func(fd uintptr) {
		ioctlErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws)
	}); err != nil {
		return fmt.Errorf("resize pty: %w", err)
	}
	if ioctlErr != nil {
		return fmt.Errorf("resize pty: %w", ioctlErr)
	}
	return nil
}

// run pumps output to subscribers and publishes the end event once the
// process has exited and its output is drained.
func (p *proc) run(onFinish func(*proc)) {
	var wg sync.WaitGroup
	if p.tty != nil {
		wg.Go(func() { p.pump(p.tty, ptyChunk, ptyData) })
	} else {
		wg.Go(func() { p.pump(p.outputs[0], pipeChunk, stdoutData) })
		wg.Go(func() { p.pump(p.outputs[1], pipeChunk, stderrData) })
	}
	go func() {
		ws := <-p.exitCh
		drained := make(chan struct{})
		go func() {
			wg.Wait()
			close(drained)
		}()
		select {
		case <-drained:
		case <-p.afterKill():
			// Unblock readers held up by escaped descendants.
			for _, f := range p.outputs {
				f.SetReadDeadline(time.Now())
			}
			<-drained
		}
		p.finish(ws)
		p.log.Info("process ended", "status", p.end.GetStatus())
		onFinish(p)
	}()
}

// afterKill fires drainGrace after exit if envd killed the process, and never otherwise.
func (p *proc) afterKill() <-chan time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.killed {
		return nil
	}
	return time.After(drainGrace)
}

func stdoutData(b []byte) *rpc.ProcessEvent_DataEvent {
	return &rpc.ProcessEvent_DataEvent{Output: &rpc.ProcessEvent_DataEvent_Stdout{Stdout: b}}
}

func stderrData(b []byte) *rpc.ProcessEvent_DataEvent {
	return &rpc.ProcessEvent_DataEvent{Output: &rpc.ProcessEvent_DataEvent_Stderr{Stderr: b}}
}

func ptyData(b []byte) *rpc.ProcessEvent_DataEvent {
	return &rpc.ProcessEvent_DataEvent{Output: &rpc.ProcessEvent_DataEvent_Pty{Pty: b}}
}

// pump reads f until EOF (EIO for a PTY whose slave side is closed) and
// publishes each chunk as a data event.
func (p *proc) pump(f *os.File, size int, wrap func([]byte) *rpc.ProcessEvent_DataEvent) {
	buf := make([]byte, size)
	for {
		n, err := f.Read(buf)
		if n > 0 {
			chunk := make([]byte, n)
			copy(chunk, buf[:n])
			p.publish(&rpc.ProcessEvent{Event: &rpc.ProcessEvent_Data{Data: wrap(chunk)}})
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EIO) && !errors.Is(err, os.ErrDeadlineExceeded) {
				p.log.Debug("read output", "err", err)
			}
			return
		}
	}
}

// publish delivers ev to every current subscriber. A slow subscriber slows
// the process down (like a terminal would); one that left is skipped.
func (p *proc) publish(ev *rpc.ProcessEvent) {
	p.mu.Lock()
	subs := make([]*subscriber, 0, len(p.subs))
	for s := range p.subs {
		subs = append(subs, s)
	}
	p.mu.Unlock()
	for _, s := range subs {
		select {
		case s.ch <- ev:
		case <-s.gone:
		}
	}
}

func (p *proc) finish(ws syscall.WaitStatus) {
	end := endEvent(ws)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end = end
	p.finished = true
	for _, f := range p.outputs {
		f.Close()
	}
	if p.stdin != nil {
		p.stdin.Close()
		p.stdin = nil
	}
	p.tty = nil // closed above as one of the outputs
	for s := range p.subs {
		close(s.ch)
	}
	p.subs = nil
	close(p.done)
}

// endEvent renders a wait status the way Go's os.ProcessState does, which
// is what the SDKs show users.
func endEvent(ws syscall.WaitStatus) *rpc.ProcessEvent_EndEvent {
	var e rpc.ProcessEvent_EndEvent
	switch {
	case ws.Exited():
		e.Exited = true
		e.ExitCode = int32(ws.ExitStatus())
		e.Status = "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		e.ExitCode = -1
		e.Status = "signal: " + ws.Signal().String()
		if ws.CoreDump() {
			e.Status += " (core dumped)"
		}
	default:
		e.ExitCode = -1
		e.Status = fmt.Sprintf("unknown wait status %#x", uint32(ws))
	}
	if !(e.Exited && e.ExitCode == 0) {
		msg := e.Status
		e.Error = &msg
	}
	return &e
}

// subscribe registers a new listener. It returns nil when the process has
// already finished; its end event is then available from endEvent.
func (p *proc) subscribe() *subscriber {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return nil
	}
	s := &subscriber{ch: make(chan *rpc.ProcessEvent, 16), gone: make(chan struct{})}
	p.subs[s] = struct{}{}
	return s
}

func (p *proc) unsubscribe(s *subscriber) {
	if s == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.subs[s]; ok {
		delete(p.subs, s)
		close(s.gone)
	}
}

func (p *proc) endEvent() *rpc.ProcessEvent_EndEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.end
}

func (p *proc) hasPTY() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tty != nil
}

// signal delivers sig to the process group; envd starts every process as
// a group leader, so `sh -c 'sleep 100 & wait'` dies as a whole.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.finished {
		return errFinished
	}
	p.killed = true
	err := syscall.Kill(-p.pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		// Group gone (leader reaped, no members left): nothing to signal.
		return nil
	}
	if err != nil {
		return fmt.Errorf("signal %d: %w", p.pid, err)
	}
	return nil
}

// write sends input to the stdin pipe or the PTY. It does not hold p.mu
// while writing: a child that does not read must not block output pumping
// or signals. ctx bounds the wait for pipe space.
func (p *proc) write(ctx context.Context, b []byte, toPTY bool) error {
	p.mu.Lock()
	f, err := p.inputFile(toPTY)
	p.mu.Unlock()
	if err != nil {
		return err
	}
	p.inMu.Lock()
	defer p.inMu.Unlock()
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		f.SetWriteDeadline(time.Now())
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
			f.SetWriteDeadline(time.Time{})
		}
	}()
	if _, err := f.Write(b); err != nil {
		return fmt.Errorf("write input: %w", err)
	}
	return nil
}

func (p *proc) inputFile(toPTY bool) (*os.File, error) {
	switch {
	case p.finished:
		return nil, errFinished
	case toPTY && p.tty == nil:
		return nil, errNotPTY
	case toPTY:
		return p.tty, nil
	case p.tty != nil:
		return nil, errIsPTY
	case p.stdin == nil:
		return nil, errStdinClosed
	}
	return p.stdin, nil
}

func (p *proc) closeStdin() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty != nil {
		return errIsPTY
	}
	if p.stdin == nil {
		return nil
	}
	err := p.stdin.Close()
	p.stdin = nil
	if err != nil {
		return fmt.Errorf("close stdin: %w", err)
	}
	return nil
}

func (p *proc) resize(s *rpc.PTY_Size) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty == nil {
		return errNotPTY
	}
	return setWinsize(p.tty, s)
}

// lookPath finds cmd the way a shell would, but in the child's PATH.
func lookPath(cmd string, env []string) (string, error) {
	if strings.Contains(cmd, "/") {
		return cmd, nil
	}
	pathVar := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar = v
		}
	}
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		candidate := filepath.Join(dir, cmd)
		if fi, err := os.Stat(candidate); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("executable %q not found in PATH: %w", cmd, os.ErrNotExist)
}
