package sandbox_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// testHTTP is the client every test passes with WithHTTPClient; in host
// mode it trusts the test CA and dials every *.{domain}:443 to
// AIRLOCK_TEST_DIAL.
var testHTTP *http.Client

// mode is "url" or "host".
var mode string

func TestMain(m *testing.M) {
	tr, md, err := setupTransport()
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdk tests:", err)
		os.Exit(1)
	}
	mode = md
	testHTTP = &http.Client{Transport: tr}
	// The godoc examples read like user programs (no options), so they go
	// through the default transport.
	http.DefaultTransport = tr
	os.Exit(m.Run())
}

func setupTransport() (http.RoundTripper, string, error) {
	const need = "set E2B_API_KEY plus either E2B_API_URL and E2B_SANDBOX_URL (URL mode) " +
		"or E2B_DOMAIN with AIRLOCK_TEST_CA and AIRLOCK_TEST_DIAL (host mode); scripts/sdk-test.sh does this"
	if os.Getenv("E2B_API_KEY") == "" {
		return nil, "", fmt.Errorf("E2B_API_KEY is not set: %s", need)
	}
	if os.Getenv("E2B_API_URL") != "" && os.Getenv("E2B_SANDBOX_URL") != "" {
		return http.DefaultTransport.(*http.Transport).Clone(), "url", nil
	}
	domain := os.Getenv("E2B_DOMAIN")
	caPath, dial := os.Getenv("AIRLOCK_TEST_CA"), os.Getenv("AIRLOCK_TEST_DIAL")
	if domain == "" || caPath == "" || dial == "" {
		return nil, "", fmt.Errorf("no server configured: %s", need)
	}
	pem, err := os.ReadFile(caPath)
	if err != nil {
		return nil, "", fmt.Errorf("read AIRLOCK_TEST_CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, "", fmt.Errorf("AIRLOCK_TEST_CA %s holds no certificate", caPath)
	}
	d := &net.Dialer{Timeout: 5 * time.Second}
	suffix := "." + strings.ToLower(domain) + ":443"
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if !strings.HasSuffix(strings.ToLower(addr), suffix) {
				return nil, fmt.Errorf("test dialer: refusing %s (only *%s)", addr, suffix)
			}
			return d.DialContext(ctx, network, dial)
		},
		MaxIdleConnsPerHost: 16,
	}
	return tr, "host", nil
}

// opts are the connection options of every test client.
func opts(extra ...sandbox.Option) []sandbox.Option {
	return append([]sandbox.Option{sandbox.WithHTTPClient(testHTTP)}, extra...)
}

func testClient() *sandbox.Client { return sandbox.NewClient(opts()...) }

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// newSandbox creates a sandbox that is killed when the test ends.
func newSandbox(t *testing.T, co sandbox.CreateOptions) *sandbox.Sandbox {
	t.Helper()
	if co.Timeout == 0 {
		co.Timeout = 10 * time.Minute
	}
	sbx, err := testClient().Create(ctxT(t, 2*time.Minute), co)
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := sbx.Kill(ctx); err != nil {
			t.Errorf("kill %s: %v", sbx.ID, err)
		}
	})
	return sbx
}

func run(t *testing.T, sbx *sandbox.Sandbox, cmd string) string {
	t.Helper()
	res, err := sbx.Commands.Run(ctxT(t, time.Minute), cmd, nil)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return res.Stdout
}
