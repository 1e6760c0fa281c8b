package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// envdInit is the body of envd's POST /init.
type envdInit struct {
	EnvVars     map[string]string `json:"envVars"`
	AccessToken string            `json:"accessToken,omitempty"`
	DefaultUser string            `json:"defaultUser,omitempty"`
	Timestamp   time.Time         `json:"timestamp"`
}

// envdClient talks to envd over the bridge, bypassing the gateway.
type envdClient struct {
	http *http.Client
	port int
}

func newEnvdClient(port int) *envdClient {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: time.Second}).DialContext,
		MaxIdleConnsPerHost: 2,
		IdleConnTimeout:     30 * time.Second,
	}
	return &envdClient{http: &http.Client{Transport: tr}, port: port}
}

func (c *envdClient) close() { c.http.CloseIdleConnections() }

func (c *envdClient) url(ip netip.Addr, path string) string {
	return "http://" + net.JoinHostPort(ip.String(), strconv.Itoa(c.port)) + path
}

// waitSignalled waits for envd to write to its ready pipe. If the pipe
// closes without a word (a driver that cannot pass descriptors, or an envd
// that died), it falls back to polling /health, which then decides.
func (c *envdClient) waitSignalled(ctx context.Context, ready *os.File, ip netip.Addr, timeout time.Duration) error {
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
	return c.waitHealth(ctx, c.url(ip, "/health"), time.Until(deadline))
}

// waitHealth polls url until it answers 2xx. For the first 200ms it polls
// every millisecond: servers in a fresh sandbox start within milliseconds
// and a refused connect costs microseconds, whereas a doubling back-off
// wasted up to half the start time in sleep.
func (c *envdClient) waitHealth(ctx context.Context, url string, timeout time.Duration) error {
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

func (c *envdClient) init(ctx context.Context, ip netip.Addr, body envdInit) error {
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
