package envd

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/internal/httpserve"
	"github.com/airlock-sandbox/airlock/sdk/wire"

	"github.com/airlock-sandbox/airlock/internal/osthreads"
)

const (
	// idleTimeout outlives the SDKs' keep-alive pools (E2B uses 640 s).
	idleTimeout     = 640 * time.Second
	shutdownTimeout = 5 * time.Second
)

// RunConfig is how envd is started.
// DefaultAddr is where envd listens in a sandbox.
var DefaultAddr = ":" + strconv.Itoa(wire.EnvdPort)

type RunConfig struct {
	Addr string // listen address, DefaultAddr in a sandbox
	// ReadyFD, if positive, is an inherited descriptor (a pipe from the
	// host) that gets "ready\n" and is closed once the listener is open, so
	// the host learns of readiness without polling.
	ReadyFD int
}

// Run serves envd until ctx is cancelled. It is what the sandbox's init
// process runs.
func Run(ctx context.Context, cfg RunConfig, log *slog.Logger) error {
	// Threads for later, while pids are free: a fork bomb in the sandbox
	// would otherwise make the runtime abort when it next needs one.
	go osthreads.Reserve(spareThreads)
	addr := cfg.Addr
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
	// Connections queue in the listen backlog from here on, so ready can
	// be said before Serve runs.
	signalReady(cfg.ReadyFD, log)
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
	return httpserve.Run(ctx, hs, ln, shutdownTimeout, "envd", log)
}

// signalReady writes to and closes the inherited ready descriptor. Closing
// it also keeps it from leaking into the processes envd starts.
func signalReady(fd int, log *slog.Logger) {
	if fd <= 0 {
		return
	}
	f := os.NewFile(uintptr(fd), "ready")
	if f == nil {
		return
	}
	if _, err := f.Write([]byte("ready\n")); err != nil {
		log.Warn("signal readiness", "fd", fd, "err", err)
	}
	f.Close()
}

// spareThreads is how many OS threads envd holds from its start (it runs
// with about 7): enough for its concurrent blocking syscalls.
const spareThreads = 32
