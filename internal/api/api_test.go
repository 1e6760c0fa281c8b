package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/apikey"
	"github.com/airlock-sandbox/airlock/internal/orchestrator"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/sqlite"
)

// fakeOrch records calls and serves a fixed set of sandboxes.
type fakeOrch struct {
	created []orchestrator.CreateRequest
	boxes   map[string]*store.Sandbox
	filter  store.SandboxFilter
	// metricsRange is the last range Metrics was asked for.
	metricsRange [2]time.Time
}

func (f *fakeOrch) Create(_ context.Context, req orchestrator.CreateRequest) (*store.Sandbox, error) {
	if req.Template != "base" {
		return nil, fmt.Errorf("%w: %q", orchestrator.ErrTemplateNotFound, req.Template)
	}
	f.created = append(f.created, req)
	sb := &store.Sandbox{ID: "inew000000000000000a", TeamID: req.Team, TemplateID: "tplbase", Alias: "base", State: store.StateRunning, AccessToken: "tok"}
	return sb, nil
}

func (f *fakeOrch) get(id string) (*store.Sandbox, error) {
	if sb, ok := f.boxes[id]; ok {
		return sb, nil
	}
	return nil, fmt.Errorf("%w: %s", orchestrator.ErrNotFound, id)
}

func (f *fakeOrch) Kill(_ context.Context, id string) error { _, err := f.get(id); return err }
func (f *fakeOrch) Owner(_ context.Context, id string) (string, error) {
	sb, err := f.get(id)
	if err != nil {
		return "", err
	}
	return sb.TeamID, nil
}
func (f *fakeOrch) Get(_ context.Context, id string) (*store.Sandbox, error) {
	return f.get(id)
}
func (f *fakeOrch) List(_ context.Context, fl store.SandboxFilter) ([]*store.Sandbox, *store.Cursor, error) {
	f.filter = fl
	var out []*store.Sandbox
	for _, sb := range f.boxes {
		if fl.TeamID == "" || sb.TeamID == fl.TeamID {
			out = append(out, sb)
		}
	}
	return out, &store.Cursor{StartedAt: time.Unix(100, 5).UTC(), ID: "inext"}, nil
}
func (f *fakeOrch) SetTimeout(_ context.Context, id string, _ time.Duration) error {
	_, err := f.get(id)
	return err
}
func (f *fakeOrch) Refresh(_ context.Context, id string, _ time.Duration) error {
	_, err := f.get(id)
	return err
}
func (f *fakeOrch) Connect(_ context.Context, id string, _ time.Duration) (*store.Sandbox, bool, error) {
	sb, err := f.get(id)
	if err != nil {
		return nil, false, err
	}
	return sb, sb.State == store.StatePaused, nil
}
func (f *fakeOrch) Pause(_ context.Context, id string) error {
	sb, err := f.get(id)
	if err != nil {
		return err
	}
	if sb.State == store.StatePaused {
		return fmt.Errorf("%w: already paused", orchestrator.ErrConflict)
	}
	return nil
}
func (f *fakeOrch) Metrics(_ context.Context, id string, start, end time.Time) ([]orchestrator.Sample, error) {
	if _, err := f.get(id); err != nil {
		return nil, err
	}
	f.metricsRange = [2]time.Time{start, end}
	return []orchestrator.Sample{{At: time.Unix(100, 0), CPUCount: 2, MemUsed: 42}}, nil
}
func (f *fakeOrch) Events(_ context.Context, id string, _ time.Time, _ int) ([]store.Event, error) {
	if _, err := f.get(id); err != nil {
		return nil, err
	}
	return []store.Event{{SandboxID: id, Time: time.Unix(1, 0).UTC(), Level: "info", Message: "hello"}}, nil
}

func newTestAPI(t testing.TB) (*httptest.Server, *fakeOrch, string) {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _, err := apikey.Create(context.Background(), st, apikey.Options{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	fo := &fakeOrch{boxes: map[string]*store.Sandbox{
		"irunning": {ID: "irunning", TeamID: store.DefaultTeamID, TemplateID: "tplbase", State: store.StateRunning, StartedAt: now, EndAt: now.Add(time.Minute), CPUCount: 2, MemoryMB: 512, Metadata: map[string]string{"a": "b"}},
		"ipaused":  {ID: "ipaused", TeamID: store.DefaultTeamID, TemplateID: "tplbase", State: store.StatePaused, StartedAt: now, EndAt: now},
	}}
	srv := httptest.NewServer(New(Config{Orchestrator: fo, Store: st}))
	t.Cleanup(srv.Close)
	return srv, fo, key
}

func do(t *testing.T, srv *httptest.Server, key, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-KEY", key)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestStatusesAndErrorBodies(t *testing.T) {
	srv, _, key := newTestAPI(t)
	tests := []struct {
		name, key, method, path, body string
		status                        int
	}{
		{"no key", "", "GET", "/v2/sandboxes", "", 401},
		{"wrong key", "e2b_" + strings.Repeat("0", 40), "GET", "/v2/sandboxes", "", 401},
		{"malformed key", "nope", "GET", "/v2/sandboxes", "", 401},
		{"malformed JSON", key, "POST", "/sandboxes", "{", 400},
		{"missing template", key, "POST", "/sandboxes", `{"timeout": 10}`, 400},
		{"negative timeout", key, "POST", "/sandboxes", `{"templateID":"base","timeout":-1}`, 400},
		{"domain in allowOut", key, "POST", "/sandboxes", `{"templateID":"base","network":{"allowOut":["example.com"]}}`, 400},
		{"private traffic needs secure", key, "POST", "/sandboxes", `{"templateID":"base","secure":false,"network":{"allowPublicTraffic":false}}`, 400},
		{"unknown template", key, "POST", "/sandboxes", `{"templateID":"nope"}`, 404},
		{"create", key, "POST", "/sandboxes", `{"templateID":"base","timeout":300,"secure":true,"allow_internet_access":true,"unknownField":1}`, 201},
		{"get missing", key, "GET", "/sandboxes/imissing", "", 404},
		{"kill missing", key, "DELETE", "/sandboxes/imissing", "", 404},
		{"kill", key, "DELETE", "/sandboxes/irunning", "", 204},
		{"timeout", key, "POST", "/sandboxes/irunning/timeout", `{"timeout":5}`, 204},
		{"timeout without body field", key, "POST", "/sandboxes/irunning/timeout", `{}`, 400},
		{"connect running", key, "POST", "/sandboxes/irunning/connect", `{"timeout":5}`, 200},
		{"connect paused resumes", key, "POST", "/sandboxes/ipaused/connect", `{"timeout":5}`, 201},
		{"connect missing", key, "POST", "/sandboxes/imissing/connect", `{"timeout":5}`, 404},
		{"pause", key, "POST", "/sandboxes/irunning/pause", `{"memory":true}`, 204},
		{"bad state filter", key, "GET", "/v2/sandboxes?state=bogus", "", 400},
		{"bad limit", key, "GET", "/v2/sandboxes?limit=0", "", 400},
		{"bad order", key, "GET", "/v2/sandboxes?order=up", "", 400},
		{"bad token", key, "GET", "/v2/sandboxes?nextToken=bm90LWEtY3Vyc29y", "", 400},
		{"unknown route", key, "GET", "/nope", "", 404},
		{"wrong method", key, "PUT", "/sandboxes", "", 405},
		{"metrics", key, "GET", "/sandboxes/irunning/metrics", "", 200},
		{"metrics range", key, "GET", "/sandboxes/irunning/metrics?start=10&end=20", "", 200},
		{"metrics bad start", key, "GET", "/sandboxes/irunning/metrics?start=soon", "", 400},
		{"metrics start after end", key, "GET", "/sandboxes/irunning/metrics?start=20&end=10", "", 400},
		{"metrics missing", key, "GET", "/sandboxes/imissing/metrics", "", 404},
		{"logs", key, "GET", "/sandboxes/irunning/logs?start=0", "", 200},
		{"templates", key, "GET", "/templates", "", 200},
		{"health needs no key", "", "GET", "/health", "", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, tc.key, tc.method, tc.path, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, tc.status, body)
			}
			if tc.status >= 400 {
				var eb struct {
					Code    *int    `json:"code"`
					Message *string `json:"message"`
				}
				if err := json.Unmarshal(body, &eb); err != nil || eb.Code == nil || eb.Message == nil {
					t.Fatalf("error body %q lacks code/message (%v)", body, err)
				}
				if *eb.Code != tc.status || *eb.Message == "" {
					t.Errorf("error body code %d message %q", *eb.Code, *eb.Message)
				}
			}
		})
	}
}

// The connect endpoint answers 201 only when it resumed a paused sandbox.
func TestConnectResumedIs201(t *testing.T) {
	srv, fo, key := newTestAPI(t)
	fo.boxes["ipaused"].State = store.StatePaused
	resp, body := do(t, srv, key, "POST", "/sandboxes/ipaused/connect", `{"timeout":5}`)
	if resp.StatusCode != 201 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}

func TestCreateShapeAndDefaults(t *testing.T) {
	srv, fo, key := newTestAPI(t)
	resp, body := do(t, srv, key, "POST", "/sandboxes", `{"templateID":"base","metadata":{"m":"1"},"envVars":{"A":"1"}}`)
	if resp.StatusCode != 201 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"templateID", "sandboxID", "clientID", "envdVersion", "envdAccessToken", "domain", "trafficAccessToken"} {
		if _, ok := m[k]; !ok {
			t.Errorf("create response lacks %q: %s", k, body)
		}
	}
	if m["envdVersion"] != orchestrator.EnvdVersion || m["domain"] != nil {
		t.Errorf("envdVersion %v domain %v", m["envdVersion"], m["domain"])
	}
	req := fo.created[0]
	if req.Timeout != 15*time.Second || !req.Secure || !req.AllowInternet || !req.PublicTraffic {
		t.Errorf("defaults not applied: %+v", req)
	}
	if req.Metadata["m"] != "1" || req.EnvVars["A"] != "1" {
		t.Errorf("metadata/env lost: %+v", req)
	}
}

func TestListQueryAndPagination(t *testing.T) {
	srv, fo, key := newTestAPI(t)
	// As the SDKs do: urlencode({quote(k): quote(v)}), sent as one query value.
	md := url.QueryEscape(url.Values{url.QueryEscape("user"): {url.QueryEscape("a b&c")}}.Encode())
	resp, body := do(t, srv, key, "GET", "/v2/sandboxes?state=running,paused&limit=2&order=asc&metadata="+md+"&startedAfter=2024-01-01T00:00:00%2B00:00", "")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	f := fo.filter
	if f.Limit != 2 || !f.Ascending || f.Metadata["user"] != "a b&c" || f.StartedAfter.IsZero() || len(f.States) != 2 {
		t.Errorf("filter parsed as %+v", f)
	}
	tok := resp.Header.Get("X-Next-Token")
	if tok == "" {
		t.Fatal("no X-Next-Token")
	}
	c, err := decodeCursor(tok)
	if err != nil || c.ID != "inext" || !c.StartedAt.Equal(time.Unix(100, 5)) {
		t.Errorf("cursor round trip: %+v %v", c, err)
	}
	var list []map[string]any
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatal(err)
	}
	for _, sb := range list {
		if s := sb["state"]; s != "running" && s != "paused" {
			t.Errorf("state %v leaked onto the wire", s)
		}
	}
}

func TestParseMetadataQuery(t *testing.T) {
	tests := []struct {
		in      string
		want    map[string]string
		wantErr bool
	}{
		{"a%3Db", map[string]string{"a": "b"}, false},
		{"a%3Db%26c%3Dd", map[string]string{"a": "b", "c": "d"}, false},
		{"k%253D%3Dv%2526", map[string]string{"k=": "v&"}, false},
		{"novalue", nil, true},
		{"a%3Db%3Dc", nil, true},
	}
	for _, tc := range tests {
		got, err := parseMetadataQuery(tc.in)
		if (err != nil) != tc.wantErr {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		for k, v := range tc.want {
			if got[k] != v {
				t.Errorf("%q: %s = %q, want %q", tc.in, k, got[k], v)
			}
		}
	}
}

func TestMetricsRangeAndShape(t *testing.T) {
	srv, fo, key := newTestAPI(t)
	_, body := do(t, srv, key, "GET", "/sandboxes/irunning/metrics?start=1700000000&end=1700000060", "")
	var got []map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if fo.metricsRange != [2]time.Time{time.Unix(1700000000, 0), time.Unix(1700000060, 0)} {
		t.Errorf("range passed on = %v", fo.metricsRange)
	}
	if len(got) != 1 || got[0]["timestampUnix"] != float64(100) || got[0]["timestamp"] != "1970-01-01T00:01:40Z" ||
		got[0]["cpuCount"] != float64(2) || got[0]["memUsed"] != float64(42) {
		t.Errorf("metrics = %v", got)
	}
}
