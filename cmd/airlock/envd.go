package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/internal/envd"
)

// newEnvdCmd runs the in-sandbox agent; the server bind-mounts its own
// (static) binary into each sandbox and starts it with this subcommand.
func newEnvdCmd() *cobra.Command {
	var cfg envd.RunConfig
	cmd := &cobra.Command{
		Use:    "envd",
		Short:  "Run the in-sandbox agent (started by airlock inside each sandbox)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			return envd.Run(cmd.Context(), cfg, log)
		},
	}
	cmd.Flags().StringVar(&cfg.Addr, "addr", envd.DefaultAddr, "listen address")
	cmd.Flags().IntVar(&cfg.ReadyFD, "ready-fd", 0, "inherited descriptor to write \"ready\" to once listening (0: none)")
	return cmd
}
