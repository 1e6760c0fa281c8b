package interpreter

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestEncodeLines(t *testing.T) {
	at := time.Date(2024, 5, 1, 12, 0, 0, 123456000, time.FixedZone("X", 3600))
	tests := []struct {
		name string
		line func() ([]byte, error)
		want map[string]any
	}{
		{"stdout", func() ([]byte, error) { return encodeStream(lineStdout, "1\n", at) },
			map[string]any{"type": "stdout", "text": "1\n", "timestamp": "2024-05-01T11:00:00.123456Z"}},
		{"stderr", func() ([]byte, error) { return encodeStream(lineStderr, "", at) },
			map[string]any{"type": "stderr", "text": "", "timestamp": "2024-05-01T11:00:00.123456Z"}},
		{"count", func() ([]byte, error) { return encodeCount(3) },
			map[string]any{"type": "number_of_executions", "execution_count": 3.0}},
		{"error", func() ([]byte, error) {
			return encodeError(ExecError{Name: "ZeroDivisionError", Value: "division by zero", Traceback: "\x1b[0;31m--"})
		}, map[string]any{"type": "error", "name": "ZeroDivisionError", "value": "division by zero", "traceback": "\x1b[0;31m--"}},
		{"end", func() ([]byte, error) { return encodeType(lineEnd) }, map[string]any{"type": "end_of_execution"}},
		{"keepalive", func() ([]byte, error) { return encodeType(lineKeepalive) }, map[string]any{"type": "keepalive"}},
		{"main result", func() ([]byte, error) { return encodeResult(Result{IsMainResult: true, Text: "2"}) },
			map[string]any{"type": "result", "text": "2", "is_main_result": true, "extra": map[string]any{}}},
		{"every format", func() ([]byte, error) {
			return encodeResult(Result{
				Text: "t", HTML: "<b>", Markdown: "# m", SVG: "<svg/>", PNG: "iVBOR", JPEG: "/9j/", PDF: "JVBER",
				LaTeX: "$x$", JSON: map[string]any{"a": 1.0}, JavaScript: "alert(1)",
				Data: map[string]any{"c": []any{1.0}}, Chart: map[string]any{"type": "line"},
				Extra: map[string]any{"application/vnd.custom": "v"},
			})
		}, map[string]any{
			"type": "result", "text": "t", "html": "<b>", "markdown": "# m", "svg": "<svg/>", "png": "iVBOR",
			"jpeg": "/9j/", "pdf": "JVBER", "latex": "$x$", "json": map[string]any{"a": 1.0}, "javascript": "alert(1)",
			"data": map[string]any{"c": []any{1.0}}, "chart": map[string]any{"type": "line"},
			"extra": map[string]any{"application/vnd.custom": "v"}, "is_main_result": false,
		}},
		{"str repr single quotes", func() ([]byte, error) { return encodeResult(Result{Text: "'abc'"}) },
			map[string]any{"type": "result", "text": "abc", "is_main_result": false, "extra": map[string]any{}}},
		{"str repr double quotes", func() ([]byte, error) { return encodeResult(Result{Text: `"it's"`}) },
			map[string]any{"type": "result", "text": "it's", "is_main_result": false, "extra": map[string]any{}}},
		{"mismatched quotes kept", func() ([]byte, error) { return encodeResult(Result{Text: `'a"`}) },
			map[string]any{"type": "result", "text": `'a"`, "is_main_result": false, "extra": map[string]any{}}},
		{"lone quote kept", func() ([]byte, error) { return encodeResult(Result{Text: `'`}) },
			map[string]any{"type": "result", "text": `'`, "is_main_result": false, "extra": map[string]any{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, err := tt.line()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
				t.Fatalf("line %q is not exactly one newline-terminated line", line)
			}
			if len(bytes.TrimSpace(line)) == 0 {
				t.Fatal("empty line")
			}
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatalf("invalid JSON %q: %v", line, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %v\nwant %v", got, tt.want)
			}
		})
	}
}

func TestMimeResult(t *testing.T) {
	bundle := map[string]any{
		"text/plain": "'x'", "text/html": "<i>", "text/markdown": "md", "image/svg+xml": "<svg>",
		"image/png": "P", "image/jpeg": "J", "application/pdf": "D", "text/latex": "L",
		"application/json": map[string]any{"k": "v"}, "application/javascript": "js",
		"e2b/data": map[string]any{"a": []any{}}, "e2b/chart": map[string]any{"type": "bar"},
		"application/vnd.custom+json": map[string]any{"z": 1.0},
	}
	got := mimeResult(bundle, true)
	want := Result{
		IsMainResult: true, Text: "'x'", HTML: "<i>", Markdown: "md", SVG: "<svg>", PNG: "P", JPEG: "J", PDF: "D",
		LaTeX: "L", JSON: map[string]any{"k": "v"}, JavaScript: "js", Data: map[string]any{"a": []any{}},
		Chart: map[string]any{"type": "bar"}, Extra: map[string]any{"application/vnd.custom+json": map[string]any{"z": 1.0}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestNormalizeLanguage(t *testing.T) {
	for in, want := range map[string]string{
		"": "python", "  Python ": "python", "JS": "javascript", "ts": "typescript",
		"TypeScript": "typescript", "R": "r", "bash": "bash", "java": "java",
	} {
		if got := normalizeLanguage(in); got != want {
			t.Errorf("normalizeLanguage(%q) = %q, want %q", in, got, want)
		}
	}
}
