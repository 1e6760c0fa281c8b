// Package httpserve runs an HTTP server until its context ends and then
// shuts it down gracefully: the shape of every in-sandbox server's main loop.
package httpserve

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Run serves hs on ln until ctx is cancelled (then it shuts hs down, giving
// open requests up to grace) or the server fails. name labels the logs.
func Run(ctx context.Context, hs *http.Server, ln net.Listener, grace time.Duration, name string, log *slog.Logger) error {
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info(name+" listening", "addr", ln.Addr().String(), "pid", os.Getpid())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info(name + " shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
