package buildstep

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// execSpec is how a step's commands run: as whom, where, with what.
type execSpec struct {
	acct  *account
	dir   string
	env   []string
	shell string
}

// prepare resolves a step's user, working directory and environment.
func prepare(userSpec, workdir string, envs []string) (*execSpec, error) {
	a, err := lookupAccount(userSpec)
	if err != nil {
		return nil, err
	}
	dir := workdir
	if dir == "" {
		// The home directory, if there is one (nobody's is /nonexistent).
		dir = "/"
		if fi, err := os.Stat(a.home); err == nil && fi.IsDir() {
			dir = a.home
		}
	} else if fi, err := os.Stat(dir); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fail(exitHelper, "workdir '%s': %v", workdir, err)
	} else if !fi.IsDir() {
		return nil, fail(exitHelper, "workdir '%s': not a directory", workdir)
	}
	env := []string{"PATH=" + defaultPath, "HOME=" + a.home, "USER=" + a.name, "LOGNAME=" + a.name, "LANG=C.UTF-8"}
	for _, kv := range envs {
		env = setEnv(env, kv)
	}
	shell := "/bin/sh"
	if fi, err := os.Stat("/bin/bash"); err == nil && !fi.IsDir() {
		shell = "/bin/bash"
	}
	return &execSpec{acct: a, dir: dir, env: env, shell: shell}, nil
}

// setEnv sets kv in env, in place of an earlier value of its key.
func setEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	for i, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek == k {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// command is script run by the shell as the spec says; group puts it in
// a process group of its own, which ctx's end kills.
func (s *execSpec) command(ctx context.Context, script string, group bool) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.shell, "-c", script)
	cmd.Dir, cmd.Env = s.dir, s.env
	attr := &syscall.SysProcAttr{Setpgid: group}
	a := s.acct
	switch {
	case os.Geteuid() == 0:
		attr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid, Groups: a.groups}
	case a.uid != uint32(os.Geteuid()) || a.gid != uint32(os.Getegid()):
		// Not root (tests only): this will fail, saying so.
		attr.Credential = &syscall.Credential{Uid: a.uid, Gid: a.gid, NoSetGroups: true}
	}
	cmd.SysProcAttr = attr
	if group {
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	}
	// Background children holding a non-file writer's pipe must not
	// keep Wait from returning.
	cmd.WaitDelay = 2 * time.Second
	return cmd
}

// status is a finished command's exit status, 128+N for signal N.
func status(cmd *exec.Cmd, err error) (int, error) {
	ps := cmd.ProcessState
	if ps == nil {
		return 0, err
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ps.ExitCode(), nil
}

func (s *execSpec) startErr(err error) error {
	return fail(exitHelper, "cannot run %s as %s in %s: %v", s.shell, s.acct.name, s.dir, err)
}

// run runs a RUN step's command; its exit status is the step's.
func (h *helper) run(args []string) (int, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	userSpec := fs.String("user", "root", "user to run as")
	workdir := fs.String("workdir", "", "working directory (\"\": the user's home)")
	var envs envFlag
	fs.Var(&envs, "env", "KEY=VALUE, repeatable")
	pos, err := parse(fs, args, 1, "run --user U --workdir D [--env K=V]... -- CMD")
	if err != nil {
		return 0, err
	}
	spec, err := prepare(*userSpec, *workdir, envs)
	if err != nil {
		return 0, err
	}
	cmd := spec.command(context.Background(), pos[0], false)
	cmd.Stdout, cmd.Stderr = h.stdout, h.stderr
	if err := cmd.Start(); err != nil {
		return 0, spec.startErr(err)
	}
	return status(cmd, cmd.Wait())
}

// tail keeps the end of a command's output.
type tail struct{ buf []byte }

const tailBytes = 8 << 10

func (t *tail) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > tailBytes {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailBytes:]...)
	}
	return len(p), nil
}

// lines is the last n lines.
func (t *tail) lines(n int) []string {
	s := strings.TrimRight(string(t.buf), "\n")
	if s == "" {
		return nil
	}
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return l
}

type exited struct {
	code int
	err  error
}

// ready runs a template's start command and waits for its ready command
// to succeed, then stops the start command.
func (h *helper) ready(args []string) (int, error) {
	fs := flag.NewFlagSet("ready", flag.ContinueOnError)
	userSpec := fs.String("user", "root", "user to run as")
	workdir := fs.String("workdir", "", "working directory (\"\": the user's home)")
	var envs envFlag
	fs.Var(&envs, "env", "KEY=VALUE, repeatable")
	startCmd := fs.String("start", "", "start command (\"\": none)")
	readyCmd := fs.String("ready", "", "ready command (\"\": ready once started)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long the ready command may take to succeed")
	interval := fs.Duration("interval", 500*time.Millisecond, "time between ready command attempts")
	if _, err := parse(fs, args, 0, "ready --user U --workdir D [--env K=V]... --start CMD --ready CMD --timeout DURATION [--interval DURATION]"); err != nil {
		return 0, err
	}
	if *timeout <= 0 || *interval <= 0 {
		return 0, fail(exitHelper, "ready: --timeout and --interval must be positive")
	}
	spec, err := prepare(*userSpec, *workdir, envs)
	if err != nil {
		return 0, err
	}
	// A cancelled build must not leave the start command behind.
	sigCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(sigCtx, *timeout)
	defer cancel()

	var startDone chan exited
	if *startCmd != "" {
		cmd := spec.command(context.Background(), *startCmd, true)
		cmd.Stdout, cmd.Stderr = h.stdout, h.stderr
		if err := cmd.Start(); err != nil {
			return 0, spec.startErr(err)
		}
		startDone = make(chan exited, 1)
		go func() {
			code, err := status(cmd, cmd.Wait())
			startDone <- exited{code, err}
		}()
		defer func() {
			// The whole group: whatever the start command started too.
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			if startDone != nil {
				<-startDone
			}
		}()
	}
	if *readyCmd == "" {
		return 0, nil
	}
	startFailed := func(r exited) error {
		if r.err != nil {
			return fail(exitFailed, "start command failed: %v", r.err)
		}
		return fail(exitFailed, "start command exited with status %d", r.code)
	}
	var last *tail
	lastCode, attempts := 0, 0
	var attemptDone chan exited
	var out *tail
	attempt := func() error {
		out = &tail{}
		cmd := spec.command(ctx, *readyCmd, true)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			return spec.startErr(err)
		}
		attemptDone = make(chan exited, 1)
		go func(done chan<- exited) {
			code, err := status(cmd, cmd.Wait())
			done <- exited{code, err}
		}(attemptDone)
		return nil
	}
	if err := attempt(); err != nil {
		return 0, err
	}
	var next <-chan time.Time
	for {
		select {
		case r := <-startDone:
			startDone = nil
			if r.err != nil || r.code != 0 {
				return 0, startFailed(r)
			}
			// It exited 0 (a daemon that forked, say): keep polling.
		case r := <-attemptDone:
			attemptDone = nil
			if r.err == nil && r.code == 0 {
				return 0, nil
			}
			if ctx.Err() == nil {
				// Only attempts that ran to their end say anything.
				last, lastCode, attempts = out, r.code, attempts+1
			}
			next = time.After(*interval)
		case <-next:
			next = nil
			if err := attempt(); err != nil {
				return 0, err
			}
		case <-ctx.Done():
			if sigCtx.Err() != nil {
				return 0, fail(exitFailed, "interrupted while waiting for the ready command")
			}
			return 0, notReady(*readyCmd, *timeout, attempts, last, lastCode)
		}
	}
}

func notReady(readyCmd string, timeout time.Duration, attempts int, last *tail, code int) error {
	msg := fmt.Sprintf("ready command '%s' did not succeed within %s", readyCmd, timeout)
	if attempts == 0 {
		return fail(exitFailed, "%s (no attempt finished in time)", msg)
	}
	lines := last.lines(20)
	short := strings.Join(lines, " | ")
	if len(short) > 500 {
		short = "..." + short[len(short)-500:]
	}
	msg = fmt.Sprintf("%s (last attempt exited with status %d", msg, code)
	if short != "" {
		msg += ": " + short
	}
	f := fail(exitFailed, "%s)", msg).(*failure)
	// The full tail in the log, a short one in the failure's reason.
	for _, l := range lines {
		f.detail = append(f.detail, "ready command: "+l)
	}
	return f
}
