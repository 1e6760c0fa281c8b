package gateway

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkProxyRoundTrip is a small POST answered by a streamed response
// (the shape of an envd command) through the gateway; BenchmarkDirect is
// the same request straight to the backend, the floor it adds to.
func BenchmarkProxyRoundTrip(b *testing.B) {
	port := benchBackend(b)
	gw := New(fakeRoutes{"ibench": {IP: netip.MustParseAddr("127.0.0.1"), Running: true}}, "", nil)
	gw.envdPort = port
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: gw}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	benchPost(b, "http://"+ln.Addr().String(), map[string]string{"E2b-Sandbox-Id": "ibench", "E2b-Sandbox-Port": strconv.Itoa(port)})
}

func BenchmarkDirect(b *testing.B) {
	port := benchBackend(b)
	benchPost(b, "http://127.0.0.1:"+strconv.Itoa(port), nil)
}

func benchBackend(b *testing.B) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/connect+json")
		_, _ = w.Write([]byte(`{"event":{"start":{"pid":1}}}`))
		w.(http.Flusher).Flush()
		_, _ = w.Write([]byte(`{"event":{"end":{"exited":true}}}`))
	})}
	go srv.Serve(ln)
	b.Cleanup(func() { srv.Close() })
	return ln.Addr().(*net.TCPAddr).Port
}

func benchPost(b *testing.B, url string, hdr map[string]string) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	body := `{"process":{"cmd":"/bin/true"}}`
	for b.Loop() {
		req, err := http.NewRequest(http.MethodPost, url+"/process.Process/Start", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/connect+json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}
