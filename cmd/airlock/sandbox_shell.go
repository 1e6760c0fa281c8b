package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func newSandboxShellCmd(f *clientFlags) *cobra.Command {
	var user, cwd string
	var envs []string
	cmd := &cobra.Command{
		Use:               "shell ID",
		ValidArgsFunction: completeSandboxIDs(f, true),
		Short:             "Open an interactive shell in a sandbox",
		Long: `Open an interactive login shell (bash) on a pseudo-terminal in the sandbox.
The local terminal is switched to raw mode, so Ctrl-C and friends go to the
remote shell; window size changes follow. Leave with "exit" or Ctrl-D: the
command exits with the shell's exit code.`,
		Example: "  airlock sandbox shell $id\n  airlock sandbox shell --user root --cwd /tmp $id",
		Args:    exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			env, err := parseKeyValues("env", envs)
			if err != nil {
				return err
			}
			code, err := runShell(cmd.Context(), f, args[0], sandbox.PTYOptions{Envs: env, User: user, Cwd: cwd},
				os.Stdin, outOf(cmd))
			if err != nil {
				return err
			}
			if code != 0 {
				osExit(code)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&user, "user", "u", "", "log in as this Linux user")
	fl.StringVarP(&cwd, "cwd", "w", "", "start in this directory")
	fl.StringArrayVarP(&envs, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	return cmd
}

// runShell runs an interactive terminal until the remote shell exits and
// returns its exit code. The local terminal is restored on every path.
func runShell(ctx context.Context, f *clientFlags, id string, opts sandbox.PTYOptions, in *os.File, out io.Writer) (int, error) {
	sbx, err := f.connect(ctx, id)
	if err != nil {
		return 0, err
	}
	fd := int(in.Fd())
	interactive := term.IsTerminal(fd)
	opts.Cols, opts.Rows = 80, 24
	if interactive {
		if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
			opts.Cols, opts.Rows = uint32(w), uint32(h)
		}
	}
	if opts.Envs == nil {
		opts.Envs = map[string]string{}
	}
	if _, ok := opts.Envs["TERM"]; !ok {
		opts.Envs["TERM"] = envOr("TERM", "xterm-256color")
	}
	opts.Timeout = sandbox.NoTimeout
	opts.OnData = func(b []byte) { _, _ = out.Write(b) }

	h, err := sbx.PTY.Create(ctx, opts)
	if err != nil {
		return 0, fmt.Errorf("open terminal: %w", err)
	}
	if interactive {
		state, err := term.MakeRaw(fd)
		if err != nil {
			_, _ = sbx.PTY.Kill(context.Background(), h.PID)
			return 0, fmt.Errorf("raw mode: %w", err)
		}
		defer func() { _ = term.Restore(fd, state) }()
		stopResize := followResize(ctx, sbx, h.PID, fd)
		defer stopResize()
	}

	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := in.Read(buf)
			if n > 0 {
				if sbx.PTY.SendInput(ctx, h.PID, buf[:n]) != nil {
					return
				}
			}
			if err != nil {
				// Local EOF (a pipe ran dry): end the remote shell's input too.
				_ = sbx.PTY.SendInput(ctx, h.PID, []byte{4})
				return
			}
		}
	}()

	_, err = h.Wait(ctx)
	var exitErr *sandbox.CommandExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitCode, nil
	case ctx.Err() != nil:
		kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = sbx.PTY.Kill(kctx, h.PID)
		return exitInterrupted, nil
	default:
		return 0, fmt.Errorf("terminal: %w", err)
	}
}

// followResize forwards local window size changes (SIGWINCH) to the remote
// terminal until the returned stop function is called.
func followResize(ctx context.Context, sbx *sandbox.Sandbox, pid uint32, fd int) (stop func()) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGWINCH)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-ch:
				if w, h, err := term.GetSize(fd); err == nil && w > 0 && h > 0 {
					_ = sbx.PTY.Resize(ctx, pid, uint32(w), uint32(h))
				}
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
