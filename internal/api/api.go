// Package api serves E2B's control REST API: routes, JSON shapes, API-key
// authentication and the {code,message} error bodies.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/apikey"
	"github.com/airlock-sandbox/airlock/internal/errdefs"
	"github.com/airlock-sandbox/airlock/internal/httplimit"
	"github.com/airlock-sandbox/airlock/internal/orchestrator"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/sdk/controlapi"
	"github.com/airlock-sandbox/airlock/sdk/wire"
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
	Metrics(ctx context.Context, id string, start, end time.Time) ([]orchestrator.Sample, error)
	Events(ctx context.Context, id string, since time.Time, limit int) ([]store.Event, error)
	// Owner returns the team of a recorded sandbox (killed ones too).
	Owner(ctx context.Context, id string) (string, error)
}

// Store is the part of the store the API reads itself: templates, keys and
// teams, and sandbox listings (for the admin routes and template deletes).
type Store interface {
	store.Templates
	store.TemplateBuilds
	store.APIKeys
	store.Teams
	ListSandboxes(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, *store.Cursor, error)
}

// Config wires the API's dependencies.
type Config struct {
	Orchestrator Orchestrator
	Store        Store
	// Templates, if set, removes a deleted template's files from disk.
	Templates TemplateFiles
	// Builds, if set, serves E2B's template build API.
	Builds Builds
	Log    *slog.Logger
	// Domain is returned to SDKs as the sandbox domain, for getHost(port);
	// "" sends null, which makes the SDKs fall back to E2B's cloud, so
	// serve always sets it.
	Domain string
	// BodyReadTimeout bounds how long a client may take to send a request
	// body; slower ones get 408 (default 30 s).
	BodyReadTimeout time.Duration
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
	// handler is mux behind the header limit, with E2B error bodies on
	// ServeMux's own 404 and 405 answers.
	handler http.Handler
}

// New builds the control API.
func New(cfg Config) *Server {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = defaultBodyReadTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Log.With("component", "api"), mux: http.NewServeMux()}
	s.routes()
	s.handler = httplimit.Headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mux.ServeHTTP(&errorBodyWriter{ResponseWriter: w}, r)
	}))
	return s
}

// access is who may call a route.
type access int

const (
	open  access = iota // anyone (health)
	team                // any valid API key; the caller's team is in the context
	owner               // a valid key of the team that owns the {id} sandbox
	admin               // an admin key (operator-only routes)
	// link: no key; the handler checks a signed link's token and streams
	// the body itself (uploads too large to hold in memory).
	link
)

// Body limits per route; larger bodies get 413.
const (
	noBody    = 4 << 10  // routes that read none; tolerate a stray "{}"
	smallBody = 64 << 10 // {"timeout": n} and friends
	createMax = 1 << 20  // a create with metadata and env vars
	buildMax  = 8 << 20  // a template build: every step's arguments
	uploadMax = 4 << 30  // a COPY step's files (builder.Config.MaxUpload)
)

// defaultBodyReadTimeout bounds how long a client may take to send a
// request body (Config.BodyReadTimeout).
const defaultBodyReadTimeout = 30 * time.Second

// route is one line of the route table: every route states who may call it
// and how large a body it takes, so neither can be forgotten.
type route struct {
	pattern string
	access  access
	maxBody int64
	h       http.HandlerFunc
}

func (s *Server) routes() {
	for _, rt := range s.table() {
		s.mux.Handle(rt.pattern, s.guard(rt))
	}
}

// table is every route of the control API.
func (s *Server) table() []route {
	return []route{
		{"GET /health", open, noBody, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }},

		{"POST /sandboxes", team, createMax, s.createSandbox},
		{"GET /sandboxes", team, noBody, s.listSandboxesV1},
		{"GET /v2/sandboxes", team, noBody, s.listSandboxesV2},
		{"GET /sandboxes/{id}", owner, noBody, s.getSandbox},
		{"DELETE /sandboxes/{id}", owner, noBody, s.killSandbox},
		{"POST /sandboxes/{id}/timeout", owner, smallBody, s.setTimeout},
		{"POST /sandboxes/{id}/refreshes", owner, smallBody, s.refresh},
		{"POST /sandboxes/{id}/connect", owner, smallBody, s.connect},
		{"POST /sandboxes/{id}/resume", owner, smallBody, s.resume},
		{"POST /sandboxes/{id}/pause", owner, smallBody, s.pause},
		{"GET /sandboxes/{id}/metrics", owner, noBody, s.metrics},
		{"GET /sandboxes/{id}/logs", owner, noBody, s.logs},

		{"GET /templates", team, noBody, s.listTemplates},
		// One pattern for both: Go's mux refuses the pair as ambiguous
		// (/templates/aliases/tags matches each).
		{"GET /templates/{id}/{sub}", team, noBody, s.templateAliasOrTags},
		{"DELETE /templates/{id}", team, noBody, s.deleteTemplate},

		// E2B routes Airlock does not serve yet: 501 with E2B's body, never
		// a 404 the SDKs would read as "sandbox not found".
		{"POST /sandboxes/{id}/fork", owner, smallBody, notImplemented("fork")},
		{"PUT /sandboxes/{id}/network", owner, smallBody, notImplemented("updating a sandbox's network")},
		{"POST /sandboxes/{id}/snapshots", owner, smallBody, notImplemented("snapshots")},
		{"GET /v2/sandboxes/{id}/logs", owner, noBody, notImplemented("v2 logs")},
		{"GET /sandboxes/metrics", team, noBody, notImplemented("metrics of many sandboxes")},
		{"GET /snapshots", team, noBody, notImplemented("snapshots")},
		{"POST /v3/templates", team, smallBody, s.requestBuild},
		{"POST /v2/templates/{id}/builds/{buildID}", team, buildMax, s.startBuild},
		{"GET /templates/{id}/builds/{buildID}/status", team, noBody, s.buildStatus},
		{"GET /templates/{id}/builds/{buildID}/logs", team, noBody, s.buildLogs},
		{"GET /templates/{id}/files/{hash}", team, noBody, s.fileLink},
		{"PUT /templates/{id}/files/{hash}", link, uploadMax, s.uploadFiles},
		{"POST /templates/tags", team, smallBody, s.assignTags},
		{"DELETE /templates/tags", team, smallBody, s.removeTags},
		{"PATCH /v2/templates/{id}", team, smallBody, notImplemented("publishing templates through the API")},
		{"GET /volumes", team, noBody, notImplemented("volumes")},
		{"POST /volumes", team, smallBody, notImplemented("volumes")},
		{"GET /volumes/{id}", team, noBody, notImplemented("volumes")},
		{"DELETE /volumes/{id}", team, noBody, notImplemented("volumes")},
		{"GET /secrets", team, noBody, notImplemented("secrets")},
		{"POST /secrets", team, smallBody, notImplemented("secrets")},
		{"GET /secrets/{id}", team, noBody, notImplemented("secrets")},
		{"POST /secrets/{id}", team, smallBody, notImplemented("secrets")},
		{"DELETE /secrets/{id}", team, noBody, notImplemented("secrets")},

		{"GET /admin/teams", admin, noBody, s.adminTeams},
		{"GET /admin/sandboxes", admin, noBody, s.adminSandboxes},
		{"DELETE /admin/sandboxes/{id}", admin, noBody, s.killSandbox},
	}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.handler.ServeHTTP(w, r)
}

// guard applies a route's body limit and access rule before its handler.
func (s *Server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > rt.maxBody {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", rt.maxBody))
			return
		}
		if rt.access == link {
			r.Body = http.MaxBytesReader(w, r.Body, rt.maxBody)
			rt.h(w, r)
			return
		}
		// The body (bounded, small) is read here, in one place for every
		// route, under a deadline that is lifted once it is in, so the
		// handler's own work (a create can take seconds) is not bounded by it.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rt.maxBody))
		if err != nil {
			// The deadline stays: the server must not wait for the rest of
			// a body it refused, and the connection closes after the answer.
			w.Header().Set("Connection", "close")
			var tooLarge *http.MaxBytesError
			switch {
			case errors.As(err, &tooLarge):
				s.fail(w, r, fmt.Errorf("%w: the limit is %d bytes", errTooLarge, tooLarge.Limit))
			case errors.Is(err, os.ErrDeadlineExceeded):
				s.fail(w, r, errSlowBody)
			default:
				s.fail(w, r, fmt.Errorf("%w: read request body: %v", orchestrator.ErrInvalid, err))
			}
			return
		}
		_ = rc.SetReadDeadline(time.Time{})
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		if rt.access == open {
			rt.h(w, r)
			return
		}
		k, ok := s.authenticate(w, r)
		if !ok {
			return
		}
		switch rt.access {
		case admin:
			if !k.Admin {
				writeError(w, http.StatusForbidden, "this route needs an admin API key (airlock keys create --admin)")
				return
			}
		case owner:
			id := r.PathValue("id")
			teamID, err := s.cfg.Orchestrator.Owner(r.Context(), id)
			if err != nil {
				s.fail(w, r, err)
				return
			}
			if teamID != k.TeamID {
				// As E2B: another team's sandbox does not exist for you.
				s.fail(w, r, fmt.Errorf("%w: %s", orchestrator.ErrNotFound, id))
				return
			}
		}
		rt.h(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, k)))
	})
}

// notImplemented answers 501 for an E2B feature Airlock does not have yet.
func notImplemented(what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotImplemented, what+" is not implemented by Airlock yet ("+r.Method+" "+r.URL.Path+")")
	}
}

// authenticate checks the X-API-KEY header; on failure it has answered.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) (*store.APIKey, bool) {
	key := r.Header.Get(wire.HeaderAPIKey)
	if key == "" {
		writeError(w, http.StatusUnauthorized, "missing API key: set the X-API-KEY header")
		return nil, false
	}
	k, err := apikey.Check(r.Context(), s.cfg.Store, key)
	if err != nil {
		if errors.Is(err, apikey.ErrInvalid) {
			writeError(w, http.StatusUnauthorized, "invalid API key")
			return nil, false
		}
		s.fail(w, r, err)
		return nil, false
	}
	return k, true
}

type callerKey struct{}

// callerTeam is the team of the key that made the request.
func callerTeam(r *http.Request) string {
	if k, ok := r.Context().Value(callerKey{}).(*store.APIKey); ok {
		return k.TeamID
	}
	return ""
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		slog.Debug("write response", "err", err)
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, controlapi.Error{Code: status, Message: msg})
}

// fail maps an error from the layers below to a status code: the one place
// where sentinel errors become wire codes.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status := errdefs.HTTPStatus(err)
	if status >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, err.Error())
}

var (
	errSlowBody = fmt.Errorf("request body not received in time: %w", errdefs.ErrTimeout)
	errTooLarge = fmt.Errorf("request body %w", errdefs.ErrTooLarge)
)

// decode reads a JSON body (read and bounded by guard); unknown
// fields are ignored as the SDKs send extras.
func decode(r *http.Request, v any) error {
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
		_ = json.NewEncoder(e.ResponseWriter).Encode(controlapi.Error{Code: code, Message: strings.ToLower(http.StatusText(code))})
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
