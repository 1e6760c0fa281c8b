package gateway

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

type fakeRoutes map[string]Route

func (f fakeRoutes) Route(id string) (Route, bool) {
	r, ok := f[id]
	return r, ok
}

// backend listens on a loopback address at the given port, playing a sandbox.
func backend(t *testing.T, ip string, port int, h http.Handler) {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func TestRouting(t *testing.T) {
	userPort, envdPort := freePort(t), freePort(t)
	envd := strconv.Itoa(envdPort)
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s id-header=%q", r.Method, r.URL.RequestURI(), r.Header.Get("E2b-Sandbox-Id"))
	})
	backend(t, "127.0.0.1", envdPort, echo)
	backend(t, "127.0.0.1", userPort, echo)
	routes := fakeRoutes{
		"ilive":    {IP: netip.MustParseAddr("127.0.0.1"), Running: true},
		"ipaused":  {IP: netip.MustParseAddr("127.0.0.1"), Running: false},
		"iprivate": {IP: netip.MustParseAddr("127.0.0.1"), Running: true, TrafficToken: "secret"},
	}
	gw := New(routes, "sbx.test", nil)
	gw.envdPort = envdPort
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "api") })
	srv := httptest.NewServer(gw.Split(api))
	defer srv.Close()
	dead := `"message":"The sandbox was not found"`

	tests := []struct {
		name     string
		host     string
		headers  map[string]string
		path     string
		status   int
		contains string
	}{
		{"control API", "", nil, "/health", 200, "api"},
		{"header routed to envd", "", map[string]string{"E2b-Sandbox-Id": "ilive", "E2b-Sandbox-Port": envd}, "/health?x=1", 200, `GET /health?x=1 id-header=""`},
		{"host routed", envd + "-ilive.sbx.test", nil, "/files?path=a", 200, "GET /files?path=a"},
		{"host routed user port", fmt.Sprintf("%d-ilive.sbx.test", userPort), nil, "/", 200, "GET /"},
		{"other domain is control API", "49983-ilive.other.test", nil, "/x", 200, "api"},
		{"legacy id-client form", "", map[string]string{"E2b-Sandbox-Id": "ilive-6532622b", "E2b-Sandbox-Port": envd}, "/", 200, "GET /"},
		{"unknown sandbox", "", map[string]string{"E2b-Sandbox-Id": "inope", "E2b-Sandbox-Port": envd}, "/health", 502, dead},
		{"paused sandbox", "", map[string]string{"E2b-Sandbox-Id": "ipaused", "E2b-Sandbox-Port": envd}, "/health", 502, dead},
		{"one header only", "", map[string]string{"E2b-Sandbox-Id": "ilive"}, "/health", 400, "missing header"},
		{"bad port", "", map[string]string{"E2b-Sandbox-Id": "ilive", "E2b-Sandbox-Port": "http"}, "/", 400, "invalid"},
		{"bad id", "", map[string]string{"E2b-Sandbox-Id": "BAD_ID", "E2b-Sandbox-Port": envd}, "/", 400, "invalid"},
		{"internal envd route", "", map[string]string{"E2b-Sandbox-Id": "ilive", "E2b-Sandbox-Port": envd}, "/init", 404, `"code":404`},
		{"internal envd route, unclean", "", map[string]string{"E2b-Sandbox-Id": "ilive", "E2b-Sandbox-Port": envd}, "//init/", 404, `"code":404`},
		{"internal envd route, dotted", "", map[string]string{"E2b-Sandbox-Id": "ilive", "E2b-Sandbox-Port": envd}, "/files/../freeze", 404, `"code":404`},
		{"port not open", "", map[string]string{"E2b-Sandbox-Id": "ilive", "E2b-Sandbox-Port": "1"}, "/", 502, "port is not open"},
		{"traffic token missing", "", map[string]string{"E2b-Sandbox-Id": "iprivate", "E2b-Sandbox-Port": strconv.Itoa(userPort)}, "/", 403, `"code":403`},
		{"traffic token ok", "", map[string]string{"E2b-Sandbox-Id": "iprivate", "E2b-Sandbox-Port": strconv.Itoa(userPort), "E2B-Traffic-Access-Token": "secret"}, "/", 200, "GET /"},
		{"envd exempt from traffic token", "", map[string]string{"E2b-Sandbox-Id": "iprivate", "E2b-Sandbox-Port": envd}, "/health", 200, "GET /health"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+tc.path, nil)
			if tc.host != "" {
				req.Host = tc.host
			}
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.contains) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, b, tc.status, tc.contains)
			}
			if tc.status == 502 {
				var body map[string]any
				if err := json.Unmarshal(b, &body); err != nil || body["code"] != float64(502) {
					t.Errorf("502 body is not E2B JSON: %s", b)
				}
			}
		})
	}
}

// Streams must pass through as they are written, not when they end.
func TestStreamsAreFlushed(t *testing.T) {
	release := make(chan struct{})
	port := freePort(t)
	backend(t, "127.0.0.2", port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}))
	gw := New(fakeRoutes{"ilive": {IP: netip.MustParseAddr("127.0.0.2"), Running: true}}, "", nil)
	srv := httptest.NewServer(gw)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/process.Process/Start", nil)
	req.Header.Set("E2b-Sandbox-Id", "ilive")
	req.Header.Set("E2b-Sandbox-Port", strconv.Itoa(port))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	got := make(chan string, 1)
	go func() { l, _ := br.ReadString('\n'); got <- l }()
	select {
	case l := <-got:
		if l != "first\n" {
			t.Fatalf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("first chunk was buffered by the gateway")
	}
	close(release)
	if l, _ := br.ReadString('\n'); l != "second\n" {
		t.Fatalf("second line %q", l)
	}
}

// The code interpreter's port runs code, so a secured sandbox's token is
// required there on everything but the context routes the SDKs call bare.
func TestInterpreterPortNeedsToken(t *testing.T) {
	port := freePort(t)
	backend(t, "127.0.0.1", port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ran %s %s", r.Method, r.URL.Path)
	}))
	routes := fakeRoutes{
		"isecure": {IP: netip.MustParseAddr("127.0.0.1"), Running: true, AccessToken: "tok"},
		"iopen":   {IP: netip.MustParseAddr("127.0.0.1"), Running: true},
	}
	gw := New(routes, "", nil)
	gw.interpreterPort = port
	srv := httptest.NewServer(gw)
	defer srv.Close()
	tests := []struct {
		id, method, path, token string
		status                  int
	}{
		{"isecure", "POST", "/execute", "", 401},
		{"isecure", "POST", "/execute", "wrong", 401},
		{"isecure", "POST", "/execute", "tok", 200},
		{"isecure", "POST", "/contexts/../execute", "", 401},
		{"isecure", "POST", "/contexts/x/../../execute", "", 401},
		{"isecure", "POST", "//execute", "", 401},
		{"isecure", "GET", "/anything-else", "", 401},
		{"isecure", "PUT", "/contexts", "", 401},
		{"isecure", "POST", "/contexts/abc/restart/", "", 401},
		{"isecure", "GET", "/contexts", "", 200},
		{"isecure", "POST", "/contexts", "", 200},
		{"isecure", "DELETE", "/contexts/abc", "", 200},
		{"isecure", "POST", "/contexts/abc/restart", "", 200},
		{"isecure", "GET", "/health", "", 200},
		{"iopen", "POST", "/execute", "", 200},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, srv.URL, nil)
		req.URL.Path = tc.path // keep it unclean: the point is that the gateway does not clean it
		req.Header.Set("E2b-Sandbox-Id", tc.id)
		req.Header.Set("E2b-Sandbox-Port", strconv.Itoa(port))
		if tc.token != "" {
			req.Header.Set("X-Access-Token", tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s %s token=%q: got %d %s, want %d", tc.id, tc.method, tc.path, tc.token, resp.StatusCode, b, tc.status)
		}
		if tc.status == 401 && !strings.Contains(string(b), `"code":401`) {
			t.Errorf("%s %s: 401 body is not E2B JSON: %s", tc.method, tc.path, b)
		}
	}
}

// A sandbox that stops under a request must not leave its client waiting:
// the connection is closed, mid-body or before headers (the SDKs then check
// the sandbox and report it killed).
func TestStoppedSandboxCutsRequests(t *testing.T) {
	port := freePort(t)
	release := make(chan struct{})
	backend(t, "127.0.0.1", port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/stream" {
			io.WriteString(w, "{\"type\":\"stdout\"}\n")
			w.(http.Flusher).Flush()
		}
		<-release // a dead sandbox: no more bytes, no FIN, no RST
	}))
	stopped := make(chan struct{})
	gw := New(fakeRoutes{"ilive": {IP: netip.MustParseAddr("127.0.0.1"), Running: true, Stopped: stopped}}, "sbx.test", nil)
	srv := httptest.NewServer(gw.Split(http.NotFoundHandler()))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs first: lets handlers end
	get := func(path string) (*http.Response, error) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("E2b-Sandbox-Id", "ilive")
		req.Header.Set("E2b-Sandbox-Port", strconv.Itoa(port))
		return http.DefaultClient.Do(req)
	}

	res, err := get("/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if err != nil || !strings.Contains(line, "stdout") {
		t.Fatalf("first line %q, %v", line, err)
	}
	waiting := make(chan *http.Response, 1)
	go func() {
		r, err := get("/headers-never-come")
		if err == nil {
			waiting <- r
			return
		}
		waiting <- nil
	}()
	time.Sleep(200 * time.Millisecond) // both requests are in flight
	close(stopped)

	readDone := make(chan error, 1)
	go func() { _, err := io.ReadAll(res.Body); readDone <- err }()
	select {
	case err := <-readDone:
		if err == nil {
			t.Fatal("streamed response ended cleanly; want it aborted so the client sees a closed connection")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("streamed response still open 5s after the sandbox stopped")
	}
	select {
	case r := <-waiting:
		if r == nil {
			t.Fatal("request waiting for headers: connection cut; want a 502 with the E2B body (isRunning reads it as false)")
		}
		b, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusBadGateway || !strings.Contains(string(b), `"code":502`) {
			t.Fatalf("request waiting for headers got %d %s; want 502", r.StatusCode, b)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request waiting for headers still open 5s after the sandbox stopped")
	}
}
