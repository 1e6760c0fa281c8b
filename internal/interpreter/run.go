package interpreter

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/airlock-sandbox/airlock/internal/httpserve"
	"github.com/airlock-sandbox/airlock/sdk/wire"

	"github.com/airlock-sandbox/airlock/internal/osthreads"
)

// DefaultAddr is where the code-interpreter server listens in a sandbox.
var DefaultAddr = ":" + strconv.Itoa(wire.InterpreterPort)

const (
	// idleTimeout outlives the SDKs' keep-alive pools.
	idleTimeout     = 640 * time.Second
	shutdownTimeout = 5 * time.Second
)

// RunConfig is how the interpreter server is started; zero values are
// right inside a sandbox.
type RunConfig struct {
	Addr    string // listen address; DefaultAddr when empty
	EnvdURL string // the envd that checks access tokens; the sandbox's own when empty
	Cwd     string // working directory of the default contexts; /home/user when empty
}

// Run serves the code-interpreter server until ctx is cancelled, then
// closes every kernel.
func Run(ctx context.Context, cfg RunConfig, log *slog.Logger) error {
	// Threads for later, while pids are free: a fork bomb in the sandbox
	// would otherwise make the runtime abort when it next needs one.
	go osthreads.Reserve(spareThreads)
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if log == nil {
		log = slog.Default()
	}
	srv := NewServer(ServerOptions{Log: log, EnvdURL: cfg.EnvdURL, DefaultCwd: cfg.Cwd})
	defer srv.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The default contexts start in the background so /health answers at
	// once while the Python kernel warms up; /execute waits for it.
	srv.Preload(DefaultPreload...)

	// No read/write timeouts: executions stream for as long as they run.
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       idleTimeout,
	}
	return httpserve.Run(ctx, hs, ln, shutdownTimeout, "code interpreter", log)
}

// spareThreads is how many OS threads the interpreter holds from its start.
const spareThreads = 24
