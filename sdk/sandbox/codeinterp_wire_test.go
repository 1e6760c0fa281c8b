package sandbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// fakeInterpreter connects a sandbox handle to handler standing in for
// the code interpreter server.
func fakeInterpreter(t *testing.T, handler http.HandlerFunc) *sandbox.Sandbox {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	api := fakeAPI(t, "")
	sbx, err := sandbox.NewClient(sandbox.WithAPIURL(api.URL), sandbox.WithSandboxURL(srv.URL),
		sandbox.WithAPIKey("e2b_00"), localHTTP()).Connect(context.Background(), "sbx1", 0)
	if err != nil {
		t.Fatal(err)
	}
	return sbx
}

const cannedExecution = `{"type": "number_of_executions", "execution_count": 7}
{"type": "stdout", "text": "a\n", "timestamp": "2024-05-01T12:00:00.123456Z"}
{"type": "keepalive"}
{"type": "stderr", "text": "warn\n", "timestamp": "2024-05-01T12:00:01Z"}
{"type": "result", "text": "<Figure>", "png": "iVBO", "is_main_result": false, "extra": {"application/x-custom": 1}, "custom_key": "v",
 "chart": {"type": "superchart", "title": null, "elements": [
  {"type": "line", "title": "t", "x_label": "x", "y_label": null, "x_unit": null, "y_unit": null, "x_scale": "linear", "y_scale": "datetime",
   "x_ticks": [0, 1.5], "x_tick_labels": ["0", "1.5"], "y_ticks": ["2024-01-01T00:00:00"], "y_tick_labels": ["Jan"],
   "elements": [{"label": "s", "points": [[0, 1], [1.5, "2024-01-01T00:00:00"]]}]},
  {"type": "bar", "title": "b", "x_label": null, "y_label": null, "x_unit": null, "y_unit": null,
   "elements": [{"label": "A", "group": "g", "value": 3}, {"label": "B", "group": "g", "value": "4.5"}, {"label": "C", "group": "g", "value": true}]},
  {"type": "pie", "title": null, "elements": [{"label": "p", "angle": 90, "radius": 1}]},
  {"type": "box_and_whisker", "title": null, "x_label": null, "y_label": null, "x_unit": null, "y_unit": null,
   "elements": [{"label": "b", "min": 1, "first_quartile": 2, "median": 3, "third_quartile": 4, "max": 5, "outliers": [9]}]}]}}
{"type": "result", "text": "42", "html": "<b>42</b>", "json": {"k": [1]}, "data": {"col": [1, 2]}, "is_main_result": true, "extra": {}}
{"type": "error", "name": "ValueError", "value": "bad", "traceback": "Traceback..."}
{"type": "something_new", "x": 1}
{"type": "end_of_execution"}
`

func TestCodeInterpreterWire(t *testing.T) {
	var mu sync.Mutex
	headers := map[string]http.Header{}
	var execBody map[string]any
	sbx := fakeInterpreter(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		headers[r.Method+" "+r.URL.Path] = r.Header.Clone()
		mu.Unlock()
		switch r.Method + " " + r.URL.Path {
		case "POST /execute":
			if err := json.NewDecoder(r.Body).Decode(&execBody); err != nil {
				t.Errorf("decode /execute body: %v", err)
			}
			// Indented lines continue the previous one (readability only).
			_, _ = io.WriteString(w, strings.ReplaceAll(cannedExecution, "\n ", " "))
		case "POST /contexts":
			_, _ = io.WriteString(w, `{"id": "c1", "language": "javascript", "cwd": "/tmp"}`)
		case "GET /contexts":
			_, _ = io.WriteString(w, `[{"id": "c1", "language": "javascript", "cwd": "/tmp"}]`)
		case "POST /contexts/c1/restart", "DELETE /contexts/c1":
			_, _ = io.WriteString(w, "null")
		case "DELETE /contexts/gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, "Context gone not found")
		case "DELETE /contexts/dead":
			w.WriteHeader(http.StatusBadGateway)
		default:
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, "kernel exploded")
		}
	})
	ctx := ctxT(t, time.Minute)

	var order []string
	exec, err := sbx.RunCode(ctx, "x", &sandbox.RunCodeOptions{
		Context:  &sandbox.CodeContext{ID: "c1"},
		Envs:     map[string]string{"A": "b"},
		OnStdout: func(m sandbox.OutputMessage) { order = append(order, "stdout:"+m.Line) },
		OnStderr: func(m sandbox.OutputMessage) {
			if !m.Error {
				t.Error("stderr message without Error")
			}
			order = append(order, "stderr:"+m.Line)
		},
		OnResult: func(r sandbox.Result) { order = append(order, "result:"+r.Text) },
		OnError:  func(e sandbox.ExecutionError) { order = append(order, "error:"+e.Name) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "stdout:a\n|stderr:warn\n|result:<Figure>|result:42|error:ValueError"; strings.Join(order, "|") != want {
		t.Errorf("callbacks = %q, want %q", strings.Join(order, "|"), want)
	}
	if execBody["code"] != "x" || execBody["context_id"] != "c1" || execBody["language"] != nil ||
		execBody["env_vars"].(map[string]any)["A"] != "b" {
		t.Errorf("/execute body = %v", execBody)
	}
	if exec.ExecutionCount != 7 || exec.Text() != "42" || len(exec.Results) != 2 ||
		exec.Error == nil || exec.Error.Value != "bad" || exec.Error.Traceback != "Traceback..." ||
		strings.Join(exec.Logs.Stdout, "") != "a\n" || strings.Join(exec.Logs.Stderr, "") != "warn\n" {
		t.Fatalf("execution = %+v", exec)
	}
	main := exec.Results[1]
	if main.HTML != "<b>42</b>" || main.JSON["k"] == nil || main.Data["col"] == nil ||
		strings.Join(main.Formats(), ",") != "text,html,json,data" {
		t.Errorf("main result = %+v (formats %v)", main, main.Formats())
	}

	fig := exec.Results[0]
	if fig.PNG != "iVBO" || fig.Extra["application/x-custom"] != float64(1) || fig.Extra["custom_key"] != "v" {
		t.Errorf("figure result = %+v", fig)
	}
	checkSuperchart(t, fig.Chart)

	h := headers["POST /execute"]
	for k, want := range map[string]string{
		"E2b-Sandbox-Id": "sbx1", "E2b-Sandbox-Port": "49999", "X-Access-Token": "tok", "Content-Type": "application/json",
	} {
		if h.Get(k) != want {
			t.Errorf("/execute %s = %q, want %q", k, h.Get(k), want)
		}
	}

	c, err := sbx.CreateCodeContext(ctx, &sandbox.CodeContextOptions{Language: "js", Cwd: "/tmp"})
	if err != nil || *c != (sandbox.CodeContext{ID: "c1", Language: "javascript", Cwd: "/tmp"}) {
		t.Fatalf("CreateCodeContext = %+v, %v", c, err)
	}
	if cs, err := sbx.ListCodeContexts(ctx); err != nil || len(cs) != 1 || cs[0].ID != "c1" {
		t.Fatalf("ListCodeContexts = %+v, %v", cs, err)
	}
	if err := sbx.RestartCodeContext(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if err := sbx.RemoveCodeContext(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if h := headers["POST /contexts"]; h.Get("X-Access-Token") != "" || h.Get("E2b-Sandbox-Port") != "49999" {
		t.Errorf("/contexts headers = %v (no token wanted)", h)
	}

	for id, want := range map[string]error{"gone": sandbox.ErrNotFound, "dead": sandbox.ErrTimeout, "other": sandbox.ErrSandbox} {
		err := sbx.RemoveCodeContext(ctx, id)
		var se *sandbox.Error
		if !errors.Is(err, want) || !errors.As(err, &se) || se.Status == 0 {
			t.Errorf("remove %s: err = %v, want %v with a status", id, err, want)
		}
	}
	if err := sbx.RemoveCodeContext(ctx, "other"); !strings.Contains(err.Error(), "kernel exploded") {
		t.Errorf("500 error %q lacks the body text", err)
	}
	if _, err := sbx.RunCode(ctx, "x", &sandbox.RunCodeOptions{Language: "python", Context: c}); !errors.Is(err, sandbox.ErrInvalidArgument) {
		t.Errorf("Language with Context: err = %v", err)
	}
}

func checkSuperchart(t *testing.T, c *sandbox.Chart) {
	t.Helper()
	if c == nil || c.Type != sandbox.ChartSuperchart || len(c.Elements) != 4 {
		t.Fatalf("chart = %+v", c)
	}
	line, ok := c.Elements[0].(*sandbox.Chart)
	if !ok || line.Type != sandbox.ChartLine || line.Title != "t" || line.XLabel != "x" || line.YLabel != "" ||
		line.YScale != "datetime" || len(line.XTicks) != 2 || line.YTickLabels[0] != "Jan" {
		t.Fatalf("line subchart = %+v", c.Elements[0])
	}
	series, ok := line.Elements[0].(sandbox.PointSeries)
	if !ok || series.Label != "s" || len(series.Points) != 2 || series.Points[1].Y != "2024-01-01T00:00:00" || series.Points[1].X != 1.5 {
		t.Fatalf("line series = %#v", line.Elements[0])
	}
	bar := c.Elements[1].(*sandbox.Chart)
	if b, ok := bar.Elements[0].(sandbox.BarElement); !ok || b.Value != 3 {
		t.Errorf("bar 0 = %#v", bar.Elements[0])
	}
	if b, ok := bar.Elements[1].(sandbox.BarElement); !ok || b.Value != 4.5 {
		t.Errorf("bar 1 (string value) = %#v", bar.Elements[1])
	}
	if raw, ok := bar.Elements[2].(sandbox.RawElement); !ok || raw["value"] != true {
		t.Errorf("bar 2 (bad value) = %#v, want a RawElement", bar.Elements[2])
	}
	pie := c.Elements[2].(*sandbox.Chart)
	if p, ok := pie.Elements[0].(sandbox.PieElement); !ok || p.Angle != 90 || p.Radius != 1 {
		t.Errorf("pie = %#v", pie.Elements[0])
	}
	box := c.Elements[3].(*sandbox.Chart)
	if b, ok := box.Elements[0].(sandbox.BoxAndWhiskerElement); !ok || b.Median != 3 || b.ThirdQuartile != 4 || len(b.Outliers) != 1 {
		t.Errorf("box = %#v", box.Elements[0])
	}
}

// TestCodeInterpreterTimeoutCancels checks that Timeout aborts a running
// execution and that the server sees the request go away.
func TestCodeInterpreterTimeoutCancels(t *testing.T) {
	gone := make(chan struct{}, 2)
	sbx := fakeInterpreter(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"type": "number_of_executions", "execution_count": 1}`+"\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		gone <- struct{}{}
	})
	start := time.Now()
	_, err := sbx.RunCode(ctxT(t, time.Minute), "while True: pass", &sandbox.RunCodeOptions{Timeout: 300 * time.Millisecond})
	if !errors.Is(err, sandbox.ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("RunCode returned after %v", d)
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("server never saw the request cancelled")
	}

	// The caller's own cancellation is reported as such.
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	_, err = sbx.RunCode(ctx, "x", &sandbox.RunCodeOptions{Timeout: sandbox.NoTimeout})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: err = %v, want context.Canceled", err)
	}
}

// TestCodeInterpreterURL checks the host-routed URL: 49999-{id}.{domain},
// never the shared sandbox host, and the traffic token header.
func TestCodeInterpreterURL(t *testing.T) {
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"templateID":"t","sandboxID":"sbx1","clientID":"c","envdVersion":"0.6.13",`+
			`"envdAccessToken":"tok","trafficAccessToken":"traffic","domain":"e2b.app"}`)
	}))
	defer api.Close()
	var seen *http.Request
	rt := roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if strings.HasPrefix(r.URL.String(), api.URL) {
			return (&http.Transport{}).RoundTrip(r)
		}
		seen = r
		return &http.Response{StatusCode: 200, Body: io.NopCloser(strings.NewReader("[]")), Header: http.Header{}, Request: r}, nil
	})
	sbx, err := sandbox.NewClient(sandbox.WithAPIURL(api.URL), sandbox.WithSandboxURL(""), sandbox.WithAPIKey("e2b_00"),
		sandbox.WithHTTPClient(&http.Client{Transport: rt})).Connect(context.Background(), "sbx1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sbx.ListCodeContexts(context.Background()); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.URL.String() != "https://49999-sbx1.e2b.app/contexts" || seen.Header.Get("E2B-Traffic-Access-Token") != "traffic" {
		t.Fatalf("request = %v %v", seen.URL, seen.Header)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
