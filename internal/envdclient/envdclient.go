// Package envdclient is the server's client of envd inside a sandbox: it
// waits for envd to come up, configures it (POST /init) and starts a
// template's start command, over the host bridge, bypassing the gateway.
package envdclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"

	"connectrpc.com/connect"

	rpc "github.com/airlock-sandbox/airlock/proto/process"
	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
	"github.com/airlock-sandbox/airlock/sdk/envdapi"
	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// StartCmdTag tags a template's start command in envd's process list.
const StartCmdTag = "start-cmd"

// startCmdTimeout bounds waiting for envd to report the start command spawned.
const startCmdTimeout = 10 * time.Second

// Client talks to envd over the bridge, bypassing the gateway.
type Client struct {
	http *http.Client
	port int
}

// New returns a client of envd listening on port in every sandbox.
func New(port int) *Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &Client{http: &http.Client{Transport: tr}, port: port}
}

// Close drops idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

func (c *Client) url(ip netip.Addr, path string) string {
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(c.port)) + path
}

// WaitSignalled waits for envd to write to its ready pipe. If the pipe
// closes without a word (a driver that cannot pass descriptors, or an envd
// that died), it falls back to polling /health, which then decides.
func (c *Client) WaitSignalled(ctx context.Context, ready *os.File, ip netip.Addr, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	if err := ready.SetReadDeadline(deadline); err == nil {
		stop := context.AfterFunc(ctx, func() { _ = ready.SetReadDeadline(time.Now()) })
		var buf [16]byte
		n, err := ready.Read(buf[:])
		stop()
		if n > 0 && string(buf[:n]) == "ready\n" {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fmt.Errorf("no ready signal within %v", timeout)
		}
	}
	return c.WaitHealth(ctx, c.url(ip, "/health"), time.Until(deadline))
}

// WaitHealth polls url until it answers 2xx. For the first 200ms it polls
// every millisecond: servers in a fresh sandbox start within milliseconds
// and a refused connect costs microseconds, whereas a doubling back-off
// wasted up to half the start time in sleep.
func (c *Client) WaitHealth(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start, delay := time.Now(), time.Millisecond
	var lastErr error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := c.http.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
			lastErr = fmt.Errorf("health status %d", resp.StatusCode)
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last error: %v)", ctx.Err(), lastErr)
		case <-time.After(delay):
		}
		if time.Since(start) > 200*time.Millisecond {
			delay = 10 * time.Millisecond
		}
	}
}

// Init configures envd (its token, env vars and default user).
func (c *Client) Init(ctx context.Context, ip netip.Addr, body envdapi.Init) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url(ip, "/init"), bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("envd /init: status %d", resp.StatusCode)
	}
	return nil
}

// maxMetricsBody bounds what a (possibly hostile) envd may answer to
// /metrics: the real answer is a few hundred bytes.
const maxMetricsBody = 64 << 10

// Metrics asks envd for the sandbox's own view of its resources (what
// `df /` and `free` show inside). The sandbox controls that answer, so it is
// for display only; limits are enforced from the host.
func (c *Client) Metrics(ctx context.Context, ip netip.Addr, token string) (*envdapi.Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url(ip, "/metrics"), nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set(wire.HeaderAccessToken, token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("envd /metrics: status %d", resp.StatusCode)
	}
	var m envdapi.Metrics
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxMetricsBody)).Decode(&m); err != nil {
		return nil, fmt.Errorf("envd /metrics: %w", err)
	}
	return &m, nil
}

// StartCmd starts cmd in the sandbox through envd's process service, as
// E2B's startCmd: `bash -l -c cmd` as user, so it gets the login
// environment and the sandbox's env vars. It returns once envd reports the
// process started; the process keeps running after the stream is closed
// because the request carries no deadline (envd would kill it at one).
func (c *Client) StartCmd(ctx context.Context, ip netip.Addr, token, user, cmd string) (pid uint32, err error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel() // closes the stream; the process lives on
	timer := time.AfterFunc(startCmdTimeout, cancel)
	defer timer.Stop()

	tag := StartCmdTag
	stream, err := c.startShell(ctx, ip, token, user, "", cmd, &tag)
	if err != nil {
		return 0, err
	}
	defer stream.Close()
	for stream.Receive() {
		if st := stream.Msg().GetEvent().GetStart(); st != nil {
			return st.GetPid(), nil
		}
	}
	if err := stream.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("envd closed the stream before the process started")
}

// RunCmd runs cmd (bash -l -c, as user, in cwd if set) to its end and
// returns its exit code; ctx bounds it (envd kills it at the deadline).
func (c *Client) RunCmd(ctx context.Context, ip netip.Addr, token, user, cwd, cmd string) (int, error) {
	stream, err := c.startShell(ctx, ip, token, user, cwd, cmd, nil)
	if err != nil {
		return 0, err
	}
	defer stream.Close()
	for stream.Receive() {
		if end := stream.Msg().GetEvent().GetEnd(); end != nil {
			return int(end.GetExitCode()), nil
		}
	}
	if err := stream.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("envd closed the stream before the process ended")
}

// startShell starts `bash -l -c cmd` as user (in cwd if set, with tag if
// set, no stdin) through envd's process service and returns its stream.
func (c *Client) startShell(ctx context.Context, ip netip.Addr, token, user, cwd, cmd string, tag *string) (*connect.ServerStreamForClient[rpc.StartResponse], error) {
	client := processconnect.NewProcessClient(c.http, c.url(ip, ""), connect.WithProtoJSON())
	stdin := false
	cfg := &rpc.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}, Envs: map[string]string{}}
	if cwd != "" {
		cfg.Cwd = &cwd
	}
	req := connect.NewRequest(&rpc.StartRequest{Process: cfg, Tag: tag, Stdin: &stdin})
	if token != "" {
		req.Header().Set(wire.HeaderAccessToken, token)
	}
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	return client.Start(ctx, req)
}

// WaitPort polls http://ip:port/health until it answers 2xx, the way E2B's
// code-interpreter template waits for its server before a sandbox is handed
// out: the SDK sends /execute right after create.
func (c *Client) WaitPort(ctx context.Context, ip netip.Addr, port int, timeout time.Duration) error {
	return c.WaitHealth(ctx, "http://"+net.JoinHostPort(ip.String(), strconv.Itoa(port))+"/health", timeout)
}
