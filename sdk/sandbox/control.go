package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/controlapi"
)

// The control API's remaining routes: templates, a sandbox's log and its
// metrics. Their wire shapes are the generated controlapi types.

// Template describes a template (GET /templates).
type Template = controlapi.Template

// LogEntry is one entry of a sandbox's log.
type LogEntry = controlapi.SandboxLogEntry

// Metric is one sample of a sandbox's resource usage.
type Metric = controlapi.SandboxMetric

// Templates lists the templates the caller's team may use: its own and
// the built-in ones.
func (c *Client) Templates(ctx context.Context) ([]Template, error) {
	var out []Template
	if err := c.do(ctx, http.MethodGet, "/templates", nil, &out, "", http.StatusOK); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteTemplate deletes one of the team's templates by ID or alias.
func (c *Client) DeleteTemplate(ctx context.Context, ref string) error {
	return c.do(ctx, http.MethodDelete, "/templates/"+url.PathEscape(ref), nil, nil, "", http.StatusNoContent)
}

// LogOptions pages a sandbox's log.
type LogOptions struct {
	Since time.Time // entries at or after this time; zero means from the start
	Limit int       // at most this many entries (server maximum 1000); 0 means the server's default
}

// Logs returns a sandbox's lifecycle log, oldest first.
func (c *Client) Logs(ctx context.Context, sandboxID string, opts LogOptions) ([]LogEntry, error) {
	q := url.Values{}
	if !opts.Since.IsZero() {
		q.Set("start", strconv.FormatInt(opts.Since.UnixMilli(), 10))
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	resp, err := c.send(ctx, http.MethodGet, "/sandboxes/"+url.PathEscape(sandboxID)+"/logs", q, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out controlapi.SandboxLogs
	if err := decodeResponse(resp, &out, fmt.Sprintf("Sandbox %s not found", sandboxID), http.StatusOK); err != nil {
		return nil, err
	}
	return out.LogEntries, nil
}

// Metrics returns a sandbox's resource usage samples.
func (c *Client) Metrics(ctx context.Context, sandboxID string) ([]Metric, error) {
	var out []Metric
	err := c.do(ctx, http.MethodGet, "/sandboxes/"+url.PathEscape(sandboxID)+"/metrics", nil, &out,
		fmt.Sprintf("Sandbox %s not found", sandboxID), http.StatusOK)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parseTiming reads the X-Airlock-Timing header, "phase=dur, phase=dur"
// in Go duration syntax; malformed parts are skipped, an empty header
// yields nil.
func parseTiming(h string) map[string]time.Duration {
	if h == "" {
		return nil
	}
	out := map[string]time.Duration{}
	for part := range strings.SplitSeq(h, ",") {
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
