package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func newSandboxCmd() *cobra.Command {
	f := &clientFlags{}
	cmd := groupCmd("sandbox", "Create, use and remove sandboxes")
	cmd.Aliases = []string{"sb", "sandboxes"}
	cmd.Example = `  id=$(airlock sandbox create --template base --timeout 10m)
  airlock sandbox exec $id -- python3 -c 'print(1+1)'
  airlock sandbox cp ./project $id:/home/user/project
  airlock sandbox shell $id
  airlock sandbox list --json
  airlock sandbox kill $id`
	f.register(cmd)
	cmd.AddCommand(
		newSandboxCreateCmd(f), newSandboxListCmd(f), newSandboxInfoCmd(f), newSandboxKillCmd(f),
		newSandboxExecCmd(f), newSandboxShellCmd(f), newSandboxCpCmd(f),
		newSandboxLogsCmd(f), newSandboxMetricsCmd(f),
	)
	wrapExitCodes(cmd)
	return cmd
}

// wrapExitCodes makes every RunE under cmd return errors that carry their
// exit code, so main can exit with it.
func wrapExitCodes(cmd *cobra.Command) {
	if run := cmd.RunE; run != nil {
		cmd.RunE = func(c *cobra.Command, args []string) error { return withExitCode(run(c, args)) }
	}
	for _, sub := range cmd.Commands() {
		wrapExitCodes(sub)
	}
}

// parseTimeout accepts a Go duration ("10m") or plain seconds ("600").
func parseTimeout(flag, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, usagef("--%s %q: must not be negative", flag, s)
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, usagef("--%s %q: want a duration like 90s, 10m or a number of seconds", flag, s)
	}
	return d, nil
}

// createdJSON is what `create --json` prints.
type createdJSON struct {
	SandboxID   string `json:"sandboxID"`
	TemplateID  string `json:"templateID"`
	Alias       string `json:"alias,omitempty"`
	EnvdVersion string `json:"envdVersion"`
	Domain      string `json:"domain,omitempty"`
}

func newSandboxCreateCmd(f *clientFlags) *cobra.Command {
	var (
		template, timeout string
		metadata, envs    []string
		noInternet        bool
		runtimeName       string
	)
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create a sandbox and print its ID",
		Example: `  airlock sandbox create
  airlock sandbox create --template code-interpreter-v1 --timeout 1h --metadata owner=me --env DEBUG=1
  airlock sandbox create --json | jq -r .sandboxID`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d, err := parseTimeout("timeout", timeout)
			if err != nil {
				return err
			}
			md, err := parseKeyValues("metadata", metadata)
			if err != nil {
				return err
			}
			env, err := parseKeyValues("env", envs)
			if err != nil {
				return err
			}
			c, _ := f.client()
			sbx, err := c.Create(cmd.Context(), sandbox.CreateOptions{
				Template: template, Timeout: d, Metadata: md, EnvVars: env, DenyInternetAccess: noInternet,
				Runtime: runtimeName,
			})
			if err != nil {
				return fmt.Errorf("create sandbox: %w", err)
			}
			if f.json {
				return printJSON(outOf(cmd), createdJSON{
					SandboxID: sbx.ID, TemplateID: sbx.TemplateID, Alias: sbx.Alias,
					EnvdVersion: sbx.EnvdVersion, Domain: sbx.Domain,
				})
			}
			_, err = fmt.Fprintln(outOf(cmd), sbx.ID)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&template, "template", "t", sandbox.DefaultTemplate, "template name or ID")
	fl.StringVar(&timeout, "timeout", "", "lifetime, e.g. 10m or 600 (seconds); default 5m")
	fl.StringArrayVarP(&metadata, "metadata", "m", nil, "metadata KEY=VALUE (repeatable)")
	fl.StringArrayVarP(&envs, "env", "e", nil, "environment variable KEY=VALUE for every process (repeatable)")
	fl.BoolVar(&noInternet, "no-internet", false, "block outbound network access")
	fl.StringVar(&runtimeName, "runtime", "", "isolation runtime: runsc (gVisor) or runc (default: the template's, else the server's)")
	return cmd
}

func newSandboxListCmd(f *clientFlags) *cobra.Command {
	var (
		states   []string
		metadata []string
		template string
		limit    int
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List sandboxes",
		Example: `  airlock sandbox list
  airlock sandbox list --state running,paused --metadata owner=me --limit 10
  airlock sandbox list --json | jq -r '.[].sandboxID'`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit < 0 {
				return usagef("--limit must not be negative")
			}
			md, err := parseKeyValues("metadata", metadata)
			if err != nil {
				return err
			}
			var st []sandbox.State
			for _, s := range states {
				for p := range strings.SplitSeq(s, ",") {
					switch p = strings.TrimSpace(p); p {
					case string(sandbox.StateRunning), string(sandbox.StatePaused):
						st = append(st, sandbox.State(p))
					default:
						return usagef("--state %q: want running or paused", p)
					}
				}
			}
			c, _ := f.client()
			opts := sandbox.ListOptions{Metadata: md, States: st, Template: template}
			if limit > 0 {
				opts.Limit = min(limit, 100)
			}
			infos := []sandbox.Info{}
			for info, err := range c.List(opts).All(cmd.Context()) {
				if err != nil {
					return fmt.Errorf("list sandboxes: %w", err)
				}
				infos = append(infos, info)
				if limit > 0 && len(infos) >= limit {
					break
				}
			}
			if f.json {
				return printJSON(outOf(cmd), infos)
			}
			return sandboxTable(infos, time.Now()).render(outOf(cmd))
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&states, "state", nil, "only these states: running, paused (default both)")
	fl.StringArrayVarP(&metadata, "metadata", "m", nil, "only sandboxes with metadata KEY=VALUE (repeatable, all must match)")
	fl.StringVar(&template, "template", "", "only sandboxes of this template")
	fl.IntVar(&limit, "limit", 0, "print at most this many sandboxes (0: all)")
	_ = cmd.RegisterFlagCompletionFunc("state", cobra.FixedCompletions(
		[]cobra.Completion{string(sandbox.StateRunning), string(sandbox.StatePaused)}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// sandboxTable renders sandboxes for humans.
func sandboxTable(infos []sandbox.Info, now time.Time) *table {
	t := &table{header: []string{"SANDBOX ID", "TEMPLATE", "STATE", "CPU", "MEMORY", "AGE", "EXPIRES IN", "METADATA"}}
	for _, in := range infos {
		tmpl := in.Alias
		if tmpl == "" {
			tmpl = in.TemplateID
		}
		t.add(in.SandboxID, tmpl, string(in.State), strconv.Itoa(in.CPUCount),
			fmt.Sprintf("%d MiB", in.MemoryMB), formatAge(now.Sub(in.StartedAt)),
			formatAge(in.EndAt.Sub(now)), formatMap(in.Metadata))
	}
	return t
}

func newSandboxInfoCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "info ID",
		ValidArgsFunction: completeSandboxIDs(f, true),
		Short:             "Show a sandbox's details",
		Example:           "  airlock sandbox info $id\n  airlock sandbox info $id --json | jq .endAt",
		Args:              exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _ := f.client()
			info, err := c.GetInfo(cmd.Context(), args[0])
			if err != nil {
				return fmt.Errorf("sandbox info: %w", err)
			}
			if f.json {
				return printJSON(outOf(cmd), info)
			}
			return infoTable(info, time.Now()).render(outOf(cmd))
		},
	}
}

// infoTable renders one sandbox as FIELD VALUE rows.
func infoTable(in *sandbox.Info, now time.Time) *table {
	t := &table{header: []string{"FIELD", "VALUE"}}
	t.add("ID", in.SandboxID)
	t.add("Template", in.TemplateID)
	if in.Alias != "" {
		t.add("Alias", in.Alias)
	}
	t.add("State", string(in.State))
	t.add("CPUs", strconv.Itoa(in.CPUCount))
	t.add("Memory", fmt.Sprintf("%d MiB", in.MemoryMB))
	t.add("Disk", fmt.Sprintf("%d MiB", in.DiskSizeMB))
	t.add("Started", in.StartedAt.Local().Format(time.RFC3339)+" ("+formatAge(now.Sub(in.StartedAt))+" ago)")
	t.add("Expires", in.EndAt.Local().Format(time.RFC3339)+" (in "+formatAge(in.EndAt.Sub(now))+")")
	t.add("envd", in.EnvdVersion)
	if in.AllowInternetAccess != nil {
		t.add("Internet", strconv.FormatBool(*in.AllowInternetAccess))
	}
	t.add("Metadata", formatMap(in.Metadata))
	return t
}

func newSandboxKillCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:               "kill ID...",
		ValidArgsFunction: completeSandboxIDs(f, false),
		Aliases:           []string{"rm"},
		Short:             "Kill sandboxes",
		Example:           "  airlock sandbox kill $id\n  airlock sandbox list --json | jq -r '.[].sandboxID' | xargs airlock sandbox kill",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("%s needs at least one sandbox ID", cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _ := f.client()
			var firstErr error
			for _, id := range args {
				ok, err := c.Kill(cmd.Context(), id)
				if err == nil && !ok {
					err = &sandbox.Error{Kind: sandbox.ErrNotFound, Status: 404, Message: "sandbox " + id + " not found"}
				}
				if err != nil {
					err = fmt.Errorf("kill %s: %w", id, err)
					if firstErr == nil {
						firstErr = err
					} else {
						fmt.Fprintln(errOf(cmd), "airlock:", err)
					}
					continue
				}
				if !f.json {
					fmt.Fprintln(outOf(cmd), id)
				}
			}
			if f.json && firstErr == nil {
				return printJSON(outOf(cmd), map[string][]string{"killed": args})
			}
			return firstErr
		},
	}
}
