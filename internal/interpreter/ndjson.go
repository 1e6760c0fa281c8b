package interpreter

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Wire types of the /execute NDJSON stream.
const (
	lineStdout         = "stdout"
	lineStderr         = "stderr"
	lineResult         = "result"
	lineError          = "error"
	lineExecutionCount = "number_of_executions"
	lineEnd            = "end_of_execution"
	lineKeepalive      = "keepalive"
)

// timestampLayout is ISO-8601 in UTC with microseconds, like Jupyter headers.
const timestampLayout = "2006-01-02T15:04:05.000000Z"

type outputLine struct {
	Type      string `json:"type"`
	Text      string `json:"text"`
	Timestamp string `json:"timestamp"`
}

type errorLine struct {
	Type      string `json:"type"`
	Name      string `json:"name"`
	Value     string `json:"value"`
	Traceback string `json:"traceback"`
}

type countLine struct {
	Type           string `json:"type"`
	ExecutionCount int    `json:"execution_count"`
}

type typeLine struct {
	Type string `json:"type"`
}

// resultLine holds every MIME field; absent formats are omitted, extra is
// always present.
type resultLine struct {
	Type         string         `json:"type"`
	Text         string         `json:"text,omitempty"`
	HTML         string         `json:"html,omitempty"`
	Markdown     string         `json:"markdown,omitempty"`
	SVG          string         `json:"svg,omitempty"`
	PNG          string         `json:"png,omitempty"`
	JPEG         string         `json:"jpeg,omitempty"`
	PDF          string         `json:"pdf,omitempty"`
	LaTeX        string         `json:"latex,omitempty"`
	JSON         map[string]any `json:"json,omitempty"`
	JavaScript   string         `json:"javascript,omitempty"`
	Data         map[string]any `json:"data,omitempty"`
	Chart        map[string]any `json:"chart,omitempty"`
	Extra        map[string]any `json:"extra"`
	IsMainResult bool           `json:"is_main_result"`
}

// encodeLine marshals v as one NDJSON line, newline included. The encoder
// never produces an empty line: every value is a non-empty JSON object.
func encodeLine(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return b.Bytes(), nil
}

func encodeStream(kind, text string, at time.Time) ([]byte, error) {
	return encodeLine(outputLine{Type: kind, Text: text, Timestamp: formatTimestamp(at)})
}

func encodeResult(r Result) ([]byte, error) {
	extra := r.Extra
	if extra == nil {
		extra = map[string]any{}
	}
	return encodeLine(resultLine{
		Type:         lineResult,
		Text:         stripQuotes(r.Text),
		HTML:         r.HTML,
		Markdown:     r.Markdown,
		SVG:          r.SVG,
		PNG:          r.PNG,
		JPEG:         r.JPEG,
		PDF:          r.PDF,
		LaTeX:        r.LaTeX,
		JSON:         r.JSON,
		JavaScript:   r.JavaScript,
		Data:         r.Data,
		Chart:        r.Chart,
		Extra:        extra,
		IsMainResult: r.IsMainResult,
	})
}

func encodeError(e ExecError) ([]byte, error) {
	return encodeLine(errorLine{Type: lineError, Name: e.Name, Value: e.Value, Traceback: e.Traceback})
}

func encodeCount(n int) ([]byte, error) {
	return encodeLine(countLine{Type: lineExecutionCount, ExecutionCount: n})
}

func encodeType(kind string) ([]byte, error) {
	return encodeLine(typeLine{Type: kind})
}

func formatTimestamp(t time.Time) string {
	if t.IsZero() {
		t = time.Now()
	}
	return t.UTC().Format(timestampLayout)
}

// stripQuotes removes the matching quotes around a str repr ('abc' → abc),
// as the SDKs expect execution.text to be the plain string.
func stripQuotes(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}

// mimeResult fills a Result from a Jupyter MIME bundle. Unknown MIME types
// go to Extra; binary formats are already base64 strings in the bundle.
func mimeResult(bundle map[string]any, main bool) Result {
	r := Result{IsMainResult: main, Extra: map[string]any{}}
	for mime, v := range bundle {
		s, isString := v.(string)
		m, isMap := v.(map[string]any)
		switch {
		case mime == "text/plain" && isString:
			r.Text = s
		case mime == "text/html" && isString:
			r.HTML = s
		case mime == "text/markdown" && isString:
			r.Markdown = s
		case mime == "image/svg+xml" && isString:
			r.SVG = s
		case mime == "image/png" && isString:
			r.PNG = s
		case mime == "image/jpeg" && isString:
			r.JPEG = s
		case mime == "application/pdf" && isString:
			r.PDF = s
		case mime == "text/latex" && isString:
			r.LaTeX = s
		case mime == "application/json" && isMap:
			r.JSON = m
		case mime == "application/javascript" && isString:
			r.JavaScript = s
		case mime == "e2b/data" && isMap:
			r.Data = m
		case mime == "e2b/chart" && isMap:
			r.Chart = m
		default:
			r.Extra[mime] = v
		}
	}
	return r
}
