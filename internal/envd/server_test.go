package envd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	rpc "github.com/airlock-sandbox/airlock/proto/process"

	"github.com/airlock-sandbox/airlock/sdk/envdapi"
)

type frame struct {
	flags   byte
	payload []byte
}

// rawStart posts a Start request the way the SDKs do (Connect JSON
// envelope, no connect-go client) and returns the response frames.
func rawStart(t *testing.T, base, body string, hdr map[string]string) []frame {
	t.Helper()
	var env bytes.Buffer
	env.WriteByte(0)
	binary.Write(&env, binary.BigEndian, uint32(len(body)))
	env.WriteString(body)
	req, err := http.NewRequest(http.MethodPost, base+"/process.Process/Start", &env)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Protocol-Version", "1")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/connect+json" {
		t.Fatalf("status %d content-type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var frames []frame
	for {
		var head [5]byte
		if _, err := io.ReadFull(resp.Body, head[:]); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("read frame header: %v", err)
		}
		payload := make([]byte, binary.BigEndian.Uint32(head[1:]))
		if _, err := io.ReadFull(resp.Body, payload); err != nil {
			t.Fatalf("read frame payload: %v", err)
		}
		frames = append(frames, frame{head[0], payload})
	}
	if len(frames) == 0 {
		t.Fatal("no frames")
	}
	return frames
}

// jsonField decodes the value at path inside a JSON document into dst.
func jsonField(doc []byte, dst any, path ...string) error {
	var cur any
	if err := json.Unmarshal(doc, &cur); err != nil {
		return err
	}
	for _, k := range path {
		m, ok := cur.(map[string]any)
		if !ok || m[k] == nil {
			return fmt.Errorf("no %q in %s", k, doc)
		}
		cur = m[k]
	}
	b, _ := json.Marshal(cur)
	return json.Unmarshal(b, dst)
}

func compact(t *testing.T, b []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		t.Fatalf("invalid JSON %q: %v", b, err)
	}
	return buf.String()
}

// The official SDKs parse this framing by hand, so pin it down exactly.
func TestStartWireFormat(t *testing.T) {
	e := newTestEnv(t)
	body := `{"process":{"cmd":"/bin/bash","args":["-l","-c","echo hi; exit 2"]},"stdin":false}`
	frames := rawStart(t, e.http.URL, body, nil)

	var pid int
	if err := jsonField(frames[0].payload, &pid, "event", "start", "pid"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		fmt.Sprintf(`{"event":{"start":{"pid":%d}}}`, pid),
		`{"event":{"data":{"stdout":"aGkK"}}}`,
		`{"event":{"end":{"exitCode":2,"exited":true,"status":"exit status 2","error":"exit status 2"}}}`,
		`{}`,
	}
	if len(frames) != len(want) {
		t.Fatalf("got %d frames, want %d: %q", len(frames), len(want), frames)
	}
	for i, f := range frames {
		wantFlags := byte(0)
		if i == len(frames)-1 {
			wantFlags = 2 // end of stream
		}
		if f.flags != wantFlags || compact(t, f.payload) != want[i] {
			t.Errorf("frame %d = %02x %s, want %02x %s", i, f.flags, f.payload, wantFlags, want[i])
		}
	}

	// Errors before the first message still come as HTTP 200 + end-of-stream.
	bad := `{"process":{"cmd":"/bin/bash","cwd":"/nope"}}`
	frames = rawStart(t, e.http.URL, bad, nil)
	if len(frames) != 1 || frames[0].flags != 2 {
		t.Fatalf("frames %q, want a single end-of-stream", frames)
	}
	var code, msg string
	if err := jsonField(frames[0].payload, &code, "error", "code"); err != nil {
		t.Fatal(err)
	}
	if err := jsonField(frames[0].payload, &msg, "error", "message"); err != nil {
		t.Fatal(err)
	}
	if code != "invalid_argument" || msg != "cwd '/nope' does not exist" {
		t.Fatalf("error %q %q", code, msg)
	}
}

func doHTTP(t *testing.T, method, url, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestHealth(t *testing.T) {
	e := newTestEnv(t)
	e.srv.State().Apply(Config{AccessToken: "secret"})
	resp, body := doHTTP(t, http.MethodGet, e.http.URL+"/health", "", nil)
	if resp.StatusCode != http.StatusNoContent || body != "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("health: %d %q %v", resp.StatusCode, body, resp.Header)
	}
}

func TestInitAndEnvs(t *testing.T) {
	e := newTestEnv(t)
	initBody := `{"envVars":{"E2B_SANDBOX":"true","A":"1"},"accessToken":"tok","defaultUser":"nobody",
		"defaultWorkdir":"/tmp","timestamp":"2024-05-01T12:00:00Z","hyperloopIP":"10.0.0.1"}`
	resp, body := doHTTP(t, http.MethodPost, e.http.URL+"/init", initBody, map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("init: %d %s", resp.StatusCode, body)
	}
	cfg := e.srv.State().Config()
	if cfg.AccessToken != "tok" || cfg.DefaultUser != "nobody" || cfg.DefaultWorkdir != "/tmp" || cfg.EnvVars["A"] != "1" {
		t.Fatalf("config after init: %+v", cfg)
	}
	if b, err := os.ReadFile(filepath.Join(e.srv.infoDir, ".E2B_SANDBOX")); err != nil || string(b) != "true" {
		t.Errorf("/run/e2b/.E2B_SANDBOX = %q, %v", b, err)
	}

	// The default user and workdir now apply to processes.
	tok := map[string]string{"X-Access-Token": "tok"}
	r := e.run(t, bashReq(`echo "$(id -un) $(pwd) $A"`), tok)
	if r.stdout != "nobody /tmp 1\n" {
		t.Fatalf("stdout %q err %v", r.stdout, r.err)
	}

	tests := []struct {
		name   string
		method string
		path   string
		body   string
		hdr    map[string]string
		status int
	}{
		{"envs with token", http.MethodGet, "/envs", "", tok, http.StatusOK},
		{"envs without token", http.MethodGet, "/envs", "", nil, http.StatusUnauthorized},
		{"envs wrong token", http.MethodGet, "/envs", "", map[string]string{"X-Access-Token": "nope"}, http.StatusUnauthorized},
		{"metrics without token", http.MethodGet, "/metrics", "", nil, http.StatusUnauthorized},
		{"metrics with token", http.MethodGet, "/metrics", "", tok, http.StatusOK},
		{"re-init without token", http.MethodPost, "/init", `{"defaultUser":"root"}`, nil, http.StatusUnauthorized},
		{"re-init with token", http.MethodPost, "/init", `{"envVars":{"B":"2"}}`, tok, http.StatusNoContent},
		{"re-init with token in body", http.MethodPost, "/init", `{"accessToken":"tok"}`, nil, http.StatusNoContent},
		{"bad json", http.MethodPost, "/init", `{`, tok, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := doHTTP(t, tc.method, e.http.URL+tc.path, tc.body, tc.hdr)
			if resp.StatusCode != tc.status {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusUnauthorized {
				want := `{"code":401,"message":"` + unauthorizedMessage + `"}`
				if compact(t, []byte(body)) != want {
					t.Fatalf("401 body %s, want %s", body, want)
				}
			}
		})
	}
	resp, body = doHTTP(t, http.MethodGet, e.http.URL+"/envs", "", tok)
	var envs map[string]string
	if err := json.Unmarshal([]byte(body), &envs); err != nil || len(envs) != 1 || envs["B"] != "2" {
		t.Fatalf("envs %s (%v), want only B=2 after re-init", body, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("content-type %q", ct)
	}
}

func TestTokenAuthOnRPC(t *testing.T) {
	e := newTestEnv(t)
	e.srv.State().Apply(Config{AccessToken: "tok"})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err := e.client.List(ctx, connect.NewRequest(&rpc.ListRequest{}))
	wantCode(t, err, connect.CodeUnauthenticated)

	req := connect.NewRequest(&rpc.ListRequest{})
	req.Header().Set("X-Access-Token", "tok")
	if _, err := e.client.List(ctx, req); err != nil {
		t.Fatalf("List with token: %v", err)
	}

	resp, body := doHTTP(t, http.MethodPost, e.http.URL+"/process.Process/List", "{}",
		map[string]string{"Content-Type": "application/json", "X-Access-Token": "wrong"})
	want := `{"code":401,"message":"` + unauthorizedMessage + `"}`
	if resp.StatusCode != http.StatusUnauthorized || compact(t, []byte(body)) != want {
		t.Fatalf("wrong token: %d %s", resp.StatusCode, body)
	}
}

func TestCORSPreflight(t *testing.T) {
	e := newTestEnv(t)
	e.srv.State().Apply(Config{AccessToken: "tok"})
	resp, _ := doHTTP(t, http.MethodOptions, e.http.URL+"/process.Process/Start", "", map[string]string{
		"Origin":                         "https://example.test",
		"Access-Control-Request-Method":  "POST",
		"Access-Control-Request-Headers": "authorization,x-access-token,connect-protocol-version",
	})
	h := resp.Header
	if resp.StatusCode != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "*" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(h.Get("Access-Control-Allow-Headers"), "x-access-token") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	resp, _ = doHTTP(t, http.MethodGet, e.http.URL+"/health", "", map[string]string{"Origin": "https://example.test"})
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Expose-Headers") == "" {
		t.Fatalf("CORS headers missing: %v", resp.Header)
	}
}

func TestMetrics(t *testing.T) {
	e := newTestEnv(t)
	resp, body := doHTTP(t, http.MethodGet, e.http.URL+"/metrics", "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("metrics: %d %s", resp.StatusCode, body)
	}
	var raw map[string]any
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ts", "cpu_count", "cpu_used_pct", "mem_total", "mem_used", "mem_cache",
		"mem_total_mib", "mem_used_mib", "disk_used", "disk_total"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("metrics lack %q: %s", k, body)
		}
	}
	var m envdapi.Metrics
	if err := json.Unmarshal([]byte(body), &m); err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	if m.Ts < now-60 || m.Ts > now+60 || m.CpuCount < 1 || m.CpuUsedPct < 0 || m.CpuUsedPct > 100 ||
		m.MemTotal == 0 || m.MemUsed == 0 || m.MemUsed > m.MemTotal || m.MemTotalMib != m.MemTotal>>20 ||
		m.DiskTotal == 0 || m.DiskUsed > m.DiskTotal {
		t.Fatalf("implausible metrics: %+v", m)
	}
}

// TestRunSignalsReady: with a ready descriptor, envd writes "ready" once it
// listens and closes the descriptor, so connecting right after succeeds.
func TestRunSignalsReady(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	fd, err := syscall.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	w.Close() // envd's copy is now the only writer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, RunConfig{Addr: addr, ReadyFD: fd}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	got, err := io.ReadAll(r) // EOF proves envd closed its end
	if err != nil || string(got) != "ready\n" {
		t.Fatalf("ready pipe = %q, %v", got, err)
	}
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("health right after ready: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("health status %d", resp.StatusCode)
	}
}
