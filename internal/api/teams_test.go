package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/apikey"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/sqlite"
	"github.com/airlock-sandbox/airlock/internal/tenancy"

	"github.com/airlock-sandbox/airlock/sdk/controlapi"
)

// twoTeams is an API with a sandbox and a private template per team, a
// public template of team A, a built-in template, and keys for both teams
// plus an admin key of team A.
type twoTeams struct {
	srv               *httptest.Server
	api               *Server
	fo                *fakeOrch
	st                store.Store
	keyA, keyB, admin string
	teamA, teamB      string
	boxA, boxB        string
}

func newTwoTeams(t *testing.T) *twoTeams {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "a.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	other, err := tenancy.EnsureTeam(ctx, st, "other")
	if err != nil {
		t.Fatal(err)
	}
	tt := &twoTeams{st: st, teamA: store.DefaultTeamID, teamB: other.ID, boxA: "iteama", boxB: "iteamb"}
	if tt.keyA, _, err = apikey.Create(ctx, st, apikey.Options{Name: "a"}); err != nil {
		t.Fatal(err)
	}
	if tt.keyB, _, err = apikey.Create(ctx, st, apikey.Options{Name: "b", TeamID: other.ID}); err != nil {
		t.Fatal(err)
	}
	if tt.admin, _, err = apikey.Create(ctx, st, apikey.Options{Name: "op", Admin: true}); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for _, tp := range []*store.Template{
		{ID: "tplbuiltin", Aliases: []string{"base"}, Public: true},
		{ID: "tplprivatea", TeamID: tt.teamA, Aliases: []string{"private-a"}},
		{ID: "tplpublica", TeamID: tt.teamA, Aliases: []string{"public-a"}, Public: true},
		{ID: "tplprivateb", TeamID: tt.teamB, Aliases: []string{"private-b"}},
	} {
		tp.BuildStatus, tp.CreatedAt, tp.UpdatedAt = "ready", now, now
		if err := st.PutTemplate(ctx, tp); err != nil {
			t.Fatal(err)
		}
	}
	tt.fo = &fakeOrch{boxes: map[string]*store.Sandbox{
		tt.boxA: {ID: tt.boxA, TeamID: tt.teamA, TemplateID: "tplbuiltin", State: store.StateRunning, StartedAt: now, EndAt: now.Add(time.Minute), MemoryMB: 512},
		tt.boxB: {ID: tt.boxB, TeamID: tt.teamB, TemplateID: "tplbuiltin", State: store.StatePaused, StartedAt: now, EndAt: now.Add(time.Minute), MemoryMB: 256},
	}}
	tt.api = New(Config{Orchestrator: tt.fo, Store: st, Templates: &fakeTemplateFiles{}})
	tt.srv = httptest.NewServer(tt.api)
	t.Cleanup(tt.srv.Close)
	return tt
}

// Every route that names a sandbox answers 404 to another team's key, with
// E2B's body, and lets the owner through. The routes come from the route
// table, so a new one cannot be added without this check.
func TestCrossTeamSandboxRoutes(t *testing.T) {
	tt := newTwoTeams(t)
	n := 0
	for _, rt := range tt.api.table() {
		if rt.access != owner {
			continue
		}
		n++
		method, pattern, _ := strings.Cut(rt.pattern, " ")
		body := ""
		if rt.maxBody > noBody {
			body = `{"timeout":5}`
		}
		for _, c := range []struct{ key, box string }{{tt.keyB, tt.boxA}, {tt.keyA, tt.boxB}} {
			resp, b := do(t, tt.srv, c.key, method, strings.Replace(pattern, "{id}", c.box, 1), body)
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s on another team's sandbox: %d %s, want 404", rt.pattern, resp.StatusCode, b)
			}
			var eb controlapi.Error
			if json.Unmarshal(b, &eb) != nil || eb.Code != 404 || eb.Message == "" {
				t.Errorf("%s: 404 body %s is not E2B's", rt.pattern, b)
			}
		}
		resp, b := do(t, tt.srv, tt.keyA, method, strings.Replace(pattern, "{id}", tt.boxA, 1), body)
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			t.Errorf("%s by the owner: %d %s", rt.pattern, resp.StatusCode, b)
		}
	}
	if n < 9 {
		t.Fatalf("only %d sandbox routes in the table", n)
	}
}

func TestListsArePerTeam(t *testing.T) {
	tt := newTwoTeams(t)
	for _, c := range []struct {
		key, want, not string
	}{{tt.keyA, tt.boxA, tt.boxB}, {tt.keyB, tt.boxB, tt.boxA}} {
		for _, path := range []string{"/v2/sandboxes", "/sandboxes"} {
			_, b := do(t, tt.srv, c.key, "GET", path, "")
			if strings.Contains(string(b), c.not) {
				t.Errorf("%s lists another team's sandbox: %s", path, b)
			}
			if path == "/v2/sandboxes" && !strings.Contains(string(b), c.want) {
				t.Errorf("%s misses the team's own sandbox: %s", path, b)
			}
		}
	}
	_, b := do(t, tt.srv, tt.keyB, "POST", "/sandboxes", `{"templateID":"base"}`)
	if !strings.Contains(string(b), "sandboxID") || tt.fo.created[0].Team != tt.teamB {
		t.Errorf("create by team B: %s, request team %q", b, tt.fo.created[0].Team)
	}
}

func TestTemplatesPerTeam(t *testing.T) {
	tt := newTwoTeams(t)
	_, b := do(t, tt.srv, tt.keyB, "GET", "/templates", "")
	for _, want := range []string{"tplbuiltin", "tplprivateb"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("team B's template list lacks %s: %s", want, b)
		}
	}
	for _, not := range []string{"tplprivatea", "tplpublica"} {
		if strings.Contains(string(b), not) {
			t.Errorf("team B's template list shows team A's %s: %s", not, b)
		}
	}
	tests := []struct {
		name, key, method, path string
		status                  int
	}{
		{"alias of own", tt.keyA, "GET", "/templates/aliases/private-a", 200},
		// As E2B: the name exists, but not for B (exists reads 403 as true; a build under it fails).
		{"alias of another team's private", tt.keyB, "GET", "/templates/aliases/private-a", 403},
		{"alias with a tag that is not there", tt.keyA, "GET", "/templates/aliases/private-a:nope", 404},
		{"alias of another team's public", tt.keyB, "GET", "/templates/aliases/public-a", 200},
		{"alias of built-in", tt.keyB, "GET", "/templates/aliases/base", 200},
		{"delete another team's private", tt.keyB, "DELETE", "/templates/private-a", 404},
		{"delete another team's public", tt.keyB, "DELETE", "/templates/tplpublica", 404},
		{"delete built-in", tt.keyA, "DELETE", "/templates/base", 403},
		{"delete built-in as admin", tt.admin, "DELETE", "/templates/tplbuiltin", 403},
		{"delete own", tt.keyB, "DELETE", "/templates/private-b", 204},
	}
	for _, tc := range tests {
		resp, b := do(t, tt.srv, tc.key, tc.method, tc.path, "")
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, resp.StatusCode, b, tc.status)
		}
	}
	if _, err := tt.st.GetTemplate(context.Background(), "private-a"); err != nil {
		t.Errorf("team A's template is gone after team B's delete: %v", err)
	}
}

func TestAdminRoutes(t *testing.T) {
	tt := newTwoTeams(t)
	for _, rt := range tt.api.table() {
		if rt.access != admin {
			continue
		}
		method, pattern, _ := strings.Cut(rt.pattern, " ")
		path := strings.Replace(pattern, "{id}", tt.boxB, 1)
		for _, key := range []string{tt.keyA, tt.keyB} {
			if resp, b := do(t, tt.srv, key, method, path, ""); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s with a team key: %d %s, want 403", rt.pattern, resp.StatusCode, b)
			}
		}
		if resp, b := do(t, tt.srv, "", method, path, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without a key: %d %s", rt.pattern, resp.StatusCode, b)
		}
	}
	resp, b := do(t, tt.srv, tt.admin, "GET", "/admin/sandboxes", "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), tt.boxA) || !strings.Contains(string(b), tt.boxB) {
		t.Errorf("admin sandbox list: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, tt.srv, tt.admin, "GET", "/admin/teams", "")
	var teams []controlapi.AdminTeam
	if resp.StatusCode != 200 || json.Unmarshal(b, &teams) != nil || len(teams) != 2 {
		t.Fatalf("admin teams: %d %s", resp.StatusCode, b)
	}
	for _, tj := range teams {
		switch tj.TeamID {
		case tt.teamA:
			if tj.RunningSandboxes != 1 || tj.MemoryMB != 512 {
				t.Errorf("team A usage %+v", tj)
			}
		case tt.teamB:
			if tj.PausedSandboxes != 1 || tj.RunningSandboxes != 0 || tj.Name != "other" {
				t.Errorf("team B usage %+v", tj)
			}
		}
	}
	if resp, b := do(t, tt.srv, tt.admin, "DELETE", "/admin/sandboxes/"+tt.boxB, ""); resp.StatusCode != 204 {
		t.Errorf("admin kill of another team's sandbox: %d %s", resp.StatusCode, b)
	}
}

func TestRequestLimits(t *testing.T) {
	tt := newTwoTeams(t)
	big := strings.Repeat("x", createMax+1)
	tests := []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
	}{
		{"create body over the limit", "POST", "/sandboxes", `{"templateID":"base","metadata":{"a":"` + big + `"}}`, nil, 413},
		{"timeout body over the limit", "POST", "/sandboxes/" + tt.boxA + "/timeout", `{"timeout":5,"x":"` + strings.Repeat("y", smallBody) + `"}`, nil, 413},
		{"body on a GET", "GET", "/v2/sandboxes", strings.Repeat(" ", noBody+1), nil, 413},
		{"headers over 64 KiB", "GET", "/v2/sandboxes", "", http.Header{"X-Big": {strings.Repeat("h", 65<<10)}}, 431},
		{"too many metadata entries", "POST", "/sandboxes", `{"templateID":"base","metadata":{` + manyPairs(maxMetadata+1) + `}}`, nil, 400},
		{"metadata value too long", "POST", "/sandboxes", `{"templateID":"base","metadata":{"k":"` + strings.Repeat("v", maxMetadataValue+1) + `"}}`, nil, 400},
		{"metadata key too long", "POST", "/sandboxes", `{"templateID":"base","metadata":{"` + strings.Repeat("k", maxMetadataKey+1) + `":"v"}}`, nil, 400},
		{"too many env vars", "POST", "/sandboxes", `{"templateID":"base","envVars":{` + manyPairs(maxEnvVars+1) + `}}`, nil, 400},
		{"env value too long", "POST", "/sandboxes", `{"templateID":"base","envVars":{"A":"` + strings.Repeat("v", maxEnvValue+1) + `"}}`, nil, 400},
		{"env value with NUL", "POST", "/sandboxes", `{"templateID":"base","envVars":{"A":"a\u0000b"}}`, nil, 400},
		{"at the bounds", "POST", "/sandboxes", `{"templateID":"base","metadata":{` + manyPairs(maxMetadata) + `},"envVars":{"A":"` + strings.Repeat("v", maxEnvValue) + `"}}`, nil, 201},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, tt.srv.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("X-API-KEY", tt.keyA)
		for k, v := range tc.header {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var eb controlapi.Error
		err = json.NewDecoder(resp.Body).Decode(&eb)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d (%+v), want %d", tc.name, resp.StatusCode, eb, tc.status)
			continue
		}
		if tc.status >= 400 && (err != nil || eb.Code != tc.status || eb.Message == "") {
			t.Errorf("%s: body %+v (%v) is not E2B's", tc.name, eb, err)
		}
	}
}

func manyPairs(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"k` + strings.Repeat("0", 3) + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)) + `":"v"`)
	}
	return b.String()
}

// A client that stops sending its body gets 408 once the body deadline
// passes, and the connection does not stay tied up.
func TestSlowBody(t *testing.T) {
	tt := newTwoTeams(t)
	slow := httptest.NewServer(New(Config{Orchestrator: tt.fo, Store: tt.st, BodyReadTimeout: 200 * time.Millisecond}))
	defer slow.Close()
	conn, err := net.Dial("tcp", slow.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /sandboxes HTTP/1.1\r\nHost: x\r\nX-API-KEY: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"templ", tt.keyA)
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled body: %d, want 408", resp.StatusCode)
	}
}

// Nothing is silently ignored: E2B create fields Airlock cannot honour are
// a 400 naming them, and E2B routes it does not serve are a 501 with E2B's
// body, never a 404 that the SDKs read as "sandbox not found".
func TestUnsupportedIsSaidOutLoud(t *testing.T) {
	tt := newTwoTeams(t)
	for field, body := range map[string]string{
		"mcp":                     `{"templateID":"base","mcp":{"github":{}}}`,
		"volumeMounts":            `{"templateID":"base","volumeMounts":[{"name":"v","path":"/data"}]}`,
		"iam":                     `{"templateID":"base","iam":{"tokens":{}}}`,
		"autoResume":              `{"templateID":"base","autoResume":{"enabled": true}}`,
		"autoPauseMemory":         `{"templateID":"base","autoPause":true,"autoPauseMemory":false}`,
		"network.maskRequestHost": `{"templateID":"base","network":{"maskRequestHost":"x.test"}}`,
	} {
		resp, b := do(t, tt.srv, tt.keyA, "POST", "/sandboxes", body)
		if resp.StatusCode != 400 || !strings.Contains(string(b), field) {
			t.Errorf("%s: %d %s, want 400 naming the field", field, resp.StatusCode, b)
		}
	}
	for _, body := range []string{
		`{"templateID":"base","mcp":null,"volumeMounts":[],"autoResume":{"enabled":false},"autoPauseMemory":true}`,
	} {
		if resp, b := do(t, tt.srv, tt.keyA, "POST", "/sandboxes", body); resp.StatusCode != 201 {
			t.Errorf("harmless values %s: %d %s", body, resp.StatusCode, b)
		}
	}
	n := 0
	for _, rt := range tt.api.table() {
		method, pattern, _ := strings.Cut(rt.pattern, " ")
		path := pathParam.ReplaceAllString(pattern, "x")
		if rt.access == owner {
			path = strings.Replace(pattern, "{id}", tt.boxA, 1)
		}
		resp, b := do(t, tt.srv, tt.keyA, method, path, "")
		if resp.StatusCode != http.StatusNotImplemented {
			continue
		}
		n++
		var eb controlapi.Error
		if json.Unmarshal(b, &eb) != nil || eb.Code != 501 || !strings.Contains(eb.Message, "not implemented") {
			t.Errorf("%s: 501 body %s", rt.pattern, b)
		}
	}
	if n < 20 {
		t.Errorf("only %d routes answer 501", n)
	}
	if resp, _ := do(t, tt.srv, tt.keyB, "POST", "/sandboxes/"+tt.boxA+"/fork", "{}"); resp.StatusCode != 404 {
		t.Errorf("fork of another team's sandbox: %d, want 404 before 501", resp.StatusCode)
	}
}
