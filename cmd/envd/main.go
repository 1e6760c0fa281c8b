// Command envd is the agent inside every Airlock sandbox as a standalone
// binary: it runs as the container's init process and serves E2B's envd API
// (process and filesystem Connect services, /files, /health) on port 49983.
// `airlock envd` runs the same code from the single airlock binary.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlock-sandbox/airlock/internal/envd"
)

func main() {
	var cfg envd.RunConfig
	flag.StringVar(&cfg.Addr, "addr", ":49983", "listen address")
	flag.IntVar(&cfg.ReadyFD, "ready-fd", 0, "inherited descriptor to write \"ready\" to once listening (0: none)")
	flag.Parse()
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	err := envd.Run(ctx, cfg, log)
	stop()
	if err != nil {
		log.Error("envd failed", "err", err)
		os.Exit(1)
	}
}
