// Package gateway routes sandbox traffic — chosen by the E2b-Sandbox-Id and
// E2b-Sandbox-Port headers or by a "{port}-{id}.{domain}" host — to the
// sandbox's address on the host bridge, and answers for dead sandboxes the
// way E2B's proxy does.
package gateway

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/httplimit"
	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// maxBufferedBody is the largest request body read into memory before
// proxying (RPC requests and code executions are far smaller).
const maxBufferedBody = 1 << 20

// maxServiceBody bounds a declared request body to envd's RPCs and the code
// interpreter (file uploads to /files are exempt).
const maxServiceBody = 64 << 20

// EnvdPort is envd's port; it is exempt from traffic tokens and its
// internal routes are not reachable from outside.
const EnvdPort = wire.EnvdPort

// Route is where a live sandbox can be reached.
type Route struct {
	IP           netip.Addr
	Running      bool   // false while paused
	TrafficToken string // required on non-envd ports when set
	// AccessToken is the envd token of a secured sandbox ("" otherwise);
	// the gateway requires it on the code interpreter's port.
	AccessToken string
	// Stopped, when set, is closed once the sandbox is killed or paused:
	// requests in flight are then cut (the connection closed, as when E2B's
	// sandbox dies), which the SDKs report as "the sandbox was killed while
	// the request was in progress". Without it they would wait on an address
	// that no longer answers.
	Stopped <-chan struct{}
}

// errSandboxStopped is the cause of a proxied request's cancellation when
// its sandbox stops.
var errSandboxStopped = errors.New("sandbox stopped")

// Resolver finds live sandboxes; it must be fast (it is on every request).
type Resolver interface {
	Route(id string) (Route, bool)
}

// Gateway is an http.Handler for sandbox traffic.
type Gateway struct {
	resolve  Resolver
	envdPort int // EnvdPort; tests move it
	// interpreterPort is the code interpreter's port (wire.InterpreterPort).
	interpreterPort int
	domain          string
	log             *slog.Logger
	proxy           *httputil.ReverseProxy
}

// New builds a gateway. domain is the sandbox domain for host routing
// ("" accepts any domain suffix).
func New(res Resolver, domain string, log *slog.Logger) *Gateway {
	if log == nil {
		log = slog.Default()
	}
	g := &Gateway{resolve: res, envdPort: EnvdPort, interpreterPort: wire.InterpreterPort, domain: strings.ToLower(domain), log: log.With("component", "gateway")}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		// Pass Accept-Encoding through untouched: envd decides about gzip.
		DisableCompression: true,
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := targetFrom(pr.In.Context())
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = net.JoinHostPort(t.ip.String(), strconv.Itoa(t.port))
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport:     tr,
		FlushInterval: -1, // stream every write: Connect streams, NDJSON, downloads
		ErrorHandler:  g.proxyError,
	}
	return g
}

// IsSandboxRequest reports whether a request is meant for a sandbox rather
// than the control API: it carries a routing header or a sandbox host.
func (g *Gateway) IsSandboxRequest(r *http.Request) bool {
	if r.Header.Get("E2b-Sandbox-Id") != "" || r.Header.Get("E2b-Sandbox-Port") != "" {
		return true
	}
	_, _, ok := g.parseHost(r.Host)
	return ok
}

// Split sends sandbox traffic to the gateway and everything else to api.
// Oversized headers are refused before either looks at the request.
func (g *Gateway) Split(api http.Handler) http.Handler {
	return httplimit.Headers(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.IsSandboxRequest(r) {
			g.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	}))
}

// hostRe matches the left-most label "{port}-{id}".
var hostRe = regexp.MustCompile(`^([0-9]{1,5})-([a-z0-9]+)$`)

func (g *Gateway) parseHost(host string) (id string, port int, ok bool) {
	h := strings.ToLower(host)
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	label, rest, found := strings.Cut(h, ".")
	if !found || (g.domain != "" && rest != g.domain) {
		return "", 0, false
	}
	m := hostRe.FindStringSubmatch(label)
	if m == nil {
		return "", 0, false
	}
	p, err := strconv.Atoi(m[1])
	if err != nil || p < 1 || p > 65535 {
		return "", 0, false
	}
	return m[2], p, true
}

var idRe = regexp.MustCompile(`^[a-z0-9]+$`)

func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, port, ok := g.parseHost(r.Host)
	hid, hport := r.Header.Get("E2b-Sandbox-Id"), r.Header.Get("E2b-Sandbox-Port")
	if hid != "" || hport != "" {
		// Headers win over the host, as the SDKs send both.
		if hid == "" || hport == "" {
			http.Error(w, "missing header", http.StatusBadRequest)
			return
		}
		p, err := strconv.Atoi(hport)
		if err != nil || p < 1 || p > 65535 {
			http.Error(w, "invalid sandbox port", http.StatusBadRequest)
			return
		}
		// Legacy "{id}-{clientID}" form: keep the ID part.
		hid, _, _ = strings.Cut(hid, "-")
		id, port, ok = hid, p, true
	}
	if !ok || !idRe.MatchString(id) {
		http.Error(w, "invalid sandbox ID", http.StatusBadRequest)
		return
	}
	rt, found := g.resolve.Route(id)
	if !found || !rt.Running {
		// Paused sandboxes are not reachable until resumed through connect.
		writeJSON(w, http.StatusBadGateway, map[string]any{"sandboxId": id, "message": "The sandbox was not found", "code": http.StatusBadGateway})
		return
	}
	if port == g.envdPort {
		if isInternalEnvdPath(r.URL.Path) {
			writeJSON(w, http.StatusNotFound, map[string]any{"code": http.StatusNotFound, "message": "not found"})
			return
		}
	} else if port == g.interpreterPort && rt.AccessToken != "" && !interpreterPublic(r.Method, r.URL.Path) &&
		subtle.ConstantTimeCompare([]byte(r.Header.Get(wire.HeaderAccessToken)), []byte(rt.AccessToken)) != 1 {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"code": http.StatusUnauthorized, "message": wire.UnauthorizedMessage})
		return
	}
	if port != g.envdPort && rt.TrafficToken != "" {
		got := r.Header.Get("E2B-Traffic-Access-Token")
		if subtle.ConstantTimeCompare([]byte(got), []byte(rt.TrafficToken)) != 1 {
			writeJSON(w, http.StatusForbidden, map[string]any{"sandboxId": id, "message": "Sandbox is secured with traffic access token. Provide a valid E2B-Traffic-Access-Token header.", "code": http.StatusForbidden})
			return
		}
	}
	// Airlock's own services take bounded requests; only envd's /files
	// streams files of any size (user ports are the user's business).
	if (port == g.envdPort && r.URL.Path != "/files") || port == g.interpreterPort {
		if r.ContentLength > maxServiceBody {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]any{"code": http.StatusRequestEntityTooLarge, "message": "request body is too large"})
			return
		}
	}
	// Routing headers are ours, not the sandbox's business.
	r.Header.Del("E2b-Sandbox-Id")
	r.Header.Del("E2b-Sandbox-Port")
	// Go's HTTP/1 server may close a request body once response headers are
	// flushed, and streamed responses (Connect streams, /execute) flush early:
	// if the proxy has not read the body to EOF by then, the stream is cut.
	// Small bodies are therefore read up front; only large or unsized ones
	// (uploads, which the sandbox reads fully before answering) stream through.
	if r.ContentLength > 0 && r.ContentLength <= maxBufferedBody {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read request body: "+err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	} else if r.ContentLength != 0 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/connect") {
		_ = http.NewResponseController(w).EnableFullDuplex() // client streams
	}
	ctx, cancel := context.WithCancelCause(context.WithValue(r.Context(), targetKey{}, target{id: id, ip: rt.IP, port: port}))
	defer cancel(nil)
	if rt.Stopped != nil {
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			select {
			case <-rt.Stopped:
				cancel(errSandboxStopped)
			case <-stop:
			}
		}()
	}
	g.proxy.ServeHTTP(w, r.WithContext(ctx))
}

// interpreterPublic reports the code interpreter's routes that the official
// SDKs call without the access token (context management, which cannot run
// code); everything else on that port, /execute first, needs the token.
// Paths that are not clean never match, so "/contexts/../execute" needs it too.
func interpreterPublic(method, p string) bool {
	if path.Clean(p) != p {
		return false
	}
	switch {
	case p == "/health":
		return method == http.MethodGet
	case p == "/contexts":
		return method == http.MethodGet || method == http.MethodPost
	case strings.HasPrefix(p, "/contexts/"):
		rest := strings.TrimPrefix(p, "/contexts/")
		id, action, _ := strings.Cut(rest, "/")
		if id == "" {
			return false
		}
		return (action == "" && method == http.MethodDelete) || (action == "restart" && method == http.MethodPost)
	}
	return false
}

// internalEnvdPaths are envd's routes only the server may call
// (spec/envd-http.yaml marks them x-internal; a test keeps the two equal).
var internalEnvdPaths = []string{"/init", "/freeze", "/unfreeze", "/fsfreeze", "/fsthaw", "/collapse", "/upgrade"}

// isInternalEnvdPath reports whether p is one of them, cleaned, so "//init"
// or "/x/../init" are the same route to envd's mux.
func isInternalEnvdPath(p string) bool {
	return slices.Contains(internalEnvdPaths, path.Clean("/"+p))
}

type target struct {
	id   string
	ip   netip.Addr
	port int
}

type targetKey struct{}

func targetFrom(ctx context.Context) target {
	t, _ := ctx.Value(targetKey{}).(target)
	return t
}

// proxyError answers for a sandbox that is up but not listening on the port
// (or that died between lookup and dial).
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	t := targetFrom(r.Context())
	if errors.Is(context.Cause(r.Context()), errSandboxStopped) {
		// No response yet: answer as for a sandbox that is gone (the SDKs'
		// isRunning reads 502 as false). A response already streaming
		// (the interpreter sends its headers at once) is cut by the proxy
		// instead, which the SDKs read as "killed while the request was
		// in progress".
		writeJSON(w, http.StatusBadGateway, map[string]any{"sandboxId": t.id, "message": "The sandbox was stopped while the request was in progress", "code": http.StatusBadGateway})
		return
	}
	if errors.Is(err, context.Canceled) {
		return // the client went away
	}
	if _, still := g.resolve.Route(t.id); !still {
		writeJSON(w, http.StatusBadGateway, map[string]any{"sandboxId": t.id, "message": "The sandbox was not found", "code": http.StatusBadGateway})
		return
	}
	g.log.Debug("proxy error", "sandbox", t.id, "port", t.port, "err", err)
	writeJSON(w, http.StatusBadGateway, map[string]any{"sandboxId": t.id, "message": "The sandbox is running but port is not open", "port": t.port, "code": http.StatusBadGateway})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
