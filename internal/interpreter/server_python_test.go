package interpreter

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newPythonServer(t *testing.T, envdURL string) *testServer {
	t.Helper()
	requirePython(t)
	ts := newTestServer(t, ServerOptions{
		EnvdURL:   envdURL,
		Factories: map[string]Factory{"python": NewPythonKernel, "r": NewRKernel},
	})
	ts.srv.Preload("python")
	return ts
}

func TestServerPythonStream(t *testing.T) {
	ts := newPythonServer(t, "")
	lines := ts.execute(t, map[string]any{"code": "x = 1\nprint(x)\nx + 1"}, nil)
	if got := strings.Join(types(lines), ","); got != "number_of_executions,stdout,result,end_of_execution" {
		t.Fatalf("types = %s (%v)", got, lines)
	}
	out := lines[1]
	if out["text"] != "1\n" || !strings.HasSuffix(out["timestamp"].(string), "Z") {
		t.Errorf("stdout line = %v", out)
	}
	if _, err := time.Parse(time.RFC3339Nano, out["timestamp"].(string)); err != nil {
		t.Errorf("timestamp: %v", err)
	}
	if res := lines[2]; res["text"] != "2" || res["is_main_result"] != true || !reflect.DeepEqual(res["extra"], map[string]any{}) {
		t.Errorf("result line = %v", res)
	}

	lines = ts.execute(t, map[string]any{"code": "'hello'", "language": "python"}, nil)
	if got := mainText(t, lines); got != "hello" {
		t.Errorf("str result text = %q, want quotes stripped", got)
	}
	lines = ts.execute(t, map[string]any{"code": "1/0", "context_id": nil, "language": nil}, nil)
	e := firstOf(lines, "error")
	if e == nil || e["name"] != "ZeroDivisionError" || e["value"] != "division by zero" || !strings.Contains(e["traceback"].(string), "ZeroDivisionError") {
		t.Errorf("error line = %v", e)
	}
	if types(lines)[len(types(lines))-1] != "end_of_execution" {
		t.Errorf("stream does not end with end_of_execution: %v", lines)
	}
}

func TestServerPythonEnv(t *testing.T) {
	var calls atomic.Int32
	envd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/envs" || r.Header.Get("X-Access-Token") != "tok" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		calls.Add(1)
		json.NewEncoder(w).Encode(map[string]string{"SANDBOX_VAR": "sandbox", "SHARED": "sandbox"})
	}))
	defer envd.Close()
	ts := newPythonServer(t, envd.URL)
	h := http.Header{"X-Access-Token": {"tok"}}
	const probe = "import os; (os.environ.get('SANDBOX_VAR'), os.environ.get('SHARED'), os.environ.get('ONLY'))"

	if got := mainText(t, ts.execute(t, map[string]any{"code": probe}, h)); got != "('sandbox', 'sandbox', None)" {
		t.Errorf("sandbox env = %s", got)
	}
	lines := ts.execute(t, map[string]any{"code": probe, "env_vars": map[string]string{"SHARED": "exec", "ONLY": "1"}}, h)
	if got := mainText(t, lines); got != "('sandbox', 'exec', '1')" {
		t.Errorf("execution env = %s", got)
	}
	if got := mainText(t, ts.execute(t, map[string]any{"code": probe}, h)); got != "('sandbox', 'sandbox', None)" {
		t.Errorf("env after the execution = %s, want restored", got)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("envd /envs called %d times, want once per context", n)
	}
}

func TestServerPythonDisconnectInterrupts(t *testing.T) {
	ts := newPythonServer(t, "")
	ts.execute(t, map[string]any{"code": "kept = 7"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/execute", strings.NewReader(`{"code":"while True: pass"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	resp.Body.Close()
	start := time.Now()
	if got := mainText(t, ts.execute(t, map[string]any{"code": "kept"}, nil)); got != "7" {
		t.Errorf("state after interrupt = %q", got)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("next execution waited %v", took)
	}
}

func TestServerPythonKernelDeath(t *testing.T) {
	ts := newPythonServer(t, "")
	lines := ts.execute(t, map[string]any{"code": "import os; os._exit(1)"}, nil)
	e := firstOf(lines, "error")
	if e == nil || e["name"] != "KernelDied" {
		t.Fatalf("lines = %v, want a KernelDied error", lines)
	}
	if got := mainText(t, ts.execute(t, map[string]any{"code": "1 + 1"}, nil)); got != "2" {
		t.Errorf("after death = %q", got)
	}
}

func TestServerR(t *testing.T) {
	requireR(t)
	ts := newPythonServer(t, "")
	if got := firstOf(ts.execute(t, map[string]any{"code": "1+1", "language": "R"}, nil), "result"); got == nil || got["text"] != "[1] 2" {
		t.Errorf("R 1+1 = %v", got)
	}
	ts.execute(t, map[string]any{"code": "v <- 21", "language": "r"}, nil)
	if got := firstOf(ts.execute(t, map[string]any{"code": "v * 2", "language": "r"}, nil), "result"); got == nil || got["text"] != "[1] 42" {
		t.Errorf("R state = %v", got)
	}
}
