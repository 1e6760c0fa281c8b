package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/internal/interpreter"
)

// newInterpreterCmd runs the code-interpreter server inside a sandbox. The
// code-interpreter-v1 template's start command runs it from the same
// bind-mounted binary as envd (/.airlock/envd interpreter).
func newInterpreterCmd() *cobra.Command {
	var cfg interpreter.RunConfig
	cmd := &cobra.Command{
		Use:    "interpreter",
		Short:  "Run the code-interpreter server (started by envd inside code-interpreter sandboxes)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			return interpreter.Run(cmd.Context(), cfg, log)
		},
	}
	cmd.Flags().StringVar(&cfg.Addr, "addr", interpreter.DefaultAddr, "listen address")
	// `airlock bench` runs the interpreter on the host as its baseline, with
	// its own stand-in for envd's token check.
	cmd.Flags().StringVar(&cfg.EnvdURL, "envd-url", "", "envd that checks access tokens (default: the sandbox's own)")
	cmd.Flags().StringVar(&cfg.Cwd, "cwd", "", "working directory of the default contexts (default /home/user)")
	return cmd
}
