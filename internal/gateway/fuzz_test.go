package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var (
	validID     = regexp.MustCompile(`^[a-z0-9]+$`)
	publicShape = regexp.MustCompile(`^(/health|/contexts|/contexts/[^/]+|/contexts/[^/]+/restart)$`)
)

// Host routing: whatever the Host header, a parsed route names a valid
// port and an ID of [a-z0-9], under the configured domain.
func FuzzParseHost(f *testing.F) {
	for _, s := range []string{"49983-iabc.sbx.test", "8000-iabc.sbx.test:443", "0-x.sbx.test", "65536-a.sbx.test", "1-A.SBX.TEST", "-a.sbx.test", "1-.sbx.test", "1-a.b.sbx.test", "[::1]:80", "1-a.sbx.test.", "99999999999999999999-a.sbx.test"} {
		f.Add(s)
	}
	g := New(fakeRoutes{}, "sbx.test", nil)
	f.Fuzz(func(t *testing.T, host string) {
		id, port, ok := g.parseHost(host)
		if !ok {
			return
		}
		if port < 1 || port > 65535 || !validID.MatchString(id) {
			t.Fatalf("parseHost(%q) = %q, %d", host, id, port)
		}
		h := strings.ToLower(host)
		if !strings.Contains(h, ".sbx.test") {
			t.Fatalf("parseHost(%q) accepted another domain", host)
		}
	})
}

// The gateway's own answers for any routing headers and path: a known
// status, E2B's JSON body, and a proxied request only for a live sandbox
// with a valid port.
func FuzzGatewayRequest(f *testing.F) {
	f.Add("ilive", "49999", "POST", "/execute", "")
	f.Add("ilive-6532622b", "49983", "GET", "/init", "tok")
	f.Add("ILIVE", "1", "GET", "/", "")
	f.Add("ilive", "0x50", "PUT", "/contexts/../execute", "")
	f.Add("", "49983", "GET", "/files", "")
	f.Add("inope", "49999", "DELETE", "/contexts/a", "")
	routes := fakeRoutes{"ilive": {IP: netip.MustParseAddr("127.0.0.1"), Running: true, AccessToken: "tok", TrafficToken: "tt"}}
	g := New(routes, "", nil)
	// Nothing listens on the chosen ports of 127.0.0.1 in this test, so a
	// request that gets through ends as "port is not open".
	g.envdPort, g.interpreterPort = 1, 2
	f.Fuzz(func(t *testing.T, id, port, method, p, token string) {
		if !validMethod(method) || !strings.HasPrefix(p, "/") || strings.ContainsAny(p, " \r\n\x00?#") {
			return
		}
		req := httptest.NewRequest(http.MethodGet, "http://gw/", nil)
		req.Method = method
		req.URL.Path = p
		req.Header.Set("E2b-Sandbox-Id", id)
		req.Header.Set("E2b-Sandbox-Port", port)
		req.Header.Set("X-Access-Token", token)
		if strings.ContainsAny(id+port+token, "\r\n\x00") {
			return
		}
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, req)
		switch rec.Code {
		case 400:
			return // plain-text routing errors
		case 401, 403, 404, 413, 502:
		default:
			t.Fatalf("status %d for id=%q port=%q %s %q", rec.Code, id, port, method, p)
		}
		var body struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Code != rec.Code || body.Message == "" {
			t.Fatalf("body %q for status %d", rec.Body.String(), rec.Code)
		}
		n, _ := strconv.Atoi(port)
		if rec.Code == 401 && n != 2 {
			t.Fatalf("401 on port %q, which is not the interpreter's", port)
		}
		proxied := rec.Code == 502 && strings.Contains(body.Message, "port is not open")
		if proxied && n == 2 && token != "tok" && !interpreterPublic(method, p) {
			t.Fatalf("unauthenticated %s %q reached the interpreter port", method, p)
		}
	})
}

func validMethod(m string) bool {
	if m == "" || len(m) > 16 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// Only clean context and health paths are ever public on the interpreter port.
func FuzzInterpreterPublic(f *testing.F) {
	for _, p := range []string{"/contexts", "/contexts/a", "/contexts/a/restart", "/health", "/execute", "/contexts/../execute", "/contexts//restart", "/contexts/a/b/restart"} {
		f.Add("POST", p)
		f.Add("GET", p)
		f.Add("DELETE", p)
	}
	f.Fuzz(func(t *testing.T, method, p string) {
		if !interpreterPublic(method, p) {
			return
		}
		if path.Clean(p) != p || !publicShape.MatchString(p) {
			t.Fatalf("%s %q is public", method, p)
		}
		if method != "GET" && method != "POST" && method != "DELETE" {
			t.Fatalf("method %q is public", method)
		}
	})
}
