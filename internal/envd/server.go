package envd

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
	"github.com/airlock-sandbox/airlock/sdk/envdapi"
)

// maxInitBody bounds POST /init; the config is small.
const maxInitBody = 1 << 20

// maxRPCMessage bounds one Connect message (a stdin chunk, a command line):
// large data goes through /files, which streams.
const maxRPCMessage = 32 << 20

const unauthorizedMessage = "unauthorized access, please provide a valid access token or method signing if supported"

// Server is envd's HTTP surface: the Connect services plus plain endpoints.
type Server struct {
	log     *slog.Logger
	state   *State
	process *Process
	handler http.Handler
	closers []func()
	// infoDir receives E2B's /run/e2b/.E2B_SANDBOX* files, which some
	// templates read instead of the environment.
	infoDir string
}

// NewServer builds envd with its default (pre-/init) configuration.
func NewServer(log *slog.Logger) *Server {
	s := &Server{log: log, state: NewState(), infoDir: "/run/e2b"}
	s.process = NewProcess(s.state, log.With("svc", "process"))
	procReaper.start()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", s.health)
	mux.HandleFunc("POST /init", s.init)
	mux.Handle("GET /envs", s.requireToken(http.HandlerFunc(s.envs)))
	mux.Handle("GET /metrics", s.requireToken(http.HandlerFunc(s.metrics)))
	path, h := processconnect.NewProcessHandler(s.process, connect.WithCompressMinBytes(1024), connect.WithReadMaxBytes(maxRPCMessage))
	mux.Handle(path, s.requireToken(h))
	s.mountFilesystem(mux)
	s.handler = cors(mux)
	return s
}

// Close releases background resources (directory watchers). Processes keep
// running: envd exits with the sandbox.
func (s *Server) Close() {
	for _, c := range s.closers {
		c()
	}
}

// Handler returns the root handler to serve.
func (s *Server) Handler() http.Handler { return s.handler }

// State returns the configuration shared by all services.
func (s *Server) State() *State { return s.state }

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// init applies the orchestrator's configuration. Once a token is set, only
// a caller that knows it may change the configuration again.
func (s *Server) init(w http.ResponseWriter, r *http.Request) {
	var c Config
	body, err := io.ReadAll(io.LimitReader(r.Body, maxInitBody))
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, "read body: "+err.Error())
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		if err := json.Unmarshal(body, &c); err != nil {
			writeJSONError(w, http.StatusBadRequest, "invalid init body: "+err.Error())
			return
		}
	}
	current := s.state.Config().AccessToken
	if current != "" && !s.state.TokenOK(r.Header) && c.AccessToken != current {
		writeJSONError(w, http.StatusUnauthorized, unauthorizedMessage)
		return
	}
	s.state.Apply(c)
	s.writeInfoFiles(c.EnvVars)
	s.log.Info("configuration applied", "defaultUser", s.state.Config().DefaultUser, "envVars", len(c.EnvVars))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// writeInfoFiles mirrors the E2B_SANDBOX* variables into files, as E2B's
// envd does; failures are logged, not fatal (the variables still apply).
func (s *Server) writeInfoFiles(env map[string]string) {
	for _, k := range []string{"E2B_SANDBOX", "E2B_SANDBOX_ID", "E2B_TEMPLATE_ID"} {
		v, ok := env[k]
		if !ok {
			continue
		}
		if err := os.MkdirAll(s.infoDir, 0o755); err != nil {
			s.log.Warn("create sandbox info dir", "err", err)
			return
		}
		if err := os.WriteFile(filepath.Join(s.infoDir, "."+k), []byte(v), 0o644); err != nil {
			s.log.Warn("write sandbox info file", "name", k, "err", err)
		}
	}
}

func (s *Server) envs(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.state.Config().EnvVars)
}

// requireToken rejects requests without the sandbox access token.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.state.TokenOK(r.Header) {
			writeJSONError(w, http.StatusUnauthorized, unauthorizedMessage)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// cors lets browsers call envd directly: every origin, method and header.
func cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE, OPTIONS")
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
				h.Set("Access-Control-Allow-Headers", req) // "*" would not cover Authorization
			} else {
				h.Set("Access-Control-Allow-Headers", "*")
			}
			h.Set("Access-Control-Max-Age", "7200")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, envdapi.Error{Code: status, Message: msg})
}
