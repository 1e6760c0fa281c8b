package bench

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/interpreter"
)

func TestReadExecution(t *testing.T) {
	tests := []struct {
		name     string
		stream   string
		wantText string
		wantErr  error
		errHas   string
	}{
		{
			name: "result",
			stream: `{"type": "number_of_executions", "execution_count": 1}
{"type": "result", "text": "2", "is_main_result": true, "extra": {}}
{"type": "end_of_execution"}
`,
			wantText: "2",
		},
		{
			name: "display data is not the main result; keepalive and unknown types ignored",
			stream: `{"type":"result","text":"<Figure>","is_main_result":false}
{"type":"keepalive"}
{"type":"something_new","x":1}
{"type":"stdout","text":"hi\n","timestamp":"2024-05-01T12:00:00.123456Z"}
{"type":"end_of_execution"}`,
			wantText: "",
		},
		{
			name: "user error is reported after the end",
			stream: `{"type":"error","name":"ZeroDivisionError","value":"division by zero","traceback":"..."}
{"type":"end_of_execution"}
`,
			wantErr: ErrCodeFailed,
			errHas:  "ZeroDivisionError: division by zero",
		},
		{
			name:     "stream cut before the end",
			stream:   `{"type":"result","text":"2","is_main_result":true}` + "\n",
			wantText: "2",
			wantErr:  ErrNoEndOfExecution,
		},
		{
			name:    "empty stream",
			stream:  "",
			wantErr: ErrNoEndOfExecution,
		},
		{
			name:     "lines after the end are not read",
			stream:   "{\"type\":\"result\",\"text\":\"2\",\"is_main_result\":true}\n{\"type\":\"end_of_execution\"}\nnot json\n",
			wantText: "2",
		},
		{
			name:   "malformed line",
			stream: "{\"type\":\"result\"\n{\"type\":\"end_of_execution\"}\n",
			errHas: "bad line",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			text, err := readExecution(strings.NewReader(tc.stream))
			if text != tc.wantText {
				t.Errorf("text = %q, want %q", text, tc.wantText)
			}
			switch {
			case tc.wantErr == nil && tc.errHas == "":
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			case err == nil || !strings.Contains(err.Error(), tc.errHas):
				t.Fatalf("err = %v, want it to contain %q", err, tc.errHas)
			}
		})
	}
}

func TestTemplateState(t *testing.T) {
	tpls := []Template{
		{ID: "b1", Aliases: []string{"base"}, BuildStatus: "ready"},
		{ID: "c1", Aliases: []string{"code-interpreter-v1"}, BuildStatus: "building"},
		{ID: "old", Aliases: []string{"legacy"}},
	}
	tests := []struct {
		name   string
		ok     bool
		reason string
	}{
		{"base", true, ""},
		{"b1", true, ""},
		{"legacy", true, ""}, // no status reported: listed means usable
		{"code-interpreter-v1", false, "template code-interpreter-v1 is building, not ready"},
		{"missing", false, "the server has no template missing"},
	}
	for _, tc := range tests {
		ok, reason := templateState(tpls, tc.name)
		if ok != tc.ok || reason != tc.reason {
			t.Errorf("templateState(%q) = %v, %q; want %v, %q", tc.name, ok, reason, tc.ok, tc.reason)
		}
	}
}

func TestResultCollectorCheck(t *testing.T) {
	tests := []struct {
		name    string
		emit    func(*resultCollector)
		wantErr error
		ok      bool
	}{
		{"main result 2", func(c *resultCollector) { c.Result(interpreter.Result{IsMainResult: true, Text: "2"}) }, nil, true},
		{"only display data", func(c *resultCollector) { c.Result(interpreter.Result{Text: "2"}) }, nil, false},
		{"wrong value", func(c *resultCollector) { c.Result(interpreter.Result{IsMainResult: true, Text: "3"}) }, nil, false},
		{"error", func(c *resultCollector) {
			c.Error(interpreter.ExecError{Name: "NameError", Value: "x"})
		}, ErrCodeFailed, false},
	}
	for _, tc := range tests {
		var c resultCollector
		c.ExecutionCount(1)
		c.Stdout("ignored", time.Now())
		tc.emit(&c)
		err := c.check()
		if tc.ok != (err == nil) {
			t.Errorf("%s: check() = %v, want ok=%v", tc.name, err, tc.ok)
		}
		if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: check() = %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

func TestReportNotes(t *testing.T) {
	rep := &Report{Runtimes: []RuntimeReport{{Runtime: "runc", Notes: []string{"code interpreter scenarios skipped (--no-code)"}}}}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "note: code interpreter scenarios skipped (--no-code)") {
		t.Errorf("table lacks the note:\n%s", b.String())
	}
}

// TestHostKernelBaselines runs the ipykernel baselines for real; the host
// needs python3-ipykernel (scripts/setup.sh installs it).
func TestHostKernelBaselines(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	warm, err := hostKernelRoundTrips(ctx, 1, 3)
	if err != nil {
		t.Fatalf("host ipykernel round-trips (is python3-ipykernel installed?): %v", err)
	}
	cold, err := hostKernelColdStarts(ctx, 0, 1)
	if err != nil {
		t.Fatalf("host ipykernel cold start: %v", err)
	}
	if len(warm) != 3 || len(cold) != 1 {
		t.Fatalf("got %d warm and %d cold samples, want 3 and 1", len(warm), len(cold))
	}
	if Summarize(cold).P50 <= Summarize(warm).P50 {
		t.Errorf("cold start %v not slower than a warm round-trip %v", cold[0], Summarize(warm).P50)
	}
}
