package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"

	"github.com/airlock-sandbox/airlock/sdk/controlapi"
)

// Any method, path and body against the control API: never a 5xx, never a
// panic, and every error carries E2B's {code, message} body.
func FuzzControlAPI(f *testing.F) {
	for _, seed := range []struct{ method, path, body string }{
		{"POST", "/sandboxes", `{"templateID":"base","timeout":300,"secure":true,"metadata":{"a":"b"},"envVars":{"A":"1"}}`},
		{"POST", "/sandboxes", `{"templateID":"base","network":{"allowOut":["10.0.0.0/8"],"denyOut":["0.0.0.0/0"],"allowPublicTraffic":false}}`},
		{"POST", "/sandboxes", `{"templateID":"base","timeout":-1}`},
		{"POST", "/sandboxes", `{"templateID":" base ","timeout":1e30}`},
		{"POST", "/sandboxes", `[]`},
		{"POST", "/sandboxes/irunning/timeout", `{"timeout":9223372036854775807}`},
		{"POST", "/sandboxes/irunning/refreshes", `{"duration":-5}`},
		{"POST", "/sandboxes/irunning/connect", `{"timeout":0}`},
		{"POST", "/sandboxes/ipaused/resume", ``},
		{"GET", "/v2/sandboxes?state=running,paused&limit=1&metadata=a%3Db&nextToken=abc", ``},
		{"GET", "/v2/sandboxes?startedAfter=2024-01-01T00:00:00Z&order=asc&template=base", ``},
		{"GET", "/sandboxes/irunning/logs?start=-1&limit=99999999999999999999", ``},
		{"DELETE", "/templates/%2F..%2F", ``},
		{"GET", "/templates/aliases/base", ``},
		{"GET", "/admin/teams", ``},
	} {
		f.Add(seed.method, seed.path, seed.body)
	}
	srv, fo, key := newTestAPI(f)
	f.Fuzz(func(t *testing.T, method, path, body string) {
		// Request lines Go's server itself refuses never reach the API.
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsFunc(path, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return
		}
		u, err := url.Parse(srv.URL + path)
		if err != nil {
			return
		}
		fo.created = nil
		req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("X-API-KEY", key)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("%s %s %q: status %d", method, path, body, resp.StatusCode)
		}
		if resp.StatusCode >= 400 {
			var eb struct {
				Code    *int    `json:"code"`
				Message *string `json:"message"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Code == nil || *eb.Code != resp.StatusCode || eb.Message == nil {
				t.Fatalf("%s %s: status %d without E2B's error body (%v)", method, path, resp.StatusCode, err)
			}
		}
		for _, c := range fo.created {
			if c.Timeout <= 0 || c.Template == "" || len(c.Metadata) > maxMetadata || len(c.EnvVars) > maxEnvVars {
				t.Fatalf("create passed with %+v", c)
			}
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS":
		return true
	}
	return false
}

// Create bodies: whatever decodes, createRequest either refuses it or
// returns a request within every bound.
func FuzzCreateRequest(f *testing.F) {
	f.Add(`{"templateID":"base","timeout":300,"secure":true,"allow_internet_access":false}`)
	f.Add(`{"templateID":"base","network":{"allowOut":["1.2.3.4","::/0"],"denyOut":["x"]}}`)
	f.Add(`{"templateID":"base","envVars":{"":"x","A=B":"y","C":"\u0000"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		var b controlapi.NewSandbox
		if json.Unmarshal([]byte(body), &b) != nil {
			return
		}
		req, err := createRequest(b)
		if err != nil {
			return
		}
		if req.Template == "" || req.Timeout <= 0 {
			t.Fatalf("accepted %q as %+v", body, req)
		}
		if !req.PublicTraffic && !req.Secure {
			t.Fatalf("private traffic without secure: %q", body)
		}
		for k, v := range req.EnvVars {
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) || len(v) > maxEnvValue {
				t.Fatalf("accepted env var %q=%q", k, v)
			}
		}
		for k, v := range req.Metadata {
			if len(k) > maxMetadataKey || len(v) > maxMetadataValue {
				t.Fatalf("accepted metadata %q", k)
			}
		}
	})
}

// List queries and cursors never panic, and a cursor round-trips.
func FuzzListQuery(f *testing.F) {
	f.Add("state=running&limit=5&metadata=a%3Db%26c%3Dd&order=asc", int64(1700000000), "iabc")
	f.Add("nextToken=MjAyNC0wMS0wMVQwMDowMDowMFpfX2lhYmM&startedAfter=2024-01-01", int64(0), "")
	f.Fuzz(func(t *testing.T, raw string, sec int64, id string) {
		q, err := url.ParseQuery(raw)
		if err == nil {
			if f, err := parseListQuery(q); err == nil && (f.Limit < 1 || f.Limit > 100) {
				t.Fatalf("limit %d from %q", f.Limit, raw)
			}
		}
		_, _ = decodeCursor(raw)
		if id == "" || strings.Contains(id, "__") || sec < -62135596800 || sec > 253402300799 {
			return
		}
		c := store.Cursor{StartedAt: time.Unix(sec, 0).UTC(), ID: id}
		got, err := decodeCursor(encodeCursor(c))
		if err != nil || !got.StartedAt.Equal(c.StartedAt) || got.ID != c.ID {
			t.Fatalf("cursor %+v came back as %+v, %v", c, got, err)
		}
	})
}
