package interpreter

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"sync"
	"time"
)

// envSetter is an optional kernel capability: set sandbox-level variables
// for good (the per-execution env of Execute is restored afterwards). Kernels
// without it get the sandbox env merged into every execution's env.
type envSetter interface {
	SetEnv(ctx context.Context, env map[string]string) error
}

type executeRequest struct {
	Code      *string           `json:"code"`
	ContextID *string           `json:"context_id"`
	Language  *string           `json:"language"`
	EnvVars   map[string]string `json:"env_vars"`
}

func (s *Server) handleExecute(w http.ResponseWriter, r *http.Request) {
	var req executeRequest
	if err := decodeBody(r, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Code == nil {
		http.Error(w, "code is required", http.StatusBadRequest)
		return
	}
	if req.ContextID != nil && req.Language != nil {
		http.Error(w, "Only one of context_id or language can be provided", http.StatusBadRequest)
		return
	}
	var (
		c   *execContext
		err error
	)
	if req.ContextID != nil {
		if c, err = s.lookup(*req.ContextID); err != nil {
			notFound(w, *req.ContextID)
			return
		}
	} else if c, err = s.defaultContext(normalizeLanguage(deref(req.Language))); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if err := c.wait(r.Context()); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	st := newStream(w, cancel)
	w.WriteHeader(http.StatusOK)
	st.flush()
	stopKeepalive := st.keepalive(s.opts.Keepalive)
	defer stopKeepalive()

	// Queue behind earlier executions of this context.
	select {
	case c.turn <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-c.turn }()

	s.run(ctx, c, r.Header.Get("X-Access-Token"), *req.Code, req.EnvVars, st)
}

// run executes one cell with the context's turn held and ends the stream.
func (s *Server) run(ctx context.Context, c *execContext, token, code string, env map[string]string, st *stream) {
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if dead {
		if err := c.kernel.Restart(ctx); err != nil {
			st.error(ExecError{Name: "KernelDied", Value: fmt.Sprintf("restarting the dead kernel failed: %v", err)})
			st.end()
			return
		}
		c.mu.Lock()
		c.dead, c.envApplied = false, false
		c.mu.Unlock()
	}

	env = s.executionEnv(ctx, c, token, env)
	err := c.kernel.Execute(ctx, code, env, st)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		// The client is gone (or stopped reading); the kernel was interrupted.
		s.log.Info("execution interrupted", "context", c.id, "err", err)
	case errors.Is(err, ErrKernelDied):
		c.mu.Lock()
		c.dead = true
		c.mu.Unlock()
		s.log.Warn("kernel died", "context", c.id, "err", err)
		st.error(ExecError{
			Name:  "KernelDied",
			Value: fmt.Sprintf("%v; the context's state is lost and it restarts on the next execution", err),
		})
	default:
		s.log.Warn("execution failed", "context", c.id, "err", err)
		st.error(ExecError{Name: "UnexpectedEndOfExecution", Value: err.Error()})
	}
	st.end()
}

// executionEnv makes sure the sandbox-level env reached the kernel (fetched
// from envd on the context's first execution) and returns the env to pass
// to Execute.
func (s *Server) executionEnv(ctx context.Context, c *execContext, token string, perExec map[string]string) map[string]string {
	c.mu.Lock()
	applied, sandbox := c.envApplied, c.env
	c.mu.Unlock()
	setter, canSet := c.kernel.(envSetter)
	if !applied {
		fetched, ok := ctx.Value(fetchedEnvKey{}).(map[string]string)
		var err error
		if !ok {
			fetched, err = s.fetchEnvs(ctx, token)
		}
		if err != nil {
			level := slog.LevelWarn
			if c.envWarned {
				level = slog.LevelDebug
			}
			c.envWarned = true
			s.log.Log(ctx, level, "cannot read sandbox env from envd; retrying on the next execution", "context", c.id, "err", err)
		} else {
			if canSet && len(fetched) > 0 {
				err = setter.SetEnv(ctx, fetched)
			}
			if err != nil {
				s.log.Warn("applying sandbox env", "context", c.id, "err", err)
			} else {
				sandbox = fetched
				c.mu.Lock()
				c.envApplied, c.env = true, fetched
				c.mu.Unlock()
			}
		}
	}
	if canSet || len(sandbox) == 0 {
		return perExec
	}
	merged := maps.Clone(sandbox)
	maps.Copy(merged, perExec)
	return merged
}

// fetchEnvs reads the sandbox env vars from envd.
func (s *Server) fetchEnvs(ctx context.Context, token string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.opts.EnvdURL+"/envs", nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("X-Access-Token", token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("envd /envs: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, errUnauthorized
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("envd /envs: status %s", resp.Status)
	}
	var env map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, fmt.Errorf("envd /envs: %w", err)
	}
	s.mu.Lock()
	s.sandboxEnv = env
	s.mu.Unlock()
	return env, nil
}

// stream writes NDJSON lines to the response, one flush per line. It is the
// Emitter handed to kernels. A failed write cancels the execution.
type stream struct {
	mu       sync.Mutex
	w        http.ResponseWriter
	rc       *http.ResponseController
	cancel   context.CancelFunc
	last     time.Time
	failed   bool
	hasError bool
}

var _ Emitter = (*stream)(nil)

func newStream(w http.ResponseWriter, cancel context.CancelFunc) *stream {
	return &stream{w: w, rc: http.NewResponseController(w), cancel: cancel, last: time.Now()}
}

func (st *stream) write(line []byte, err error) {
	if err != nil {
		// Only our own structs are encoded; log-worthy but never fatal.
		line, _ = encodeError(ExecError{Name: "EncodingError", Value: err.Error()})
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.failed {
		return
	}
	if _, werr := st.w.Write(line); werr == nil {
		werr = st.rc.Flush()
		if werr == nil {
			st.last = time.Now()
			return
		}
	}
	st.failed = true
	st.cancel()
}

func (st *stream) flush() {
	st.mu.Lock()
	defer st.mu.Unlock()
	_ = st.rc.Flush()
}

// keepalive writes a keepalive line after every interval of silence until
// the returned stop function is called.
func (st *stream) keepalive(interval time.Duration) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(interval / 5)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				st.mu.Lock()
				silent := time.Since(st.last) >= interval
				st.mu.Unlock()
				if silent {
					st.write(encodeType(lineKeepalive))
				}
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}

func (st *stream) ExecutionCount(n int)             { st.write(encodeCount(n)) }
func (st *stream) Stdout(text string, at time.Time) { st.write(encodeStream(lineStdout, text, at)) }
func (st *stream) Stderr(text string, at time.Time) { st.write(encodeStream(lineStderr, text, at)) }
func (st *stream) Result(r Result)                  { st.write(encodeResult(r)) }

// Error emits the execution's error; only the first one is sent.
func (st *stream) Error(e ExecError) { st.error(e) }

func (st *stream) error(e ExecError) {
	st.mu.Lock()
	dup := st.hasError
	st.hasError = true
	st.mu.Unlock()
	if !dup {
		st.write(encodeError(e))
	}
}

func (st *stream) end() { st.write(encodeType(lineEnd)) }
