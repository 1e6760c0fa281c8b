package sandbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func TestFileSignatureVector(t *testing.T) {
	// Vector from the protocol docs (envd.md).
	got := sandbox.FileSignature("/home/user/a.txt", "read", "", "TOKEN", 0)
	if want := "v1_A9hdoNM5pnSITjAcAULFEA9/LXUn0Pij2pNU5hjrQec"; got != want {
		t.Fatalf("signature = %q, want %q", got, want)
	}
}

func TestConfigFromEnv(t *testing.T) {
	tests := []struct {
		name                      string
		env                       map[string]string
		wantHost, wantAPI         string
		wantDebug, wantValidation bool
	}{
		{name: "defaults", env: map[string]string{}, wantHost: "8080-abc.e2b.app", wantAPI: "", wantValidation: true},
		{name: "domain", env: map[string]string{"E2B_DOMAIN": "airlock.test"}, wantHost: "8080-abc.airlock.test", wantValidation: true},
		{name: "debug", env: map[string]string{"E2B_DEBUG": "TRUE"}, wantHost: "localhost:8080", wantDebug: true, wantValidation: true},
		{name: "no validation", env: map[string]string{"E2B_VALIDATE_API_KEY": "false"}, wantHost: "8080-abc.e2b.app"},
		{name: "api url", env: map[string]string{"E2B_API_URL": "http://x:1"}, wantHost: "8080-abc.e2b.app", wantAPI: "http://x:1", wantValidation: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range []string{"E2B_DOMAIN", "E2B_DEBUG", "E2B_API_URL", "E2B_SANDBOX_URL", "E2B_VALIDATE_API_KEY"} {
				t.Setenv(k, tc.env[k])
			}
			cfg := sandbox.NewConfig()
			if cfg.Debug != tc.wantDebug || cfg.ValidateAPIKey != tc.wantValidation || cfg.APIURL != tc.wantAPI {
				t.Fatalf("config = %+v", cfg)
			}
			sbx, err := sandbox.NewClient(sandbox.WithDebug(cfg.Debug)).Connect(context.Background(), "abc", 0)
			if tc.wantDebug {
				if err != nil {
					t.Fatal(err)
				}
				if got := sbx.GetHost(8080); got != tc.wantHost {
					t.Fatalf("host = %q, want %q", got, tc.wantHost)
				}
			}
		})
	}
}

// TestURLResolution checks the envd/signed-URL bases through DownloadURL,
// the one place they are visible without a request.
func TestURLResolution(t *testing.T) {
	tests := []struct {
		name   string
		opts   []sandbox.Option
		domain string
		want   string
	}{
		{"sandbox url wins", []sandbox.Option{sandbox.WithSandboxURL("http://h:1/"), sandbox.WithDomain("x.test")}, "", "http://h:1/files?"},
		{"debug", []sandbox.Option{sandbox.WithDebug(true)}, "", "http://localhost:49983/files?"},
		{"custom domain", []sandbox.Option{sandbox.WithDomain("airlock.test")}, "", "https://49983-sbx1.airlock.test/files?"},
		{"e2b domain skips shared host", []sandbox.Option{sandbox.WithDomain("e2b.app")}, "", "https://49983-sbx1.e2b.app/files?"},
		{"sandbox domain from API", []sandbox.Option{sandbox.WithDomain("a.test")}, "b.test", "https://49983-sbx1.b.test/files?"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("E2B_SANDBOX_URL", "")
			t.Setenv("E2B_DEBUG", "")
			t.Setenv("E2B_API_URL", "")
			srv := fakeAPI(t, tc.domain)
			o := append([]sandbox.Option{sandbox.WithAPIURL(srv.URL), sandbox.WithAPIKey("e2b_00")}, tc.opts...)
			sbx, err := sandbox.NewClient(append(o, localHTTP())...).Connect(context.Background(), "sbx1", 0)
			if err != nil {
				t.Fatal(err)
			}
			u, err := sbx.DownloadURL("/a", nil)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(u, tc.want) {
				t.Fatalf("url = %q, want prefix %q", u, tc.want)
			}
		})
	}
}

// fakeAPI answers /connect with a fixed Sandbox body.
func fakeAPI(t *testing.T, domain string) *httptest.Server {
	d := "null"
	if domain != "" {
		d = `"` + domain + `"`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"templateID":"t","sandboxID":"sbx1","clientID":"c","envdVersion":"0.6.13","envdAccessToken":"tok","domain":` + d + `}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		status int
		want   error
	}{
		{401, sandbox.ErrAuthentication},
		{429, sandbox.ErrRateLimit},
		{404, sandbox.ErrNotFound},
		{400, sandbox.ErrInvalidArgument},
		{500, sandbox.ErrSandbox},
	}
	for _, tc := range tests {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("X-API-KEY") != "e2b_ab" {
					t.Errorf("X-API-KEY = %q", r.Header.Get("X-API-KEY"))
				}
				w.WriteHeader(tc.status)
				_, _ = fmt.Fprintf(w, `{"code":%d,"message":"boom"}`, tc.status)
			}))
			defer srv.Close()
			c := sandbox.NewClient(sandbox.WithAPIURL(srv.URL), sandbox.WithAPIKey("e2b_ab"), localHTTP())
			_, err := c.GetInfo(context.Background(), "x")
			if !errors.Is(err, tc.want) || !errors.Is(err, sandbox.ErrSandbox) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var se *sandbox.Error
			if !errors.As(err, &se) || se.Status != tc.status {
				t.Fatalf("err = %#v", err)
			}
		})
	}
	// Kill treats 404 as "did not exist".
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		_, _ = w.Write([]byte(`{"code":404,"message":"nope"}`))
	}))
	defer srv.Close()
	ok, err := sandbox.NewClient(sandbox.WithAPIURL(srv.URL), sandbox.WithAPIKey("e2b_ab"), localHTTP()).Kill(context.Background(), "x")
	if ok || err != nil {
		t.Fatalf("kill = %v, %v; want false, nil", ok, err)
	}
}

func TestAPIKeyValidation(t *testing.T) {
	for _, key := range []string{"", "not-a-key", "e2b_XYZ"} {
		_, err := sandbox.NewClient(sandbox.WithAPIKey(key), sandbox.WithAPIURL("http://127.0.0.1:1")).GetInfo(context.Background(), "x")
		if !errors.Is(err, sandbox.ErrAuthentication) {
			t.Errorf("key %q: err = %v, want ErrAuthentication", key, err)
		}
	}
}

// localHTTP talks to the in-process fake servers directly, bypassing the
// host-mode test dialer installed as the default transport.
func localHTTP() sandbox.Option {
	return sandbox.WithHTTPClient(&http.Client{Transport: &http.Transport{}})
}
