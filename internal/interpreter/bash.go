package interpreter

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"
)

// The bash kernel is one long-lived interactive bash (no PTY) per context.
//
// Each cell's code is handed to the shell as a $'…'-quoted variable and run
// with `eval … </dev/null`, so variables, functions, aliases, cd and exports
// persist, user commands cannot swallow the kernel's own input, and syntax
// errors stay inside the cell. The line after the eval prints an end marker
// carrying a random per-shell nonce and the exit status on stdout and one on
// stderr; the cell ends when both are seen, so output without a trailing
// newline is delimited exactly.
//
// The shell runs interactive (-i, --noediting) because an interactive bash
// reacts to SIGINT like at a terminal: it abandons the current command line
// (also a busy builtin loop) and reads the next line, the marker line.
//
// Error reporting:
//   - last command's status non-zero → ExecError{Name: "ExitCode",
//     Value: "<status>"}.
//   - ctx cancelled → SIGINT to the shell's process group (the shell and its
//     foreground commands); ExecError{Name: "Interrupted"} and Execute returns
//     ctx.Err(). A command that ignores SIGINT is SIGKILLed after
//     bashInterruptGrace; if the shell itself does not come back, it is
//     replaced by a fresh one and the error says that state was lost.
//   - the shell exits (`exit`, `exec` of something that ends, being killed) →
//     ExecError{Name: "ShellExited"} naming the status, and a fresh shell is
//     started transparently (state lost, stated in the error). Execute returns
//     an error wrapping ErrKernelDied only if the fresh shell cannot start.

const (
	bashStartTimeout   = 15 * time.Second
	bashInterruptGrace = 1500 * time.Millisecond
	bashDrainTimeout   = 2 * time.Second
	bashMarkerByte     = 0x1e
)

var bashEnvName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// NewBashKernel starts a bash kernel in opts.Cwd with opts.Env added to the
// server's environment.
func NewBashKernel(ctx context.Context, opts KernelOptions) (Kernel, error) {
	k := &bashKernel{opts: opts}
	sh, err := startBashShell(ctx, opts)
	if err != nil {
		return nil, err
	}
	k.sh = sh
	return k, nil
}

type bashKernel struct {
	opts   KernelOptions
	mu     sync.Mutex // serialises Execute, Restart and Close
	sh     *bashShell
	count  int
	closed bool
}

func (k *bashKernel) Language() string { return "bash" }

func (k *bashKernel) Restart(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return fmt.Errorf("bash kernel closed: %w", ErrKernelDied)
	}
	k.sh.kill()
	k.sh = nil
	k.count = 0
	sh, err := startBashShell(ctx, k.opts)
	if err != nil {
		return err
	}
	k.sh = sh
	return nil
}

func (k *bashKernel) Close() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil
	}
	k.closed = true
	if k.sh != nil {
		k.sh.kill()
		k.sh = nil
	}
	return nil
}

func (k *bashKernel) Execute(ctx context.Context, code string, env map[string]string, out Emitter) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return fmt.Errorf("bash kernel closed: %w", ErrKernelDied)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for name := range env {
		if !bashEnvName.MatchString(name) {
			return fmt.Errorf("bash: invalid environment variable name %q", name)
		}
	}
	if k.sh == nil || k.sh.hasExited() {
		if err := k.replaceShell(ctx); err != nil {
			return err
		}
	}
	k.count++
	out.ExecutionCount(k.count)

	sh := k.sh
	go func() {
		// A failed write means the shell is gone; sh.exited reports that.
		_, _ = io.WriteString(sh.stdin, bashCellScript(code, env, sh.nonce))
	}()

	var (
		outDone, errDone bool
		status           int
		interrupted      bool
		escalation       int
		grace            <-chan time.Time
		done             = ctx.Done()
	)
	for !outDone || !errDone {
		select {
		case ev := <-sh.events:
			switch ev.kind {
			case bashStdout:
				out.Stdout(ev.text, time.Now())
			case bashStderr:
				out.Stderr(ev.text, time.Now())
			case bashStdoutEnd:
				outDone = true
				status = ev.status
			case bashStderrEnd:
				errDone = true
			}
		case <-sh.exited:
			sh.drain(out)
			out.Error(ExecError{
				Name: "ShellExited",
				Value: fmt.Sprintf("bash exited with status %d; a fresh shell was started "+
					"(variables, functions, working directory and exports were reset)", sh.exitCode),
			})
			if err := k.replaceShell(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			if interrupted {
				return ctx.Err()
			}
			return nil
		case <-done:
			done = nil
			interrupted = true
			sh.signalGroup(syscall.SIGINT)
			grace = time.After(bashInterruptGrace)
		case <-grace:
			escalation++
			if escalation == 1 {
				// Something in the foreground ignores SIGINT: kill the
				// shell's children, keep the shell.
				sh.killChildren()
				grace = time.After(bashInterruptGrace)
				continue
			}
			sh.drain(out)
			out.Error(ExecError{
				Name:  "Interrupted",
				Value: "execution interrupted; the shell did not respond and was restarted (all shell state was lost)",
			})
			if err := k.replaceShell(context.WithoutCancel(ctx)); err != nil {
				return err
			}
			return ctx.Err()
		}
	}
	switch {
	case interrupted:
		out.Error(ExecError{Name: "Interrupted", Value: "execution interrupted"})
		return ctx.Err()
	case status != 0:
		out.Error(ExecError{Name: "ExitCode", Value: strconv.Itoa(status), Traceback: fmt.Sprintf("exit status %d", status)})
	}
	return nil
}

// replaceShell kills the current shell (if any) and starts a fresh one,
// keeping the execution count.
func (k *bashKernel) replaceShell(ctx context.Context) error {
	if k.sh != nil {
		k.sh.kill()
		k.sh = nil
	}
	sh, err := startBashShell(ctx, k.opts)
	if err != nil {
		return fmt.Errorf("%w: restarting bash: %w", ErrKernelDied, err)
	}
	k.sh = sh
	return nil
}

// bashCellScript is what the kernel writes to the shell for one cell. The
// eval stands alone on its line so that SIGINT abandons only it.
func bashCellScript(code string, env map[string]string, nonce string) string {
	var b strings.Builder
	b.WriteString("__airlock_code=" + bashQuote(code) + "\n")
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	slices.Sort(names)
	for i, name := range names {
		fmt.Fprintf(&b, "if [ -n \"${%[1]s+x}\" ]; then __airlock_o%[2]d=\"$%[1]s\"; __airlock_s%[2]d=1; else __airlock_s%[2]d=0; fi; export %[1]s=%[3]s\n",
			name, i, bashQuote(env[name]))
	}
	b.WriteString("builtin eval \"$__airlock_code\" </dev/null\n")
	b.WriteString("__airlock_st=$?; ")
	for i, name := range names {
		fmt.Fprintf(&b, "if [ \"$__airlock_s%[2]d\" = 1 ]; then export %[1]s=\"$__airlock_o%[2]d\"; else builtin unset %[1]s; fi; builtin unset __airlock_o%[2]d __airlock_s%[2]d; ",
			name, i)
	}
	b.WriteString("builtin unset __airlock_code; ")
	b.WriteString(bashMarkerCommands(nonce, "\"$__airlock_st\""))
	b.WriteString("; builtin unset __airlock_st\n")
	return b.String()
}

// bashMarkerCommands prints the stdout end marker (with status) and the
// stderr end marker.
func bashMarkerCommands(nonce, status string) string {
	return fmt.Sprintf(`builtin printf '\036%s#%%d\036' %s; builtin printf '\036%s$\036' >&2`, nonce, status, nonce)
}

// bashQuote quotes s as a bash $'…' string.
func bashQuote(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '\'':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

type bashEventKind int

const (
	bashStdout bashEventKind = iota
	bashStderr
	bashStdoutEnd
	bashStderrEnd
)

type bashEvent struct {
	kind   bashEventKind
	text   string
	status int
}

// bashShell is one running bash process.
type bashShell struct {
	groupProc
	stdin    io.WriteCloser
	nonce    string
	events   chan bashEvent
	exitCode int
}

func startBashShell(ctx context.Context, opts KernelOptions) (*bashShell, error) {
	nonceBytes := make([]byte, 12)
	if _, err := rand.Read(nonceBytes); err != nil {
		return nil, fmt.Errorf("bash nonce: %w", err)
	}
	sh := &bashShell{
		groupProc: groupProc{exited: make(chan struct{})},
		nonce:     "airlock-" + hex.EncodeToString(nonceBytes),
		events:    make(chan bashEvent, 256),
	}
	cmd := exec.Command("bash", "--noprofile", "--norc", "--noediting", "-i")
	cmd.Dir = opts.Cwd
	cmd.Env = kernelEnv(opts.Env)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("bash stdin: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("bash stdout: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("bash stderr: %w", err)
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("starting bash: %w", err)
	}
	sh.cmd, sh.stdin = cmd, stdin

	var readers sync.WaitGroup
	readers.Add(2)
	go func() { defer readers.Done(); sh.read(outR, bashStdout) }()
	go func() { defer readers.Done(); sh.read(errR, bashStderr) }()
	go sh.watch(&readers, bashDrainTimeout, func(ps *os.ProcessState) { sh.exitCode = ps.ExitCode() }, outR, errR)

	init := "PS1=''; PS2=''; PS0=''; PS4='+ '; builtin unset PROMPT_COMMAND MAILCHECK HISTFILE; set +H; set +o history\n" +
		bashMarkerCommands(sh.nonce, "0") + "\n"
	go func() { _, _ = io.WriteString(stdin, init) }()
	if err := sh.waitReady(ctx); err != nil {
		sh.kill()
		return nil, err
	}
	return sh, nil
}

// waitReady discards the shell's start-up noise (job control warnings, the
// first prompt) up to the init markers.
func (sh *bashShell) waitReady(ctx context.Context) error {
	timeout := time.NewTimer(bashStartTimeout)
	defer timeout.Stop()
	outDone, errDone := false, false
	for !outDone || !errDone {
		select {
		case ev := <-sh.events:
			switch ev.kind {
			case bashStdoutEnd:
				outDone = true
			case bashStderrEnd:
				errDone = true
			}
		case <-sh.exited:
			return fmt.Errorf("bash exited during start-up with status %d", sh.exitCode)
		case <-timeout.C:
			return errors.New("bash did not start in time")
		case <-ctx.Done():
			return fmt.Errorf("starting bash: %w", ctx.Err())
		}
	}
	return nil
}

func (sh *bashShell) read(r io.Reader, kind bashEventKind) {
	endKind, prefix := bashStdoutEnd, []byte{bashMarkerByte}
	if kind == bashStderr {
		endKind = bashStderrEnd
		prefix = append(prefix, sh.nonce+"$"...)
	} else {
		prefix = append(prefix, sh.nonce+"#"...)
	}
	sc := kernelMarkerScanner{prefix: prefix, end: bashMarkerByte}
	buf := make([]byte, 32*1024)
	for {
		n, err := r.Read(buf)
		sc.feed(buf[:n], err != nil,
			func(text string) { sh.events <- bashEvent{kind: kind, text: text} },
			func(payload string) {
				st, _ := strconv.Atoi(payload)
				sh.events <- bashEvent{kind: endKind, status: st}
			})
		if err != nil {
			return
		}
	}
}

// drain forwards output still queued after the shell went away.
func (sh *bashShell) drain(out Emitter) {
	for {
		select {
		case ev := <-sh.events:
			switch ev.kind {
			case bashStdout:
				out.Stdout(ev.text, time.Now())
			case bashStderr:
				out.Stderr(ev.text, time.Now())
			}
		default:
			return
		}
	}
}

// killChildren SIGKILLs every process of the shell's group except the shell.
func (sh *bashShell) killChildren() {
	pid := sh.cmd.Process.Pid
	for _, p := range kernelGroupMembers(pid) {
		if p != pid {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
	}
}

// kill stops the shell and everything in its process group and waits until
// it is gone.
func (sh *bashShell) kill() {
	sh.stdin.Close()
	sh.killGroup()
}

// kernelMarkerScanner splits a byte stream into text and markers of the form
// prefix payload end. Text is released as soon as it cannot be part of a
// marker, never splitting a UTF-8 sequence.
type kernelMarkerScanner struct {
	prefix []byte
	end    byte
	buf    []byte
}

func (s *kernelMarkerScanner) feed(data []byte, eof bool, text func(string), marker func(string)) {
	s.buf = append(s.buf, data...)
	for {
		i := bytes.Index(s.buf, s.prefix)
		if i < 0 {
			break
		}
		j := bytes.IndexByte(s.buf[i+len(s.prefix):], s.end)
		if j < 0 {
			if i > 0 {
				text(string(s.buf[:i]))
				s.buf = slices.Clone(s.buf[i:])
			}
			if eof {
				break
			}
			return
		}
		if i > 0 {
			text(string(s.buf[:i]))
		}
		marker(string(s.buf[i+len(s.prefix) : i+len(s.prefix)+j]))
		s.buf = slices.Clone(s.buf[i+len(s.prefix)+j+1:])
	}
	n := len(s.buf)
	if !eof {
		n -= kernelPartialPrefix(s.buf, s.prefix)
		n = kernelUTF8Complete(s.buf[:n])
	}
	if n > 0 {
		text(string(s.buf[:n]))
		s.buf = slices.Clone(s.buf[n:])
	}
}

// kernelPartialPrefix is the length of the longest suffix of b that is a
// proper prefix of prefix.
func kernelPartialPrefix(b, prefix []byte) int {
	for n := min(len(prefix)-1, len(b)); n > 0; n-- {
		if bytes.HasSuffix(b, prefix[:n]) {
			return n
		}
	}
	return 0
}

// kernelUTF8Complete is the length of b without a trailing incomplete UTF-8
// sequence.
func kernelUTF8Complete(b []byte) int {
	for back := 1; back <= 3 && back <= len(b); back++ {
		c := b[len(b)-back]
		if c < 0x80 {
			return len(b)
		}
		if utf8.RuneStart(c) {
			if utf8.FullRune(b[len(b)-back:]) {
				return len(b)
			}
			return len(b) - back
		}
	}
	return len(b)
}

var _ Kernel = (*bashKernel)(nil)
