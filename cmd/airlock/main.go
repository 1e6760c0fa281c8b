// Command airlock is the Airlock server, CLI and in-sandbox agent in one
// static binary.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "airlock:", err)
		var ec exitCoder
		if errors.As(err, &ec) {
			os.Exit(ec.ExitCode())
		}
		os.Exit(1)
	}
}

// exitCoder lets a command choose its process exit code.
type exitCoder interface{ ExitCode() int }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "airlock",
		Short:         "Self-hosted, E2B-compatible sandboxes for untrusted code",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newKeysCmd(), newEnvdCmd(), newBuildStepCmd(), newInterpreterCmd(), newBenchCmd())
	addCLICommands(root) // sandbox, template; exit codes in --help
	return root
}

// envOr returns the environment variable's value or def.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}
