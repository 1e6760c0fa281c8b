package sandbox

import (
	"encoding/json"
	"maps"
	"slices"
	"time"
)

// Execution is the outcome of one RunCode call. An exception raised by the
// user's code is reported in Error, not as a Go error.
type Execution struct {
	// Results are the rich outputs in the order the kernel produced them:
	// displayed values (IsMainResult false) and the value of the last
	// expression (IsMainResult true).
	Results []Result
	Logs    ExecutionLogs
	// Error is the exception the code raised, nil when it ran cleanly.
	Error *ExecutionError
	// ExecutionCount is the kernel's execution counter after this cell.
	ExecutionCount int
}

// ExecutionLogs are the stdout and stderr chunks of an execution, in order.
type ExecutionLogs struct {
	Stdout []string
	Stderr []string
}

// Text returns the text of the main result (the last expression's value),
// or "" when there is none.
func (e *Execution) Text() string {
	for _, r := range e.Results {
		if r.IsMainResult {
			return r.Text
		}
	}
	return ""
}

// ExecutionError is an exception raised by executed code.
type ExecutionError struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	// Traceback is the kernel's traceback, ANSI colour codes included.
	Traceback string `json:"traceback"`
}

// OutputMessage is one chunk of stdout or stderr.
type OutputMessage struct {
	Line string
	// Timestamp is when the kernel produced the output (the local time
	// when the server sent none).
	Timestamp time.Time
	// Error is true for stderr.
	Error bool
}

// Result is one rich output of an execution. Every format the kernel
// offered is set; the others are empty.
type Result struct {
	Text     string `json:"text,omitempty"`
	HTML     string `json:"html,omitempty"`
	Markdown string `json:"markdown,omitempty"`
	SVG      string `json:"svg,omitempty"`
	// PNG, JPEG and PDF are base64 encoded.
	PNG        string         `json:"png,omitempty"`
	JPEG       string         `json:"jpeg,omitempty"`
	PDF        string         `json:"pdf,omitempty"`
	LaTeX      string         `json:"latex,omitempty"`
	JSON       map[string]any `json:"json,omitempty"`
	JavaScript string         `json:"javascript,omitempty"`
	// Data is a pandas DataFrame as column name → values.
	Data map[string]any `json:"data,omitempty"`
	// Chart is the chart extracted from a matplotlib figure.
	Chart *Chart `json:"chart,omitempty"`
	// IsMainResult is true for the value of the cell's last expression.
	IsMainResult bool `json:"is_main_result"`
	// Extra holds formats without a field of their own, keyed by MIME type
	// (or by the server's key for unknown top-level keys).
	Extra map[string]any `json:"extra,omitempty"`
}

// resultWire is Result without its methods, for the default decoding.
type resultWire Result

// knownResultKeys are the result line's keys that Result decodes itself.
var knownResultKeys = map[string]bool{
	"type": true, "text": true, "html": true, "markdown": true, "svg": true,
	"png": true, "jpeg": true, "pdf": true, "latex": true, "json": true,
	"javascript": true, "data": true, "chart": true, "extra": true,
	"is_main_result": true,
}

// UnmarshalJSON decodes a result line. A chart that cannot be decoded is
// dropped (like the official SDKs do) instead of failing the execution;
// unknown keys go into Extra.
func (r *Result) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	chart := raw["chart"]
	delete(raw, "chart")
	rest, err := json.Marshal(raw)
	if err != nil {
		return err
	}
	var w resultWire
	if err := json.Unmarshal(rest, &w); err != nil {
		return err
	}
	*r = Result(w)
	if len(chart) > 0 && string(chart) != "null" {
		var c Chart
		if json.Unmarshal(chart, &c) == nil {
			r.Chart = &c
		}
	}
	for k, v := range raw {
		if knownResultKeys[k] {
			continue
		}
		var val any
		if json.Unmarshal(v, &val) != nil {
			continue
		}
		if r.Extra == nil {
			r.Extra = map[string]any{}
		}
		r.Extra[k] = val
	}
	return nil
}

// Formats lists the formats the result holds, e.g. ["text", "png", "chart"].
func (r *Result) Formats() []string {
	var f []string
	for _, p := range []struct {
		name string
		set  bool
	}{
		{"text", r.Text != ""}, {"html", r.HTML != ""}, {"markdown", r.Markdown != ""},
		{"svg", r.SVG != ""}, {"png", r.PNG != ""}, {"jpeg", r.JPEG != ""},
		{"pdf", r.PDF != ""}, {"latex", r.LaTeX != ""}, {"json", r.JSON != nil},
		{"javascript", r.JavaScript != ""}, {"data", r.Data != nil}, {"chart", r.Chart != nil},
	} {
		if p.set {
			f = append(f, p.name)
		}
	}
	return append(f, slices.Sorted(maps.Keys(r.Extra))...)
}
