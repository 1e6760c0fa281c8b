package interpreter

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeKernel runs "sleep <duration>" or echoes code; it records the span of
// every execution so tests can check queueing.
type fakeKernel struct {
	lang  string
	spans *spanLog
	n     int
}

type span struct {
	code       string
	start, end time.Time
}

type spanLog struct {
	mu    sync.Mutex
	spans []span
}

func (l *spanLog) add(s span) { l.mu.Lock(); l.spans = append(l.spans, s); l.mu.Unlock() }

func (k *fakeKernel) Language() string { return k.lang }
func (k *fakeKernel) Execute(ctx context.Context, code string, env map[string]string, out Emitter) error {
	k.n++
	out.ExecutionCount(k.n)
	s := span{code: code, start: time.Now()}
	defer func() { s.end = time.Now(); k.spans.add(s) }()
	if d, ok := strings.CutPrefix(code, "sleep "); ok {
		dur, _ := time.ParseDuration(d)
		select {
		case <-time.After(dur):
		case <-ctx.Done():
			out.Error(ExecError{Name: "Interrupted"})
			return ctx.Err()
		}
	}
	out.Stdout(code+"\n", time.Now())
	out.Result(Result{IsMainResult: true, Text: fmt.Sprintf("'%s'", code)})
	return nil
}
func (k *fakeKernel) Restart(context.Context) error { k.n = 0; return nil }
func (k *fakeKernel) Close() error                  { return nil }

func fakeFactories(spans *spanLog) map[string]Factory {
	f := func(_ context.Context, o KernelOptions) (Kernel, error) {
		return &fakeKernel{lang: o.Language, spans: spans}, nil
	}
	return map[string]Factory{"python": f, "javascript": f}
}

type testServer struct {
	*httptest.Server
	srv *Server
}

func newTestServer(t *testing.T, opts ServerOptions) *testServer {
	t.Helper()
	if opts.DefaultCwd == "" {
		opts.DefaultCwd = t.TempDir()
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.EnvdURL == "" {
		opts.EnvdURL = fakeEnvd(t, "", map[string]string{})
	}
	s := NewServer(opts)
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		s.Close()
	})
	return &testServer{Server: hs, srv: s}
}

func (ts *testServer) post(t *testing.T, path string, body any, header http.Header) *http.Response {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// execute runs code and returns the parsed NDJSON lines, checking that none
// is empty and each has a type.
func (ts *testServer) execute(t *testing.T, body map[string]any, header http.Header) []map[string]any {
	t.Helper()
	resp := ts.post(t, "/execute", body, header)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("execute: %s: %s", resp.Status, b)
	}
	return readLines(t, resp.Body)
}

func readLines(t *testing.T, r io.Reader) []map[string]any {
	t.Helper()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(raw, []byte("\n")) {
		t.Fatalf("stream does not end with a newline: %q", raw)
	}
	var lines []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		if len(sc.Bytes()) == 0 {
			t.Fatalf("empty line in stream %q", raw)
		}
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad line %q: %v", sc.Bytes(), err)
		}
		if _, ok := m["type"].(string); !ok {
			t.Fatalf("line without type: %q", sc.Bytes())
		}
		lines = append(lines, m)
	}
	return lines
}

func types(lines []map[string]any) []string {
	var out []string
	for _, l := range lines {
		if l["type"] != lineKeepalive {
			out = append(out, l["type"].(string))
		}
	}
	return out
}

func mainText(t *testing.T, lines []map[string]any) string {
	t.Helper()
	for _, l := range lines {
		if l["type"] == "result" && l["is_main_result"] == true {
			s, _ := l["text"].(string)
			return s
		}
	}
	t.Fatalf("no main result in %v", lines)
	return ""
}

func firstOf(lines []map[string]any, kind string) map[string]any {
	for _, l := range lines {
		if l["type"] == kind {
			return l
		}
	}
	return nil
}

func TestServerErrorsAndHealth(t *testing.T) {
	ts := newTestServer(t, ServerOptions{Factories: fakeFactories(&spanLog{})})
	resp, err := http.Get(ts.URL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != `"OK"` {
		t.Errorf("health = %d %q", resp.StatusCode, b)
	}

	tests := []struct {
		name     string
		body     map[string]any
		status   int
		contains string
	}{
		{"both", map[string]any{"code": "1", "context_id": "x", "language": "python"}, 400, "Only one of context_id or language can be provided"},
		{"no code", map[string]any{"language": "python"}, 400, "code"},
		{"unknown context", map[string]any{"code": "1", "context_id": "nope"}, 404, "Context nope not found"},
		{"unknown language", map[string]any{"code": "1", "language": "cobol"}, 500, "cobol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := ts.post(t, "/execute", tt.body, nil)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || !strings.Contains(string(b), tt.contains) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, b, tt.status, tt.contains)
			}
		})
	}
	for _, path := range []string{"/contexts/nope/restart"} {
		resp := ts.post(t, path, nil, nil)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || strings.TrimSpace(string(b)) != "Context nope not found" {
			t.Errorf("POST %s = %d %q", path, resp.StatusCode, b)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/contexts/nope", nil)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("DELETE unknown = %d", resp.StatusCode)
	}
}

func TestServerQueueing(t *testing.T) {
	spans := &spanLog{}
	ts := newTestServer(t, ServerOptions{Factories: fakeFactories(spans)})
	var c1, c2 contextJSON
	for _, c := range []*contextJSON{&c1, &c2} {
		resp := ts.post(t, "/contexts", map[string]any{"language": "python"}, nil)
		if err := json.NewDecoder(resp.Body).Decode(c); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	// Two executions on one context run one after the other, in order.
	var wg sync.WaitGroup
	for i, code := range []string{"sleep 300ms", "sleep 10ms"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts.execute(t, map[string]any{"code": code, "context_id": c1.ID}, nil)
		}()
		if i == 0 {
			time.Sleep(50 * time.Millisecond) // make the first one first
		}
	}
	wg.Wait()
	if len(spans.spans) != 2 || spans.spans[0].code != "sleep 300ms" || spans.spans[1].start.Before(spans.spans[0].end) {
		t.Fatalf("same-context executions overlapped or ran out of order: %+v", spans.spans)
	}

	// Executions on two contexts run in parallel.
	spans.spans = nil
	start := time.Now()
	for _, id := range []string{c1.ID, c2.ID} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts.execute(t, map[string]any{"code": "sleep 400ms", "context_id": id}, nil)
		}()
	}
	wg.Wait()
	// Parallel means the two executions overlapped inside the kernels, which
	// the recorded spans show regardless of how loaded the machine is.
	if sp := spans.spans; len(sp) != 2 || !(sp[0].start.Before(sp[1].end) && sp[1].start.Before(sp[0].end)) {
		t.Errorf("executions on two contexts did not overlap (took %v): %+v", time.Since(start), sp)
	}
}

func TestServerKeepaliveAndDisconnect(t *testing.T) {
	spans := &spanLog{}
	ts := newTestServer(t, ServerOptions{Factories: fakeFactories(spans), Keepalive: 50 * time.Millisecond})
	lines := ts.execute(t, map[string]any{"code": "sleep 300ms"}, nil)
	n := 0
	for _, l := range lines {
		if l["type"] == lineKeepalive {
			n++
		}
	}
	if n < 2 {
		t.Errorf("%d keepalives in 300 ms with a 50 ms interval: %v", n, lines)
	}
	if got := types(lines); strings.Join(got, ",") != "number_of_executions,stdout,result,end_of_execution" {
		t.Errorf("types = %v", got)
	}

	// A client that goes away interrupts its execution; the next runs at once.
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/execute", strings.NewReader(`{"code":"sleep 1h"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	resp.Body.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ts.execute(t, map[string]any{"code": "after"}, nil)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("execution after a disconnect is blocked")
	}
}

func TestServerContextsCRUD(t *testing.T) {
	ts := newTestServer(t, ServerOptions{Factories: fakeFactories(&spanLog{})})
	ts.srv.Preload("python", "javascript")
	deadline := time.Now().Add(5 * time.Second)
	var list []contextJSON
	for time.Now().Before(deadline) {
		resp, err := http.Get(ts.URL + "/contexts")
		if err != nil {
			t.Fatal(err)
		}
		list = nil
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(list) != 2 {
		t.Fatalf("preloaded contexts = %+v", list)
	}

	resp := ts.post(t, "/contexts", map[string]any{"language": "JS", "cwd": "/tmp"}, nil)
	var c contextJSON
	json.NewDecoder(resp.Body).Decode(&c)
	resp.Body.Close()
	if c.ID == "" || c.Language != "javascript" || c.Cwd != "/tmp" {
		t.Fatalf("created %+v", c)
	}
	resp = ts.post(t, "/contexts", map[string]any{}, nil)
	var d contextJSON
	json.NewDecoder(resp.Body).Decode(&d)
	resp.Body.Close()
	if d.Language != "python" || d.Cwd != ts.srv.opts.DefaultCwd {
		t.Errorf("defaults = %+v", d)
	}

	resp = ts.post(t, "/contexts/"+c.ID+"/restart", nil, nil)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "null" {
		t.Errorf("restart = %d %q", resp.StatusCode, b)
	}
	req, _ := http.NewRequest(http.MethodDelete, ts.URL+"/contexts/"+c.ID, nil)
	resp, _ = http.DefaultClient.Do(req)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "null" {
		t.Errorf("delete = %d %q", resp.StatusCode, b)
	}
	resp = ts.post(t, "/execute", map[string]any{"code": "1", "context_id": c.ID}, nil)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("execute in deleted context = %d", resp.StatusCode)
	}
}

// fakeEnvd serves GET /envs like envd: env to callers with the token (any
// caller when token is "").
func fakeEnvd(t *testing.T, token string, env map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/envs" {
			http.NotFound(w, r)
			return
		}
		if token != "" && r.Header.Get("X-Access-Token") != token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(env)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// /execute needs the token envd accepts; the context routes need none,
// because the official SDKs send none there.
func TestExecuteNeedsToken(t *testing.T) {
	ts := newTestServer(t, ServerOptions{EnvdURL: fakeEnvd(t, "tok", map[string]string{}), Factories: fakeFactories(&spanLog{})})
	for _, tc := range []struct {
		token  string
		status int
	}{{"", 401}, {"wrong", 401}, {"tok", 200}, {"wrong", 401}, {"tok", 200}} {
		h := http.Header{}
		if tc.token != "" {
			h.Set("X-Access-Token", tc.token)
		}
		resp := ts.post(t, "/execute", map[string]any{"code": "x"}, h)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("token %q: %d %s, want %d", tc.token, resp.StatusCode, b, tc.status)
		}
		if tc.status == 401 && !strings.Contains(string(b), `"code":401`) {
			t.Errorf("401 body: %s", b)
		}
		if tc.status == 200 && !strings.Contains(string(b), "end_of_execution") {
			t.Errorf("execution did not run: %s", b)
		}
	}
	resp := ts.post(t, "/contexts", map[string]any{"language": "python"}, nil)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("POST /contexts without token: %d", resp.StatusCode)
	}

	down := newTestServer(t, ServerOptions{EnvdURL: "http://127.0.0.1:1", Factories: fakeFactories(&spanLog{})})
	resp = down.post(t, "/execute", map[string]any{"code": "x"}, http.Header{"X-Access-Token": {"tok"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("envd unreachable: %d, want 503 (never run unchecked)", resp.StatusCode)
	}
}
