package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// newClient returns a Go SDK client for the server at base (control API
// and sandbox gateway on one URL), pooled for the concurrent scenarios:
// the benchmark drives Airlock the way an SDK user does.
func newClient(base, apiKey string) *sandbox.Client {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 512,
		IdleConnTimeout:     90 * time.Second,
	}
	return sandbox.NewClient(
		sandbox.WithAPIURL(base), sandbox.WithSandboxURL(base), sandbox.WithAPIKey(apiKey),
		sandbox.WithHTTPClient(&http.Client{Transport: tr}),
	)
}

// create starts a sandbox from template; the benchmark kills what it makes.
func (r *runner) create(ctx context.Context, template string) (*sandbox.Sandbox, error) {
	sb, err := r.c.Create(ctx, sandbox.CreateOptions{Template: template, Timeout: sandboxTimeout})
	if err != nil {
		return nil, err
	}
	r.track(sb.ID)
	return sb, nil
}

// run executes argv in sb without a shell and returns its stdout.
func run(ctx context.Context, sb *sandbox.Sandbox, argv ...string) (string, error) {
	res, err := sb.Commands.Exec(ctx, argv, nil)
	if err != nil {
		return "", fmt.Errorf("run %s: %w", argv[0], err)
	}
	return res.Stdout, nil
}

// readSize downloads path from sb and returns its size without keeping it.
func readSize(ctx context.Context, sb *sandbox.Sandbox, path string) (int64, error) {
	rc, err := sb.Files.ReadStream(ctx, path, nil)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(io.Discard, rc)
}

// templateState reports whether name (an ID or alias) is a ready template
// in tpls, and if not, why.
func templateState(tpls []sandbox.Template, name string) (bool, string) {
	for _, t := range tpls {
		if t.TemplateID != name && !contains(t.Aliases, name) {
			continue
		}
		// Servers that do not report a status only list usable templates.
		if t.BuildStatus == "" || t.BuildStatus == "ready" {
			return true, ""
		}
		return false, fmt.Sprintf("template %s is %s, not ready", name, t.BuildStatus)
	}
	return false, fmt.Sprintf("the server has no template %s", name)
}
