package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// CodeContext is a code interpreter context: one kernel whose state
// (variables, imports, cwd) persists across RunCode calls.
type CodeContext struct {
	ID       string `json:"id"`
	Language string `json:"language"`
	Cwd      string `json:"cwd"`
}

// CodeContextOptions configures CreateCodeContext; the zero value makes a
// Python context in /home/user.
type CodeContextOptions struct {
	Language string `json:"language,omitempty"`
	Cwd      string `json:"cwd,omitempty"`
}

// CreateCodeContext starts a new context.
func (s *Sandbox) CreateCodeContext(ctx context.Context, opts *CodeContextOptions) (*CodeContext, error) {
	if opts == nil {
		opts = &CodeContextOptions{}
	}
	var c CodeContext
	if err := s.interpreterCall(ctx, http.MethodPost, "/contexts", opts, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// ListCodeContexts lists every context, including the default Python and
// JavaScript ones.
func (s *Sandbox) ListCodeContexts(ctx context.Context) ([]CodeContext, error) {
	var cs []CodeContext
	if err := s.interpreterCall(ctx, http.MethodGet, "/contexts", nil, &cs); err != nil {
		return nil, err
	}
	return cs, nil
}

// RestartCodeContext restarts a context's kernel, clearing its state.
func (s *Sandbox) RestartCodeContext(ctx context.Context, contextID string) error {
	return s.interpreterCall(ctx, http.MethodPost, "/contexts/"+url.PathEscape(contextID)+"/restart", nil, nil)
}

// RemoveCodeContext shuts a context's kernel down.
func (s *Sandbox) RemoveCodeContext(ctx context.Context, contextID string) error {
	return s.interpreterCall(ctx, http.MethodDelete, "/contexts/"+url.PathEscape(contextID), nil, nil)
}

// interpreterCall is a unary /contexts call bounded by the request
// timeout; out nil discards the body.
func (s *Sandbox) interpreterCall(ctx context.Context, method, path string, in, out any) error {
	ctx, cancel := withTimeout(ctx, s.client.cfg.requestTimeout())
	defer cancel()
	req, err := s.interpreterRequest(ctx, method, path, in, false)
	if err != nil {
		return err
	}
	resp, err := s.client.cfg.httpClient().Do(req)
	if err != nil {
		return transportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return interpreterHTTPError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return newError(ErrSandbox, resp.StatusCode, "", "decode code interpreter response: "+err.Error(), err)
	}
	return nil
}
