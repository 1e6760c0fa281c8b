package envd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// idleTimeout outlives the SDKs' keep-alive pools (E2B uses 640 s).
	idleTimeout     = 640 * time.Second
	shutdownTimeout = 5 * time.Second
)

// Run serves envd on addr until ctx is cancelled. It is what the sandbox's
// init process runs.
func Run(ctx context.Context, addr string, log *slog.Logger) error {
	// As PID 1 orphans are ours by definition; elsewhere (tests, debugging)
	// become a subreaper so the same reaping logic applies.
	if os.Getpid() != 1 {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			log.Warn("cannot become child subreaper", "err", err)
		}
	}
	srv := NewServer(log)
	defer srv.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// No read/write timeouts: process and watch streams last arbitrarily long.
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       idleTimeout,
		Protocols:         new(http.Protocols),
	}
	// HTTP/1.1 for the SDKs, plus prior-knowledge HTTP/2 so a proxy in front
	// can multiplex streams over one connection.
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("envd listening", "addr", ln.Addr().String(), "pid", os.Getpid())

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}
