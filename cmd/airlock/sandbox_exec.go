package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// osExit is replaced in tests.
var osExit = os.Exit

// Exit codes of exec beyond the remote one, as timeout(1) and shells use.
const (
	exitTimeout     = 124 // --timeout expired
	exitInterrupted = 130 // 128+SIGINT: interrupted locally
)

func newSandboxExecCmd(f *clientFlags) *cobra.Command {
	var (
		user, cwd, timeout string
		envs               []string
		stdin              bool
	)
	cmd := &cobra.Command{
		Use:               "exec ID -- COMMAND [ARG...]",
		ValidArgsFunction: completeSandboxIDs(f, true),
		Short:             "Run a command in a sandbox, streaming its output",
		Long: `Run a command in a sandbox through bash -l -c, streaming stdout and stderr
live. The exit code is the command's own.

A single COMMAND argument is passed to bash as a script, so pipes and
variables work ('echo $HOME | wc -c'); several arguments are quoted and
joined, like a program and its arguments.`,
		Example: `  airlock sandbox exec $id -- ls -la /
  airlock sandbox exec $id -- 'cd /tmp && make test'
  airlock sandbox exec --user root --cwd /etc --env DEBUG=1 $id -- cat os-release
  tar c src | airlock sandbox exec -i $id -- tar x -C /tmp`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return usagef("usage: %s ID -- COMMAND [ARG...]", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			d, err := parseTimeout("timeout", timeout)
			if err != nil {
				return err
			}
			env, err := parseKeyValues("env", envs)
			if err != nil {
				return err
			}
			opts := &sandbox.RunOptions{
				Envs: env, Cwd: cwd, User: user, Timeout: sandbox.NoTimeout, Stdin: stdin,
				Stdout: outOf(cmd), Stderr: errOf(cmd),
			}
			if d > 0 {
				opts.Timeout = d
			}
			code, err := runExec(cmd.Context(), f, args[0], commandLine(args[1:]), opts, cmd.InOrStdin(), errOf(cmd))
			if err != nil {
				return err
			}
			if code != 0 {
				// The command's own stderr already explains the failure.
				osExit(code)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&user, "user", "u", "", "run as this Linux user (default: the sandbox's default user)")
	fl.StringVarP(&cwd, "cwd", "w", "", "working directory (default: the user's home)")
	fl.StringArrayVarP(&envs, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	fl.StringVar(&timeout, "timeout", "", "kill the command after this long, e.g. 30s or 30 (default: no limit)")
	fl.BoolVarP(&stdin, "stdin", "i", false, "forward local stdin to the command")
	return cmd
}

// runExec runs the command and returns its exit code; errors are failures
// to run it at all.
func runExec(ctx context.Context, f *clientFlags, id, line string, opts *sandbox.RunOptions, in io.Reader, errw io.Writer) (int, error) {
	sbx, err := f.connect(ctx, id)
	if err != nil {
		return 0, err
	}
	h, err := sbx.Commands.Start(ctx, line, opts)
	if err != nil {
		return 0, fmt.Errorf("start command: %w", err)
	}
	if opts.Stdin {
		go forwardStdin(ctx, h, in)
	}
	_, err = h.Wait(ctx)
	var exitErr *sandbox.CommandExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		return exitErr.ExitCode, nil
	case errors.Is(err, sandbox.ErrTimeout) && ctx.Err() == nil:
		fmt.Fprintf(errw, "airlock: command timed out after %v\n", opts.Timeout)
		return exitTimeout, nil
	case ctx.Err() != nil:
		// Interrupted locally: do not leave the process running remotely.
		kctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = h.Kill(kctx)
		return exitInterrupted, nil
	default:
		return 0, fmt.Errorf("command: %w", err)
	}
}

// forwardStdin copies in to the process' stdin and closes it at EOF.
func forwardStdin(ctx context.Context, h *sandbox.CommandHandle, in io.Reader) {
	buf := make([]byte, 32<<10)
	for {
		n, err := in.Read(buf)
		if n > 0 {
			if serr := h.SendStdin(ctx, buf[:n]); serr != nil {
				return
			}
		}
		if err != nil {
			_ = h.CloseStdin(ctx)
			return
		}
	}
}

// commandLine turns the CLI arguments into a bash command line.
func commandLine(args []string) string {
	if len(args) == 1 {
		return args[0]
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

// shellQuote quotes s for bash unless it is plainly safe.
func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
