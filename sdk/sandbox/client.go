package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/controlapi"
	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// Client talks to the control API. It is safe for concurrent use.
type Client struct {
	cfg *Config
}

// NewClient builds a client from the environment and opts.
func NewClient(opts ...Option) *Client {
	return &Client{cfg: NewConfig(opts...)}
}

// Config returns the client's resolved configuration.
func (c *Client) Config() Config { return *c.cfg }

// CreateOptions configures a new sandbox. The zero value creates a
// secured "base" sandbox with a 300 s timeout and internet access.
type CreateOptions struct {
	Template string        // template ID or name; "" means "base"
	Timeout  time.Duration // sandbox lifetime; 0 means 300 s
	Metadata map[string]string
	EnvVars  map[string]string
	// Insecure creates a sandbox without an envd access token.
	Insecure bool
	// DenyInternetAccess blocks outbound traffic.
	DenyInternetAccess bool
	// Network is sent verbatim as the create request's "network" object.
	Network *NetworkConfig
	// Runtime picks the isolation runtime ("runsc" = gVisor, "runc"); ""
	// is the template's, else the server's default. An Airlock extension.
	Runtime string
}

// NetworkConfig is the create request's "network" object.
type NetworkConfig = controlapi.SandboxNetworkConfig

// seconds converts like the JS SDK: ceil(ms/1000).
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// Create creates a sandbox and returns it ready for envd calls.
func (c *Client) Create(ctx context.Context, opts CreateOptions) (*Sandbox, error) {
	if c.cfg.Debug {
		return newSandbox(c, controlapi.Sandbox{SandboxID: debugSandboxID, TemplateID: opts.Template, EnvdVersion: debugEnvd}), nil
	}
	timeout := opts.Timeout
	if timeout == 0 {
		timeout = DefaultSandboxTimeout
	}
	body := controlapi.NewSandbox{
		TemplateID:          opts.Template,
		Timeout:             ptr(seconds(timeout)),
		Secure:              ptr(!opts.Insecure),
		AllowInternetAccess: ptr(!opts.DenyInternetAccess),
		Metadata:            opts.Metadata,
		EnvVars:             opts.EnvVars,
		Network:             opts.Network,
		Runtime:             opts.Runtime,
	}
	if body.TemplateID == "" {
		body.TemplateID = DefaultTemplate
	}
	var sb controlapi.Sandbox
	h, err := c.doHeader(ctx, http.MethodPost, "/sandboxes", body, &sb, "", http.StatusCreated)
	if err != nil {
		return nil, err
	}
	if versionLess(sb.EnvdVersion, "0.1.0") {
		_, _ = c.Kill(ctx, sb.SandboxID)
		return nil, newError(ErrTemplate, 0, "", "you need to update the template to use the new SDK", nil)
	}
	s := newSandbox(c, sb)
	s.CreateTiming = parseTiming(h.Get(wire.HeaderAirlockTiming))
	return s, nil
}

func ptr[T any](v T) *T { return &v }

// Connect attaches to a running sandbox (resuming a paused one) and makes
// sure it lives at least timeout longer (0 means 300 s).
func (c *Client) Connect(ctx context.Context, sandboxID string, timeout time.Duration) (*Sandbox, error) {
	if c.cfg.Debug {
		return newSandbox(c, controlapi.Sandbox{SandboxID: sandboxID, EnvdVersion: debugEnvd}), nil
	}
	if timeout == 0 {
		timeout = DefaultSandboxTimeout
	}
	var sb controlapi.Sandbox
	err := c.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(sandboxID)+"/connect",
		controlapi.Timeout{Timeout: ptr(seconds(timeout))}, &sb,
		fmt.Sprintf("Paused sandbox %s not found", sandboxID), http.StatusOK, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	return newSandbox(c, sb), nil
}

// Kill kills a sandbox. It reports false when the sandbox did not exist.
func (c *Client) Kill(ctx context.Context, sandboxID string) (bool, error) {
	if c.cfg.Debug {
		return true, nil
	}
	err := c.do(ctx, http.MethodDelete, "/sandboxes/"+url.PathEscape(sandboxID), nil, nil, "", http.StatusNoContent)
	if err == nil {
		return true, nil
	}
	if isNotFound(err) {
		return false, nil
	}
	return false, err
}

// SetTimeout sets the sandbox to expire timeout from now; it may shorten
// the lifetime.
func (c *Client) SetTimeout(ctx context.Context, sandboxID string, timeout time.Duration) error {
	if c.cfg.Debug {
		return nil
	}
	return c.do(ctx, http.MethodPost, "/sandboxes/"+url.PathEscape(sandboxID)+"/timeout",
		controlapi.Timeout{Timeout: ptr(seconds(timeout))}, nil,
		fmt.Sprintf("Sandbox %s not found", sandboxID), http.StatusNoContent)
}

// State is a sandbox state as reported by the API.
type State string

// Sandbox states.
const (
	StateRunning State = "running"
	StatePaused  State = "paused"
)

// Info describes a sandbox (GetInfo and List). It marshals to the API's
// field names, so tools can print it as the API would.
type Info struct {
	SandboxID     string            `json:"sandboxID"`
	TemplateID    string            `json:"templateID"`
	Alias         string            `json:"alias,omitempty"`
	StartedAt     time.Time         `json:"startedAt"`
	EndAt         time.Time         `json:"endAt"`
	State         State             `json:"state"`
	CPUCount      int               `json:"cpuCount"`
	MemoryMB      int               `json:"memoryMB"`
	DiskSizeMB    int               `json:"diskSizeMB"`
	EnvdVersion   string            `json:"envdVersion"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	SandboxDomain *string           `json:"domain,omitempty"`
	// AllowInternetAccess is only set by GetInfo.
	AllowInternetAccess *bool `json:"allowInternetAccess,omitempty"`
	// Runtime is the isolation runtime the sandbox runs on (Airlock).
	Runtime string `json:"runtime,omitempty"`
}

func listedInfo(l controlapi.ListedSandbox) Info {
	return Info{
		SandboxID: l.SandboxID, TemplateID: l.TemplateID, Alias: l.Alias,
		StartedAt: l.StartedAt, EndAt: l.EndAt, State: State(l.State),
		CPUCount: l.CpuCount, MemoryMB: l.MemoryMB, DiskSizeMB: l.DiskSizeMB,
		EnvdVersion: l.EnvdVersion, Metadata: l.Metadata, Runtime: l.Runtime,
	}
}

// GetInfo returns a sandbox's details.
func (c *Client) GetInfo(ctx context.Context, sandboxID string) (*Info, error) {
	var d controlapi.SandboxDetail
	err := c.do(ctx, http.MethodGet, "/sandboxes/"+url.PathEscape(sandboxID), nil, &d,
		fmt.Sprintf("Sandbox %s not found", sandboxID), http.StatusOK)
	if err != nil {
		return nil, err
	}
	return &Info{
		SandboxID: d.SandboxID, TemplateID: d.TemplateID, Alias: d.Alias,
		StartedAt: d.StartedAt, EndAt: d.EndAt, State: State(d.State),
		CPUCount: d.CpuCount, MemoryMB: d.MemoryMB, DiskSizeMB: d.DiskSizeMB,
		EnvdVersion: d.EnvdVersion, Metadata: d.Metadata,
		SandboxDomain: d.Domain, AllowInternetAccess: d.AllowInternetAccess, Runtime: d.Runtime,
	}, nil
}

// do sends one control API request. want lists the accepted statuses;
// notFoundMsg (if set) replaces the server message on 404.
func (c *Client) do(ctx context.Context, method, path string, in, out any, notFoundMsg string, want ...int) error {
	_, err := c.doHeader(ctx, method, path, in, out, notFoundMsg, want...)
	return err
}

// doHeader is do that also returns the response headers.
func (c *Client) doHeader(ctx context.Context, method, path string, in, out any, notFoundMsg string, want ...int) (http.Header, error) {
	resp, err := c.send(ctx, method, path, nil, in)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return resp.Header, decodeResponse(resp, out, notFoundMsg, want...)
}

func decodeResponse(resp *http.Response, out any, notFoundMsg string, want ...int) error {
	ok := false
	for _, s := range want {
		ok = ok || resp.StatusCode == s
	}
	if !ok {
		if resp.StatusCode >= 200 && resp.StatusCode < 300 {
			return newError(ErrSandbox, resp.StatusCode, "", "unexpected status "+resp.Status, nil)
		}
		return apiError(resp, notFoundMsg)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return newError(ErrSandbox, resp.StatusCode, "", "decode response: "+err.Error(), err)
	}
	return nil
}

// send performs the request with the API key and SDK headers; the
// request timeout covers the whole response body (callers read it
// before returning).
func (c *Client) send(ctx context.Context, method, path string, query url.Values, in any) (*http.Response, error) {
	if err := c.cfg.checkAPIKey(); err != nil {
		return nil, err
	}
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(raw)
	}
	u := c.cfg.apiURL() + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	ctx, cancel := withTimeout(ctx, c.cfg.requestTimeout())
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		cancel()
		return nil, newError(ErrInvalidArgument, 0, "", err.Error(), err)
	}
	for k, vs := range c.cfg.Headers {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("X-API-KEY", c.cfg.APIKey)
	req.Header.Set("User-Agent", userAgent())
	req.Header.Set("lang", "go")
	req.Header.Set("lang_version", runtime.Version())
	req.Header.Set("package_version", sdkVersion)
	req.Header.Set("publisher", "airlock")
	req.Header.Set("sdk_runtime", "go")
	req.Header.Set("system", runtime.GOOS)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.cfg.httpClient().Do(req)
	if err != nil {
		cancel()
		return nil, transportError(err)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

func userAgent() string { return "airlock-go-sdk/" + sdkVersion }

// withTimeout adds a deadline unless d is 0 or ctx already ends sooner.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// cancelBody releases the request context when the body is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

func isNotFound(err error) bool {
	e, ok := err.(*Error)
	return ok && e.Kind == ErrNotFound
}

// versionLess compares MAJOR.MINOR.PATCH strings; unparsable counts as new.
func versionLess(a, b string) bool {
	pa, oka := parseVersion(a)
	pb, okb := parseVersion(b)
	if !oka || !okb {
		return false
	}
	for i := range 3 {
		if pa[i] != pb[i] {
			return pa[i] < pb[i]
		}
	}
	return false
}

func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	s, _, _ = strings.Cut(strings.TrimPrefix(s, "v"), "-")
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n := 0
		for _, r := range p {
			if r < '0' || r > '9' {
				return v, false
			}
			n = n*10 + int(r-'0')
		}
		v[i] = n
	}
	return v, true
}
