package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// Exit codes of the client commands; `exec` exits with the remote code.
const (
	exitOK       = 0
	exitGeneric  = 1
	exitUsage    = 2
	exitNotFound = 3
	exitAuth     = 4
)

// defaultLocalURL is where `airlock serve` listens by default.
const defaultLocalURL = "http://127.0.0.1:3000"

// connectKeepAlive is how long commands that attach to a sandbox make sure
// it stays alive; the server only ever extends, never shortens.
const connectKeepAlive = 30 * time.Second

const exitCodesHelp = `Exit codes:
  0  success
  1  generic failure
  2  usage error (bad flags or arguments)
  3  sandbox, template or file not found
  4  authentication failed (missing or invalid API key)
  "airlock sandbox exec" and "airlock sandbox shell" exit with the remote
  command's exit code; exec exits 124 when its --timeout expires and 130
  when interrupted (Ctrl-C), after killing the remote command.`

// addCLICommands wires the client commands (sandbox, template) into root and
// documents the exit codes in its help.
func addCLICommands(root *cobra.Command) {
	root.AddCommand(newSandboxCmd(), newTemplateCmd())
	root.Long = "Airlock runs self-hosted, E2B-compatible sandboxes for untrusted code.\n" +
		"The same binary is the server (airlock serve) and its command-line client.\n\n" +
		"Client commands read E2B_API_KEY, E2B_API_URL, E2B_SANDBOX_URL and E2B_DOMAIN\n" +
		"(or AIRLOCK_API_KEY, AIRLOCK_API_URL, AIRLOCK_SANDBOX_URL); without a URL or\n" +
		"domain they talk to " + defaultLocalURL + ".\n\n" + exitCodesHelp
	root.Example = `  airlock serve
  export E2B_API_KEY=e2b_...
  id=$(airlock sandbox create)
  airlock sandbox exec $id -- uname -a
  airlock sandbox shell $id
  airlock sandbox kill $id
  source <(airlock completion bash)`
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr(err) })
}

// cliError carries an exit code with an error.
type cliError struct {
	code int
	err  error
}

func (e *cliError) Error() string { return e.err.Error() }
func (e *cliError) Unwrap() error { return e.err }
func (e *cliError) ExitCode() int { return e.code }

// usageErr marks err as a usage error (exit 2).
func usageErr(err error) error { return &cliError{code: exitUsage, err: err} }

// usagef formats a usage error.
func usagef(format string, args ...any) error { return usageErr(fmt.Errorf(format, args...)) }

// exitCodeFor maps an error to the process exit code.
func exitCodeFor(err error) int {
	if err == nil {
		return exitOK
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return ce.code
	}
	var cee *sandbox.CommandExitError
	if errors.As(err, &cee) {
		return cee.ExitCode
	}
	switch {
	case errors.Is(err, sandbox.ErrAuthentication):
		return exitAuth
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return exitNotFound
	}
	return exitGeneric
}

// withExitCode attaches the mapped exit code so main can use it.
func withExitCode(err error) error {
	if err == nil {
		return nil
	}
	var ce *cliError
	if errors.As(err, &ce) {
		return err
	}
	return &cliError{code: exitCodeFor(err), err: err}
}

// exactArgs is cobra.ExactArgs with a usage exit code.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d; see %s --help", cmd.CommandPath(), n, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// noArgs rejects positional arguments, including unknown subcommands.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command or argument %q for %s; see %s --help", args[0], cmd.CommandPath(), cmd.CommandPath())
	}
	return nil
}

// groupCmd is a command that only holds subcommands.
func groupCmd(use, short string) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return usagef("%s needs a subcommand; see %s --help", cmd.CommandPath(), cmd.CommandPath())
		},
	}
}

// clientFlags are the connection and output flags shared by client commands.
type clientFlags struct {
	apiURL     string
	sandboxURL string
	apiKey     string
	json       bool
}

func (f *clientFlags) register(cmd *cobra.Command) {
	pf := cmd.PersistentFlags()
	pf.StringVar(&f.apiURL, "api-url", "", "control API URL (env E2B_API_URL, AIRLOCK_API_URL; default "+defaultLocalURL+")")
	pf.StringVar(&f.sandboxURL, "sandbox-url", "", "sandbox (envd) URL (env E2B_SANDBOX_URL, AIRLOCK_SANDBOX_URL; default: the API URL)")
	pf.StringVar(&f.apiKey, "api-key", "", "API key (env E2B_API_KEY, AIRLOCK_API_KEY)")
	pf.BoolVar(&f.json, "json", false, "print machine-readable JSON")
}

// endpoints is the resolved connection configuration.
type endpoints struct {
	apiURL     string // "" lets the SDK derive it from E2B_DOMAIN
	sandboxURL string
	apiKey     string
}

// resolve applies flags, then E2B_*, then AIRLOCK_*, then the local default.
// A domain (E2B_DOMAIN) without URLs is left to the SDK's own derivation.
func (f *clientFlags) resolve(getenv func(string) string) endpoints {
	first := func(vals ...string) string {
		for _, v := range vals {
			if v != "" {
				return v
			}
		}
		return ""
	}
	e := endpoints{
		apiURL:     first(f.apiURL, getenv("E2B_API_URL"), getenv("AIRLOCK_API_URL")),
		sandboxURL: first(f.sandboxURL, getenv("E2B_SANDBOX_URL"), getenv("AIRLOCK_SANDBOX_URL")),
		apiKey:     first(f.apiKey, getenv("E2B_API_KEY"), getenv("AIRLOCK_API_KEY")),
	}
	if getenv("E2B_DOMAIN") == "" {
		if e.apiURL == "" {
			e.apiURL = defaultLocalURL
		}
		if e.sandboxURL == "" {
			// Airlock serves envd traffic on the API port.
			e.sandboxURL = e.apiURL
		}
	}
	e.apiURL = strings.TrimRight(e.apiURL, "/")
	return e
}

// client builds an SDK client from the flags and environment.
func (f *clientFlags) client() (*sandbox.Client, endpoints) {
	e := f.resolve(os.Getenv)
	opts := []sandbox.Option{sandbox.WithAPIKey(e.apiKey)}
	if e.apiURL != "" {
		opts = append(opts, sandbox.WithAPIURL(e.apiURL))
	}
	if e.sandboxURL != "" {
		opts = append(opts, sandbox.WithSandboxURL(e.sandboxURL))
	}
	c := sandbox.NewClient(opts...)
	if e.apiURL == "" {
		e.apiURL = "https://api." + c.Config().Domain
	}
	return c, e
}

// connect attaches to a running sandbox by ID.
func (f *clientFlags) connect(ctx context.Context, id string) (*sandbox.Sandbox, error) {
	c, _ := f.client()
	sbx, err := c.Connect(ctx, id, connectKeepAlive)
	if err != nil {
		return nil, fmt.Errorf("connect to sandbox %s: %w", id, err)
	}
	return sbx, nil
}

// parseKeyValues parses repeated K=V flags into a map.
func parseKeyValues(flag string, pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, usagef("--%s %q: want KEY=VALUE", flag, p)
		}
		m[k] = v
	}
	return m, nil
}

// completeSandboxIDs completes running sandbox IDs for shell completion;
// with first set it completes only the first argument.
func completeSandboxIDs(f *clientFlags, first bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if first && len(args) > 0 {
			return nil, cobra.ShellCompDirectiveDefault
		}
		c, _ := f.client()
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		var out []cobra.Completion
		for info, err := range c.List(sandbox.ListOptions{}).All(ctx) {
			if err != nil {
				break
			}
			if strings.HasPrefix(info.SandboxID, toComplete) {
				desc := info.Alias
				if desc == "" {
					desc = info.TemplateID
				}
				out = append(out, cobra.CompletionWithDesc(info.SandboxID, desc+", "+string(info.State)))
			}
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
}
