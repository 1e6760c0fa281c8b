package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// apiCall is a control API request for the routes the SDK does not cover
// (logs, metrics, templates). Errors map to the SDK's sentinel errors so
// exit codes stay consistent.
func (f *clientFlags) apiCall(ctx context.Context, method, path string, query url.Values, out any) error {
	c, e := f.client()
	cfg := c.Config()
	if e.apiKey == "" {
		return &sandbox.Error{Kind: sandbox.ErrAuthentication, Message: "API key is required: set E2B_API_KEY or use --api-key"}
	}
	u := e.apiURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, sandbox.DefaultRequestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("X-API-Key", e.apiKey)
	hc := cfg.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return httpError(resp)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// httpError turns an error response into an *sandbox.Error of the right kind.
func httpError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body struct {
		Message string `json:"message"`
	}
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &body) == nil && body.Message != "" {
		msg = body.Message
	}
	kind := sandbox.ErrSandbox
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		kind = sandbox.ErrAuthentication
	// 403 (a built-in template, an admin route) is a refusal, not a bad key.
	case http.StatusNotFound:
		kind = sandbox.ErrNotFound
	case http.StatusBadRequest:
		kind = sandbox.ErrInvalidArgument
	case http.StatusTooManyRequests:
		kind = sandbox.ErrRateLimit
	}
	return &sandbox.Error{Kind: kind, Status: resp.StatusCode, Message: msg}
}

// logEntry is one line of GET /sandboxes/{id}/logs.
type logEntry struct {
	Timestamp time.Time         `json:"timestamp"`
	Level     string            `json:"level"`
	Message   string            `json:"message"`
	Fields    map[string]string `json:"fields,omitempty"`
}

type logsResponse struct {
	LogEntries []logEntry `json:"logEntries"`
}

// metric is one sample of GET /sandboxes/{id}/metrics.
type metric struct {
	Timestamp  time.Time `json:"timestamp"`
	CPUCount   int       `json:"cpuCount"`
	CPUUsedPct float64   `json:"cpuUsedPct"`
	MemUsed    uint64    `json:"memUsed"`
	MemTotal   uint64    `json:"memTotal"`
	MemCache   uint64    `json:"memCache,omitempty"`
	DiskUsed   uint64    `json:"diskUsed"`
	DiskTotal  uint64    `json:"diskTotal"`
}

// templateInfo is one entry of GET /templates.
type templateInfo struct {
	TemplateID    string     `json:"templateID"`
	BuildID       string     `json:"buildID"`
	CPUCount      int        `json:"cpuCount"`
	MemoryMB      int        `json:"memoryMB"`
	DiskSizeMB    int        `json:"diskSizeMB"`
	Public        bool       `json:"public"`
	Aliases       []string   `json:"aliases"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
	LastSpawnedAt *time.Time `json:"lastSpawnedAt"`
	SpawnCount    int64      `json:"spawnCount"`
	EnvdVersion   string     `json:"envdVersion"`
	BuildStatus   string     `json:"buildStatus"`
}
