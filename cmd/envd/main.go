// Command envd is the agent inside every Airlock sandbox as a small
// standalone binary: it runs as the container's init process and serves
// E2B's envd API (process and filesystem Connect services, /files, /health)
// on port 49983; `envd interpreter` runs the code-interpreter server. The
// build embeds it into airlock (internal/agent), which bind-mounts it into
// sandboxes: it starts in about half the time of the whole airlock binary.
// `envd build-step` is the helper that template build steps run.
// `airlock envd` and `airlock interpreter` run the same code.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/airlock-sandbox/airlock/internal/buildstep"
	"github.com/airlock-sandbox/airlock/internal/envd"
	"github.com/airlock-sandbox/airlock/internal/interpreter"
)

func main() {
	// Build steps run `envd build-step ...` as a short-lived helper: it
	// must not start the agent's logging or signal handling.
	if args := os.Args[1:]; len(args) > 0 {
		if args[0] == "envd" {
			args = args[1:]
		}
		if len(args) > 0 && args[0] == "build-step" {
			os.Exit(buildstep.Main(args[1:], os.Stdout, os.Stderr))
		}
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	var err error
	if len(os.Args) > 1 && os.Args[1] == "envd" {
		// The server starts its agent as `<binary> envd ...`, which suits
		// airlock itself too.
		os.Args = append(os.Args[:1], os.Args[2:]...)
	}
	if len(os.Args) > 1 && os.Args[1] == "interpreter" {
		fs := flag.NewFlagSet("interpreter", flag.ExitOnError)
		addr := fs.String("addr", interpreter.DefaultAddr, "listen address")
		_ = fs.Parse(os.Args[2:])
		err = interpreter.Run(ctx, interpreter.RunConfig{Addr: *addr}, log)
	} else {
		var cfg envd.RunConfig
		flag.StringVar(&cfg.Addr, "addr", envd.DefaultAddr, "listen address")
		flag.IntVar(&cfg.ReadyFD, "ready-fd", 0, "inherited descriptor to write \"ready\" to once listening (0: none)")
		flag.Parse()
		err = envd.Run(ctx, cfg, log)
	}
	stop()
	if err != nil {
		log.Error("envd failed", "err", err)
		os.Exit(1)
	}
}
