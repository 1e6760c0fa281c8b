package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/process"
	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// envdPort is the port envd listens on inside every sandbox.
var envdPort = strconv.Itoa(wire.EnvdPort)

// TimingHeader is the response header of POST /sandboxes that carries the
// server's per-phase create durations ("phase=1.234ms, ...").
const TimingHeader = "X-Airlock-Timing"

// Client drives an Airlock server through the wire protocol only: the
// control API and envd through the gateway, exactly like an SDK.
type Client struct {
	base   string
	apiKey string
	http   *http.Client
	proc   processconnect.ProcessClient
}

// NewClient returns a client for the server at base (e.g. http://127.0.0.1:3000).
func NewClient(base, apiKey string) *Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
	hc := &http.Client{Transport: tr}
	return &Client{
		base:   base,
		apiKey: apiKey,
		http:   hc,
		proc:   processconnect.NewProcessClient(hc, base, connect.WithProtoJSON()),
	}
}

// Sandbox is what a create returns.
type Sandbox struct {
	ID          string `json:"sandboxID"`
	TemplateID  string `json:"templateID"`
	AccessToken string `json:"envdAccessToken"`
	// Timing is the server's phase breakdown, when it reports one.
	Timing map[string]time.Duration `json:"-"`
}

// Template is the subset of GET /templates the benchmark needs.
type Template struct {
	ID          string   `json:"templateID"`
	Aliases     []string `json:"aliases"`
	BuildStatus string   `json:"buildStatus"`
}

// errStatus reports an unexpected HTTP status.
var errStatus = errors.New("unexpected HTTP status")

func (c *Client) do(ctx context.Context, method, path string, body any, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-API-KEY", c.apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("%w: %s %s: %d %s", errStatus, method, path, resp.StatusCode, bytes.TrimSpace(msg))
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return nil, fmt.Errorf("decode %s %s: %w", method, path, err)
		}
	} else {
		_, _ = io.Copy(io.Discard, resp.Body)
	}
	return resp.Header, nil
}

// Templates lists the server's templates.
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	var out []Template
	_, err := c.do(ctx, http.MethodGet, "/templates", nil, &out)
	return out, err
}

// Create starts a sandbox from template with the given timeout.
func (c *Client) Create(ctx context.Context, template string, timeout time.Duration) (*Sandbox, error) {
	body := map[string]any{"templateID": template, "timeout": int64(timeout / time.Second)}
	var sb Sandbox
	h, err := c.do(ctx, http.MethodPost, "/sandboxes", body, &sb)
	if err != nil {
		return nil, err
	}
	sb.Timing = ParseTiming(h.Get(TimingHeader))
	return &sb, nil
}

// Kill removes a sandbox.
func (c *Client) Kill(ctx context.Context, id string) error {
	_, err := c.do(ctx, http.MethodDelete, "/sandboxes/"+url.PathEscape(id), nil, nil)
	return err
}

func (c *Client) envdHeaders(h http.Header, sb *Sandbox) {
	h.Set("E2b-Sandbox-Id", sb.ID)
	h.Set("E2b-Sandbox-Port", envdPort)
	if sb.AccessToken != "" {
		h.Set("X-Access-Token", sb.AccessToken)
	}
}

// Run executes cmd args... in the sandbox through envd's process service
// and returns its stdout once it has exited.
func (c *Client) Run(ctx context.Context, sb *Sandbox, cmd string, args ...string) ([]byte, error) {
	req := connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: cmd, Args: args}})
	c.envdHeaders(req.Header(), sb)
	stream, err := c.proc.Start(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd, err)
	}
	defer stream.Close()
	var stdout []byte
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		if d := ev.GetData(); d != nil {
			stdout = append(stdout, d.GetStdout()...)
		}
		if end := ev.GetEnd(); end != nil {
			if end.GetExitCode() != 0 {
				return stdout, fmt.Errorf("%s exited with %d (%s)", cmd, end.GetExitCode(), end.GetStatus())
			}
			return stdout, nil
		}
	}
	if err := stream.Err(); err != nil {
		return stdout, fmt.Errorf("run %s: %w", cmd, err)
	}
	return stdout, fmt.Errorf("run %s: stream ended without an end event", cmd)
}

// WriteFile uploads data to path in the sandbox as an octet stream.
func (c *Client) WriteFile(ctx context.Context, sb *Sandbox, path string, data []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/files?path="+url.QueryEscape(path), bytes.NewReader(data))
	if err != nil {
		return err
	}
	c.envdHeaders(req.Header, sb)
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: write %s: %d", errStatus, path, resp.StatusCode)
	}
	return nil
}

// ReadFile downloads path from the sandbox and returns its size.
func (c *Client) ReadFile(ctx context.Context, sb *Sandbox, path string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/files?path="+url.QueryEscape(path), nil)
	if err != nil {
		return 0, err
	}
	c.envdHeaders(req.Header, sb)
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return n, err
	}
	if resp.StatusCode != http.StatusOK {
		return n, fmt.Errorf("%w: read %s: %d", errStatus, path, resp.StatusCode)
	}
	return n, nil
}

// ParseTiming parses "phase=dur, phase=dur" (Go duration syntax) and
// ignores malformed parts; an empty header yields nil.
func ParseTiming(h string) map[string]time.Duration {
	if h == "" {
		return nil
	}
	out := map[string]time.Duration{}
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			continue
		}
		if d, err := time.ParseDuration(v); err == nil {
			out[k] = d
		}
	}
	return out
}
