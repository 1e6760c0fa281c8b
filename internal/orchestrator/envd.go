package orchestrator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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

// waitReady polls envd's /health until it answers.
func (c *envdClient) waitReady(ctx context.Context, ip netip.Addr, timeout time.Duration) error {
	return c.waitHealth(ctx, c.url(ip, "/health"), timeout)
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
