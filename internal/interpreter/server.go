package interpreter

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// ErrContextNotFound is returned for an unknown context id.
var ErrContextNotFound = errors.New("context not found")

// ErrUnsupportedLanguage means no kernel factory exists for a language.
var ErrUnsupportedLanguage = errors.New("unsupported language")

const (
	defaultCwd        = "/home/user"
	defaultKeepalive  = 5 * time.Second
	kernelStartBudget = 2 * time.Minute
	envdFetchTimeout  = 5 * time.Second
)

// defaultEnvdURL is envd inside the same sandbox.
var defaultEnvdURL = "http://127.0.0.1:" + strconv.Itoa(wire.EnvdPort)

// DefaultPreload are the contexts Run creates at startup, like E2B's server.
var DefaultPreload = []string{"python", "javascript"}

// ServerOptions configure a Server; zero values pick the defaults.
type ServerOptions struct {
	EnvdURL    string             // envd base URL, for GET /envs
	DefaultCwd string             // cwd of contexts created without one
	Factories  map[string]Factory // language → kernel factory; nil = built-in
	Log        *slog.Logger
	// Keepalive is the silence after which a keepalive line is sent (5 s).
	Keepalive time.Duration
}

// Server is the code-interpreter HTTP server: contexts and /execute.
type Server struct {
	opts   ServerOptions
	log    *slog.Logger
	client *http.Client
	base   context.Context // lifetime of kernels started by the server
	stop   context.CancelFunc

	mu         sync.Mutex
	contexts   map[string]*execContext
	order      []string                // context ids in creation order
	defaults   map[string]*execContext // per-language default context
	sandboxEnv map[string]string       // last env fetched from envd

	tokenOK   [sha256.Size]byte // hash of the last token envd accepted
	tokenTill time.Time         // when that answer goes stale
}

// execContext is one kernel session. turn serialises executions (a channel
// rather than a mutex so waiting can be abandoned and waiters are FIFO).
type execContext struct {
	id, language, cwd string
	ready             chan struct{} // closed once kernel or err is set
	kernel            Kernel
	err               error
	turn              chan struct{}

	mu         sync.Mutex // guards the fields below
	envApplied bool       // sandbox env fetched and applied to this kernel
	env        map[string]string
	dead       bool // the kernel died; restart before the next execution
	envWarned  bool // a failed envd fetch was logged at warning level
}

// NewServer returns a server with no contexts; see Preload.
func NewServer(opts ServerOptions) *Server {
	if opts.EnvdURL == "" {
		opts.EnvdURL = defaultEnvdURL
	}
	if opts.DefaultCwd == "" {
		opts.DefaultCwd = defaultCwd
	}
	if opts.Factories == nil {
		opts.Factories = BuiltinFactories()
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Keepalive <= 0 {
		opts.Keepalive = defaultKeepalive
	}
	base, stop := context.WithCancel(context.Background())
	return &Server{
		opts:     opts,
		log:      opts.Log,
		client:   &http.Client{Timeout: envdFetchTimeout},
		base:     base,
		stop:     stop,
		contexts: map[string]*execContext{},
		defaults: map[string]*execContext{},
	}
}

// Handler serves the code-interpreter API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, "OK") })
	// /execute runs code, so it needs the sandbox's access token; the context
	// routes do not run code and the official SDKs call them without one.
	mux.Handle("POST /execute", s.requireToken(http.HandlerFunc(s.handleExecute)))
	mux.HandleFunc("POST /contexts", s.handleCreateContext)
	mux.HandleFunc("GET /contexts", s.handleListContexts)
	mux.HandleFunc("DELETE /contexts/{id}", s.handleDeleteContext)
	mux.HandleFunc("POST /contexts/{id}/restart", s.handleRestartContext)
	return mux
}

// Preload starts the default contexts of languages in the background.
// Failures are logged; the next /execute for the language retries.
func (s *Server) Preload(languages ...string) {
	for _, lang := range languages {
		go func() {
			start := time.Now()
			c, err := s.defaultContext(lang)
			if err == nil {
				err = c.wait(s.base)
			}
			if err != nil {
				s.log.Warn("preloading context failed", "language", lang, "err", err)
				return
			}
			s.log.Info("context ready", "language", lang, "id", c.id, "took", time.Since(start).Round(time.Millisecond))
		}()
	}
}

// Close stops every kernel.
func (s *Server) Close() error {
	s.stop()
	s.mu.Lock()
	all := make([]*execContext, 0, len(s.contexts))
	for _, c := range s.contexts {
		all = append(all, c)
	}
	s.contexts = map[string]*execContext{}
	s.defaults = map[string]*execContext{}
	s.order = nil
	s.mu.Unlock()
	var errs []error
	for _, c := range all {
		errs = append(errs, c.close())
	}
	return errors.Join(errs...)
}

// normalizeLanguage lower-cases and resolves aliases; empty means python.
func normalizeLanguage(s string) string {
	switch l := strings.ToLower(strings.TrimSpace(s)); l {
	case "":
		return "python"
	case "js":
		return "javascript"
	case "ts":
		return "typescript"
	default:
		return l
	}
}

// newContext registers a context and starts its kernel in the background.
// Callers wait on c.ready. s.mu must be held.
func (s *Server) newContextLocked(language, cwd string) (*execContext, error) {
	factory, ok := s.opts.Factories[language]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedLanguage, language)
	}
	if cwd == "" {
		cwd = s.opts.DefaultCwd
	}
	c := &execContext{
		id:       newID(),
		language: language,
		cwd:      cwd,
		ready:    make(chan struct{}),
		turn:     make(chan struct{}, 1),
	}
	s.contexts[c.id] = c
	s.order = append(s.order, c.id)
	env := maps.Clone(s.sandboxEnv)
	go func() {
		ctx, cancel := context.WithTimeout(s.base, kernelStartBudget)
		defer cancel()
		start := time.Now()
		k, err := factory(ctx, KernelOptions{Language: language, Cwd: cwd, Env: env})
		if err != nil {
			c.err = fmt.Errorf("start %s kernel: %w", language, err)
			s.remove(c)
		} else {
			c.kernel = k
			s.log.Debug("kernel started", "language", language, "id", c.id, "took", time.Since(start))
		}
		close(c.ready)
	}()
	return c, nil
}

// defaultContext returns the per-language default context, creating it.
func (s *Server) defaultContext(language string) (*execContext, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.defaults[language]; ok {
		return c, nil
	}
	c, err := s.newContextLocked(language, "")
	if err != nil {
		return nil, err
	}
	s.defaults[language] = c
	return c, nil
}

func (s *Server) lookup(id string) (*execContext, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.contexts[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrContextNotFound, id)
	}
	return c, nil
}

// remove forgets c (and un-defaults it); it reports whether c was known.
func (s *Server) remove(c *execContext) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.contexts[c.id] != c {
		return false
	}
	delete(s.contexts, c.id)
	s.order = slices.DeleteFunc(s.order, func(id string) bool { return id == c.id })
	if s.defaults[c.language] == c {
		delete(s.defaults, c.language)
	}
	return true
}

// wait blocks until the kernel started (or failed to).
func (c *execContext) wait(ctx context.Context) error {
	select {
	case <-c.ready:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *execContext) close() error {
	<-c.ready
	if c.kernel == nil {
		return nil
	}
	return c.kernel.Close()
}

type contextJSON struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
}

func (c *execContext) json() contextJSON {
	return contextJSON{ID: c.id, Language: c.language, Cwd: c.cwd}
}

func (s *Server) handleCreateContext(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Language *string `json:"language"`
		Cwd      *string `json:"cwd"`
	}
	if err := decodeBody(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	lang := normalizeLanguage(deref(req.Language))
	s.mu.Lock()
	c, err := s.newContextLocked(lang, deref(req.Cwd))
	s.mu.Unlock()
	if err == nil {
		err = c.wait(r.Context())
	}
	if err != nil {
		s.log.Warn("create context", "language", lang, "err", err)
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	writeJSON(w, c.json())
}

func (s *Server) handleListContexts(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := make([]contextJSON, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.contexts[id].json())
	}
	s.mu.Unlock()
	writeJSON(w, out)
}

func (s *Server) handleDeleteContext(w http.ResponseWriter, r *http.Request) {
	c, err := s.lookup(r.PathValue("id"))
	if err != nil {
		notFound(w, r.PathValue("id"))
		return
	}
	s.remove(c)
	if err := c.close(); err != nil {
		s.log.Warn("close context", "id", c.id, "err", err)
	}
	writeJSON(w, nil)
}

func (s *Server) handleRestartContext(w http.ResponseWriter, r *http.Request) {
	c, err := s.lookup(r.PathValue("id"))
	if err != nil {
		notFound(w, r.PathValue("id"))
		return
	}
	if err := c.wait(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// Not under c.turn: a restart is how a stuck execution gets unstuck.
	if err := c.kernel.Restart(r.Context()); err != nil {
		http.Error(w, fmt.Sprintf("restart context %s: %v", c.id, err), http.StatusInternalServerError)
		return
	}
	c.mu.Lock()
	c.envApplied, c.dead = false, false
	c.mu.Unlock()
	writeJSON(w, nil)
}

func notFound(w http.ResponseWriter, id string) {
	http.Error(w, fmt.Sprintf("Context %s not found", id), http.StatusNotFound)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(v); err != nil {
		// The client is gone; nothing useful to do.
		return
	}
}

// decodeBody decodes an optional JSON body (empty means all defaults).
func decodeBody(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// newID returns a random UUID (version 4), like Jupyter kernel ids.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
