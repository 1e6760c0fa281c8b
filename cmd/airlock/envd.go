package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/internal/buildstep"
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

// newBuildStepCmd runs one template build step inside a build sandbox
// (internal/buildstep); the build API lends the agent binary for it.
func newBuildStepCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "build-step",
		Short:              "Run one template build step (started by airlock inside build sandboxes)",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			os.Exit(buildstep.Main(args, os.Stdout, os.Stderr))
			return nil
		},
	}
}
