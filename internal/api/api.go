// Package api serves E2B's control REST API: routes, JSON shapes, API-key
// authentication and the {code,message} error bodies.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/apikey"
	"github.com/airlock-sandbox/airlock/internal/orchestrator"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// Orchestrator is what the API needs from the lifecycle layer.
type Orchestrator interface {
	Create(ctx context.Context, req orchestrator.CreateRequest) (*store.Sandbox, error)
	Kill(ctx context.Context, id string) error
	Get(ctx context.Context, id string) (*store.Sandbox, error)
	List(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, *store.Cursor, error)
	SetTimeout(ctx context.Context, id string, d time.Duration) error
	Refresh(ctx context.Context, id string, d time.Duration) error
	Connect(ctx context.Context, id string, d time.Duration) (*store.Sandbox, bool, error)
	Pause(ctx context.Context, id string) error
	Stats(ctx context.Context, id string) (*store.Sandbox, runtime.Stats, error)
	Events(ctx context.Context, id string, since time.Time, limit int) ([]store.Event, error)
}

// Config wires the API's dependencies.
type Config struct {
	Orchestrator Orchestrator
	Store        store.Store
	// Templates, if set, removes a deleted template's files from disk.
	Templates TemplateFiles
	Log       *slog.Logger
	// Domain is returned to SDKs as the sandbox domain; "" sends null, so
	// clients fall back to E2B_DOMAIN / E2B_SANDBOX_URL.
	Domain string
}

// TemplateFiles removes what a template has on disk.
type TemplateFiles interface {
	RemoveFiles(t *store.Template) error
}

// Server is the control API handler.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New builds the control API.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "api"), mux: http.NewServeMux()}
	s.routes()
	return s
}

func (s *Server) routes() {
	m := s.mux
	m.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })

	m.Handle("POST /sandboxes", s.auth(s.createSandbox))
	m.Handle("GET /sandboxes", s.auth(s.listSandboxesV1))
	m.Handle("GET /v2/sandboxes", s.auth(s.listSandboxesV2))
	m.Handle("GET /sandboxes/{id}", s.auth(s.getSandbox))
	m.Handle("DELETE /sandboxes/{id}", s.auth(s.killSandbox))
	m.Handle("POST /sandboxes/{id}/timeout", s.auth(s.setTimeout))
	m.Handle("POST /sandboxes/{id}/refreshes", s.auth(s.refresh))
	m.Handle("POST /sandboxes/{id}/connect", s.auth(s.connect))
	m.Handle("POST /sandboxes/{id}/resume", s.auth(s.resume))
	m.Handle("POST /sandboxes/{id}/pause", s.auth(s.pause))
	m.Handle("GET /sandboxes/{id}/metrics", s.auth(s.metrics))
	m.Handle("GET /sandboxes/{id}/logs", s.auth(s.logs))

	m.Handle("GET /templates", s.auth(s.listTemplates))
	m.Handle("GET /templates/aliases/{alias}", s.auth(s.templateAlias))
	m.Handle("DELETE /templates/{id}", s.auth(s.deleteTemplate))
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Wrap so that ServeMux's own 404 and 405 answers carry the E2B error body.
	s.mux.ServeHTTP(&errorBodyWriter{ResponseWriter: w}, r)
}

// auth requires a valid X-API-KEY header.
func (s *Server) auth(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-API-Key")
		if key == "" {
			writeError(w, http.StatusUnauthorized, "missing API key: set the X-API-KEY header")
			return
		}
		if _, err := apikey.Check(r.Context(), s.cfg.Store, key); err != nil {
			if errors.Is(err, apikey.ErrInvalid) {
				writeError(w, http.StatusUnauthorized, "invalid API key")
				return
			}
			s.fail(w, r, err)
			return
		}
		h(w, r)
	})
}

// errBody is E2B's error body; both fields are required by the SDKs.
type errBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errBody{Code: status, Message: msg})
}

// fail maps an error from the layers below to a status code: the one place
// where sentinel errors become wire codes.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, orchestrator.ErrNotFound), errors.Is(err, orchestrator.ErrTemplateNotFound):
		status = http.StatusNotFound
	case errors.Is(err, orchestrator.ErrInvalid):
		status = http.StatusBadRequest
	case errors.Is(err, orchestrator.ErrConflict):
		status = http.StatusConflict
	case errors.Is(err, orchestrator.ErrCapacity):
		status = http.StatusServiceUnavailable
	case errors.Is(err, runtime.ErrNotSupported):
		status = http.StatusNotImplemented
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		status = http.StatusServiceUnavailable
	}
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, err.Error())
}

// decode reads a JSON body; unknown fields are ignored as the SDKs send extras.
func decode(r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: malformed JSON body: %v", orchestrator.ErrInvalid, err)
	}
	return nil
}

// errorBodyWriter turns ServeMux's plain-text 405 into an E2B error body.
type errorBodyWriter struct {
	http.ResponseWriter
	suppressed bool
}

func (e *errorBodyWriter) WriteHeader(code int) {
	if (code == http.StatusMethodNotAllowed || code == http.StatusNotFound) && e.Header().Get("Content-Type") != "application/json" {
		e.suppressed = true
		e.Header().Set("Content-Type", "application/json")
		e.Header().Del("X-Content-Type-Options")
		e.ResponseWriter.WriteHeader(code)
		_ = json.NewEncoder(e.ResponseWriter).Encode(errBody{Code: code, Message: strings.ToLower(http.StatusText(code))})
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *errorBodyWriter) Write(b []byte) (int, error) {
	if e.suppressed {
		return len(b), nil
	}
	return e.ResponseWriter.Write(b)
}

func (e *errorBodyWriter) Unwrap() http.ResponseWriter { return e.ResponseWriter }
