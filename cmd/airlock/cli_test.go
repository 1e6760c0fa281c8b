package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

const testKey = "e2b_0123456789abcdef0123456789abcdef01234567"

// runCLI executes the root command like main does and returns stdout,
// stderr and the exit code main would use.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		code = 1
		var ec exitCoder
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
		fmt.Fprintln(&errb, "airlock:", err)
	}
	return out.String(), errb.String(), code
}

// fakeAPI serves a tiny subset of the control API for one sandbox "sb1".
func fakeAPI(t *testing.T) *httptest.Server {
	t.Helper()
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	info := map[string]any{
		"sandboxID": "sb1", "templateID": "tpl1", "alias": "base", "startedAt": started,
		"endAt": started.Add(5 * time.Minute), "state": "running", "cpuCount": 2, "memoryMB": 512,
		"diskSizeMB": 1024, "envdVersion": "0.2.0", "metadata": map[string]string{"owner": "me"},
	}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	notFound := func(w http.ResponseWriter) {
		reply(w, http.StatusNotFound, map[string]any{"code": 404, "message": "sandbox not found"})
	}
	mux.HandleFunc("GET /v2/sandboxes", func(w http.ResponseWriter, r *http.Request) {
		if got := r.URL.Query().Get("metadata"); got != "" && got != "owner=me" {
			reply(w, http.StatusOK, []any{})
			return
		}
		reply(w, http.StatusOK, []any{info})
	})
	mux.HandleFunc("GET /sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "sb1" {
			notFound(w)
			return
		}
		reply(w, http.StatusOK, info)
	})
	mux.HandleFunc("DELETE /sandboxes/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") != "sb1" {
			notFound(w)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /sandboxes/{id}/logs", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, map[string]any{"logs": []any{}, "logEntries": []any{
			map[string]any{"timestamp": started, "level": "info", "message": "sandbox created", "fields": map[string]string{}},
		}})
	})
	mux.HandleFunc("GET /sandboxes/{id}/metrics", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, []any{map[string]any{"timestamp": started, "cpuCount": 2, "cpuUsedPct": 12.5,
			"memUsed": 64 << 20, "memTotal": 512 << 20, "diskUsed": 0, "diskTotal": 1 << 30}})
	})
	mux.HandleFunc("GET /templates", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, []any{map[string]any{"templateID": "tpl1", "aliases": []string{"base"},
			"buildStatus": "ready", "cpuCount": 2, "memoryMB": 512, "diskSizeMB": 1024, "createdAt": started}})
	})
	mux.HandleFunc("DELETE /templates/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("id") {
		case "base":
			reply(w, http.StatusConflict, map[string]any{"code": 409, "message": "template base is in use"})
		case "old":
			w.WriteHeader(http.StatusNoContent)
		default:
			reply(w, http.StatusNotFound, map[string]any{"code": 404, "message": "template not found"})
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != testKey {
			reply(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "invalid API key"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("E2B_API_URL", srv.URL)
	t.Setenv("E2B_SANDBOX_URL", srv.URL)
	t.Setenv("E2B_API_KEY", testKey)
	t.Setenv("E2B_DOMAIN", "")
	return srv
}

func TestCLIAgainstFakeAPI(t *testing.T) {
	fakeAPI(t)
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"list table", []string{"sandbox", "list"}, 0, []string{"SANDBOX ID", "sb1", "base", "running", "owner=me"}},
		{"list metadata filter", []string{"sandbox", "list", "--metadata", "owner=you"}, 0, []string{"SANDBOX ID"}},
		{"info table", []string{"sandbox", "info", "sb1"}, 0, []string{"ID", "sb1", "512 MiB", "owner=me"}},
		{"info unknown", []string{"sandbox", "info", "nope"}, exitNotFound, nil},
		{"kill", []string{"sandbox", "kill", "sb1"}, 0, []string{"sb1"}},
		{"kill unknown", []string{"sandbox", "kill", "nope"}, exitNotFound, nil},
		{"logs", []string{"sandbox", "logs", "sb1"}, 0, []string{"info", "sandbox created"}},
		{"metrics", []string{"sandbox", "metrics", "sb1"}, 0, []string{"12.5", "64.0 MiB / 512.0 MiB"}},
		{"template list", []string{"template", "list"}, 0, []string{"tpl1", "base", "ready"}},
		{"template rm", []string{"template", "rm", "old"}, 0, []string{"old"}},
		{"template rm in use", []string{"template", "rm", "base"}, exitGeneric, nil},
		{"template rm unknown", []string{"template", "rm", "nope"}, exitNotFound, nil},
		{"complete sandbox ids", []string{"__complete", "sandbox", "shell", ""}, 0, []string{"sb1\tbase, running"}},
		{"complete state", []string{"__complete", "sandbox", "list", "--state", ""}, 0, []string{"running", "paused"}},
		{"bad key flag", []string{"sandbox", "list", "--api-key", "e2b_00"}, exitAuth, nil},
		{"bad key on raw call", []string{"template", "list", "--api-key", "e2b_00"}, exitAuth, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stdout=%q stderr=%q", code, tt.code, out, errOut)
			}
			for _, s := range tt.contains {
				if !strings.Contains(out, s) {
					t.Errorf("stdout %q does not contain %q", out, s)
				}
			}
		})
	}
}

func TestCLIJSONOutput(t *testing.T) {
	fakeAPI(t)
	out, errOut, code := runCLI(t, "sandbox", "list", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var infos []sandbox.Info
	if err := json.Unmarshal([]byte(out), &infos); err != nil {
		t.Fatalf("list --json is not JSON: %v\n%s", err, out)
	}
	if len(infos) != 1 || infos[0].SandboxID != "sb1" || infos[0].Metadata["owner"] != "me" {
		t.Fatalf("list --json = %+v", infos)
	}

	out, _, code = runCLI(t, "sandbox", "info", "--json", "sb1")
	var info sandbox.Info
	if err := json.Unmarshal([]byte(out), &info); code != 0 || err != nil || info.MemoryMB != 512 {
		t.Fatalf("info --json: exit %d, err %v, %+v", code, err, info)
	}

	out, _, code = runCLI(t, "template", "list", "--json")
	var ts []sandbox.Template
	if err := json.Unmarshal([]byte(out), &ts); code != 0 || err != nil || len(ts) != 1 || ts[0].TemplateID != "tpl1" {
		t.Fatalf("template list --json: exit %d, err %v, %+v", code, err, ts)
	}
}

func TestCLIUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"unknown subcommand", []string{"sandbox", "frobnicate"}, exitUsage},
		{"group without subcommand", []string{"template"}, exitUsage},
		{"unknown flag", []string{"sandbox", "list", "--frobnicate"}, exitUsage},
		{"exec without command", []string{"sandbox", "exec", "sb1"}, exitUsage},
		{"info without id", []string{"sandbox", "info"}, exitUsage},
		{"kill without id", []string{"sandbox", "kill"}, exitUsage},
		{"bad metadata", []string{"sandbox", "create", "--metadata", "novalue"}, exitUsage},
		{"bad timeout", []string{"sandbox", "create", "--timeout", "soon"}, exitUsage},
		{"bad state", []string{"sandbox", "list", "--state", "dead"}, exitUsage},
		{"cp both local", []string{"sandbox", "cp", "./a", "./b"}, exitUsage},
		{"cp both remote", []string{"sandbox", "cp", "x:/a", "y:/b"}, exitUsage},
		{"template build without name", []string{"template", "build"}, exitUsage},
		{"template build without from", []string{"template", "build", "x"}, exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := runCLI(t, tt.args...)
			if code != tt.code {
				t.Fatalf("exit code %d, want %d; stderr=%q", code, tt.code, errOut)
			}
		})
	}
	_, errOut, _ := runCLI(t, "template", "build", "x")
	if !strings.Contains(errOut, "--from") {
		t.Errorf("template build message %q should ask for --from", errOut)
	}
}

func TestHelpDocumentsExitCodesAndCompletion(t *testing.T) {
	out, _, code := runCLI(t, "--help")
	if code != 0 || !strings.Contains(out, "Exit codes:") || !strings.Contains(out, "4  authentication") {
		t.Fatalf("--help (exit %d) lacks exit codes:\n%s", code, out)
	}
	out, _, code = runCLI(t, "completion", "bash")
	if code != 0 || !strings.Contains(out, "bash completion") {
		t.Fatalf("completion bash: exit %d, %.200q", code, out)
	}
}

func TestExitCodeFor(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"generic", errors.New("boom"), exitGeneric},
		{"usage", usagef("bad"), exitUsage},
		{"not found", fmt.Errorf("x: %w", &sandbox.Error{Kind: sandbox.ErrNotFound}), exitNotFound},
		{"auth", &sandbox.Error{Kind: sandbox.ErrAuthentication}, exitAuth},
		{"local file missing", fmt.Errorf("copy: %w", os.ErrNotExist), exitNotFound},
		{"remote exit", fmt.Errorf("run: %w", &sandbox.CommandExitError{ExitCode: 7}), 7},
		{"other sdk error", &sandbox.Error{Kind: sandbox.ErrTimeout}, exitGeneric},
	}
	for _, tt := range tests {
		if got := exitCodeFor(tt.err); got != tt.want {
			t.Errorf("%s: exitCodeFor = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestParseKeyValues(t *testing.T) {
	got, err := parseKeyValues("env", []string{"A=1", "B=x=y", "C="})
	if err != nil || len(got) != 3 || got["A"] != "1" || got["B"] != "x=y" || got["C"] != "" {
		t.Fatalf("parseKeyValues = %v, %v", got, err)
	}
	for _, bad := range []string{"A", "=1"} {
		if _, err := parseKeyValues("env", []string{bad}); exitCodeFor(err) != exitUsage {
			t.Errorf("parseKeyValues(%q) err = %v, want usage error", bad, err)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", 0, true}, {"90", 90 * time.Second, true}, {"10m", 10 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true}, {"-5", 0, false}, {"soon", 0, false},
	}
	for _, tt := range tests {
		got, err := parseTimeout("timeout", tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseTimeout(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestParseCpSpec(t *testing.T) {
	tests := []struct {
		in   string
		want cpSpec
	}{
		{"abc123:/home/user/x", cpSpec{"abc123", "/home/user/x"}},
		{"abc123:rel/path", cpSpec{"abc123", "rel/path"}},
		{"abc123:", cpSpec{"abc123", "."}},
		{"./local:file", cpSpec{"", "./local:file"}},
		{"/tmp/a:b", cpSpec{"", "/tmp/a:b"}},
		{"plain", cpSpec{"", "plain"}},
		{"file.txt:x", cpSpec{"", "file.txt:x"}},
	}
	for _, tt := range tests {
		if got := parseCpSpec(tt.in); got != tt.want {
			t.Errorf("parseCpSpec(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"echo $HOME | wc -c"}, "echo $HOME | wc -c"},
		{[]string{"ls", "-la", "/tmp"}, "ls -la /tmp"},
		{[]string{"sh", "-c", "exit 7"}, "sh -c 'exit 7'"},
		{[]string{"echo", "it's", ""}, `echo 'it'\''s' ''`},
	}
	for _, tt := range tests {
		if got := commandLine(tt.args); got != tt.want {
			t.Errorf("commandLine(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestResolveEndpoints(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name  string
		flags clientFlags
		env   map[string]string
		want  endpoints
	}{
		{"local default", clientFlags{}, nil, endpoints{defaultLocalURL, defaultLocalURL, ""}},
		{"e2b env", clientFlags{}, map[string]string{"E2B_API_URL": "http://a:1/", "E2B_SANDBOX_URL": "http://s:2", "E2B_API_KEY": "k"},
			endpoints{"http://a:1", "http://s:2", "k"}},
		{"airlock fallback", clientFlags{}, map[string]string{"AIRLOCK_API_URL": "http://b:1", "AIRLOCK_API_KEY": "k2"},
			endpoints{"http://b:1", "http://b:1", "k2"}},
		{"flags win", clientFlags{apiURL: "http://f:1", apiKey: "fk"}, map[string]string{"E2B_API_URL": "http://a:1", "E2B_API_KEY": "k"},
			endpoints{"http://f:1", "http://f:1", "fk"}},
		{"domain left to sdk", clientFlags{}, map[string]string{"E2B_DOMAIN": "example.com"}, endpoints{"", "", ""}},
	}
	for _, tt := range tests {
		if got := tt.flags.resolve(env(tt.env)); got != tt.want {
			t.Errorf("%s: resolve = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestTables(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	infos := []sandbox.Info{{SandboxID: "sbx-long-id", Alias: "base", State: sandbox.StateRunning, CPUCount: 2,
		MemoryMB: 512, StartedAt: now.Add(-90 * time.Second), EndAt: now.Add(2 * time.Hour),
		Metadata: map[string]string{"b": "2", "a": "1"}}}
	var buf bytes.Buffer
	if err := sandboxTable(infos, now).render(&buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want header and one row, got %q", buf.String())
	}
	// Columns are aligned: each header word starts where its cell starts.
	for _, col := range []string{"TEMPLATE", "STATE", "AGE", "METADATA"} {
		if i := strings.Index(lines[0], col); i < 0 || i >= len(lines[1]) || lines[1][i-1] != ' ' {
			t.Errorf("column %s not aligned:\n%s", col, buf.String())
		}
	}
	for _, want := range []string{"sbx-long-id", "base", "running", "512 MiB", "1m30s", "2h0m", "a=1,b=2"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("row %q lacks %q", lines[1], want)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 100 << 20: "100.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
