package sandbox

import (
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/filesystem/filesystemconnect"
	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
	"github.com/airlock-sandbox/airlock/sdk/controlapi"
)

// Sandbox is a handle to one running sandbox. It is safe for concurrent use.
type Sandbox struct {
	// ID is the sandbox ID.
	ID          string
	TemplateID  string
	Alias       string
	EnvdVersion string
	// Domain is the sandbox domain from the API ("" means the config's).
	Domain string
	// CreateTiming is an Airlock server's per-phase breakdown of the
	// create that made this sandbox (nil from Connect or another server).
	CreateTiming map[string]time.Duration

	Commands *Commands
	PTY      *PTY
	Files    *Files

	client       *Client
	accessToken  string
	trafficToken string
	envdURL      string
	proc         processconnect.ProcessClient
	fs           filesystemconnect.FilesystemClient
}

func newSandbox(c *Client, sb controlapi.Sandbox) *Sandbox {
	s := &Sandbox{
		ID:          sb.SandboxID,
		TemplateID:  sb.TemplateID,
		Alias:       sb.Alias,
		EnvdVersion: sb.EnvdVersion,
		client:      c,
	}
	if sb.Domain != nil {
		s.Domain = *sb.Domain
	}
	s.accessToken = sb.EnvdAccessToken
	if sb.TrafficAccessToken != nil {
		s.trafficToken = *sb.TrafficAccessToken
	}
	s.envdURL = c.cfg.envdURL(s.ID, s.Domain)
	hc := &envdHTTPClient{s: s, hc: c.cfg.httpClient()}
	copts := []connect.ClientOption{
		connect.WithProtoJSON(),
		// The official SDKs never compress; don't ask envd to either.
		connect.WithAcceptCompression("gzip", nil, nil),
	}
	s.proc = processconnect.NewProcessClient(hc, s.envdURL, copts...)
	s.fs = filesystemconnect.NewFilesystemClient(hc, s.envdURL, copts...)
	s.Commands = &Commands{s: s}
	s.PTY = &PTY{s: s}
	s.Files = &Files{s: s}
	return s
}

// Create creates a sandbox using configuration from the environment and
// conn options.
func Create(ctx context.Context, opts CreateOptions, conn ...Option) (*Sandbox, error) {
	return NewClient(conn...).Create(ctx, opts)
}

// Connect attaches to an existing sandbox by ID, extending its lifetime
// to at least timeout (0 means 300 s).
func Connect(ctx context.Context, sandboxID string, timeout time.Duration, conn ...Option) (*Sandbox, error) {
	return NewClient(conn...).Connect(ctx, sandboxID, timeout)
}

// Kill kills a sandbox by ID; false means it did not exist.
func Kill(ctx context.Context, sandboxID string, conn ...Option) (bool, error) {
	return NewClient(conn...).Kill(ctx, sandboxID)
}

// SetTimeout changes a sandbox's remaining lifetime by ID.
func SetTimeout(ctx context.Context, sandboxID string, timeout time.Duration, conn ...Option) error {
	return NewClient(conn...).SetTimeout(ctx, sandboxID, timeout)
}

// GetInfo returns a sandbox's details by ID.
func GetInfo(ctx context.Context, sandboxID string, conn ...Option) (*Info, error) {
	return NewClient(conn...).GetInfo(ctx, sandboxID)
}

// List returns a paginator over sandboxes.
func List(opts ListOptions, conn ...Option) *Paginator {
	return NewClient(conn...).List(opts)
}

// Client returns the control API client the sandbox was created with.
func (s *Sandbox) Client() *Client { return s.client }

// EnvdAccessToken is the token for envd ("" for an insecure sandbox).
func (s *Sandbox) EnvdAccessToken() string { return s.accessToken }

// TrafficAccessToken guards non-envd ports of private sandboxes.
func (s *Sandbox) TrafficAccessToken() string { return s.trafficToken }

// Kill kills the sandbox. Killing an already gone sandbox is not an error.
func (s *Sandbox) Kill(ctx context.Context) error {
	_, err := s.client.Kill(ctx, s.ID)
	return err
}

// SetTimeout makes the sandbox expire timeout from now.
func (s *Sandbox) SetTimeout(ctx context.Context, timeout time.Duration) error {
	return s.client.SetTimeout(ctx, s.ID, timeout)
}

// GetInfo returns the sandbox's details.
func (s *Sandbox) GetInfo(ctx context.Context) (*Info, error) {
	return s.client.GetInfo(ctx, s.ID)
}

// Connect re-attaches to the sandbox (resuming it when paused), keeping
// the tokens this handle already has.
func (s *Sandbox) Connect(ctx context.Context, timeout time.Duration) error {
	_, err := s.client.Connect(ctx, s.ID, timeout)
	return err
}

// GetHost returns the {port}-{id}.{domain} host for a port in the sandbox.
func (s *Sandbox) GetHost(port int) string {
	return s.client.cfg.host(s.ID, s.Domain, port)
}

// IsRunning asks envd's /health: 2xx means running, 502 means the
// sandbox is gone; anything else is an error.
func (s *Sandbox) IsRunning(ctx context.Context) (bool, error) {
	ctx, cancel := withTimeout(ctx, s.client.cfg.requestTimeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.envdURL+"/health", nil)
	if err != nil {
		return false, newError(ErrInvalidArgument, 0, "", err.Error(), err)
	}
	resp, err := s.doEnvd(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return true, nil
	case resp.StatusCode == http.StatusBadGateway:
		return false, nil
	default:
		return false, envdHTTPError(resp)
	}
}

// setEnvdHeaders adds routing, auth and user headers to an envd request.
func (s *Sandbox) setEnvdHeaders(h http.Header) {
	h.Set("E2b-Sandbox-Id", s.ID)
	h.Set("E2b-Sandbox-Port", strconv.Itoa(EnvdPort))
	h.Set("User-Agent", userAgent())
	if s.accessToken != "" {
		h.Set("X-Access-Token", s.accessToken)
	}
}

// effectiveUser is the user to send: envd before 0.4.0 needs it explicit.
func (s *Sandbox) effectiveUser(user string) string {
	if user == "" && versionLess(s.EnvdVersion, "0.4.0") {
		return "user"
	}
	return user
}

func basicAuth(user string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"))
}

// rpcHeaders sets the per-call headers of an envd RPC.
func (s *Sandbox) rpcHeaders(h http.Header, user string, stream bool) {
	if u := s.effectiveUser(user); u != "" {
		h.Set("Authorization", basicAuth(u))
	}
	if stream {
		h.Set("Keepalive-Ping-Interval", keepaliveSecs)
	}
}

// doEnvd sends a plain HTTP request to envd.
func (s *Sandbox) doEnvd(req *http.Request) (*http.Response, error) {
	s.setEnvdHeaders(req.Header)
	resp, err := s.client.cfg.httpClient().Do(req)
	if err != nil {
		return nil, transportError(err)
	}
	return resp, nil
}

// envdHTTPClient adds the sandbox headers to every Connect request.
type envdHTTPClient struct {
	s  *Sandbox
	hc *http.Client
}

func (c *envdHTTPClient) Do(req *http.Request) (*http.Response, error) {
	c.s.setEnvdHeaders(req.Header)
	return c.hc.Do(req)
}

// unaryCtx bounds a unary RPC by the request timeout.
func (s *Sandbox) unaryCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return withTimeout(ctx, s.client.cfg.requestTimeout())
}
