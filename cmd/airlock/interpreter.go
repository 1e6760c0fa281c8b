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
	var addr string
	cmd := &cobra.Command{
		Use:    "interpreter",
		Short:  "Run the code-interpreter server (started by envd inside code-interpreter sandboxes)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			return interpreter.Run(cmd.Context(), addr, log)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", interpreter.DefaultAddr, "listen address")
	return cmd
}
