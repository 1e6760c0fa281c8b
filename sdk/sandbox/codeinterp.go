package sandbox

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/wire"
)

const (
	// CodeInterpreterTemplate is the template whose sandboxes run the code
	// interpreter server.
	CodeInterpreterTemplate = "code-interpreter-v1"
	// CodeInterpreterPort is the code interpreter server's port.
	CodeInterpreterPort = wire.InterpreterPort
	// DefaultCodeTimeout bounds a RunCode call when no Timeout is given.
	DefaultCodeTimeout = 60 * time.Second

	debugInterpreterURL = "http://localhost:49999"
)

// Languages RunCode and CreateCodeContext accept. The server also takes
// the aliases "js" and "ts" and normalises case.
const (
	LanguagePython     = "python"
	LanguageJavaScript = "javascript"
	LanguageTypeScript = "typescript"
	LanguageR          = "r"
	LanguageJava       = "java"
	LanguageBash       = "bash"
)

// RunCodeOptions configures RunCode. The zero value runs Python in the
// sandbox's default Python context with a 60 s timeout.
type RunCodeOptions struct {
	// Language selects the language's default context (created on
	// demand); "" means Python. Mutually exclusive with Context.
	Language string
	// Context runs the code in this context instead.
	Context *CodeContext
	// Envs are environment variables for this execution only.
	Envs map[string]string
	// Timeout bounds the whole call, output included; 0 means 60 s and
	// NoTimeout means none. When it fires the request is cancelled and
	// the server interrupts the kernel.
	Timeout time.Duration

	// Callbacks run on the caller's goroutine as output arrives, before
	// RunCode returns.
	OnStdout func(OutputMessage)
	OnStderr func(OutputMessage)
	OnResult func(Result)
	OnError  func(ExecutionError)
}

// executeRequest is the /execute body; absent fields are omitted like the
// JS SDK does.
type executeRequest struct {
	Code      string            `json:"code"`
	ContextID string            `json:"context_id,omitempty"`
	Language  string            `json:"language,omitempty"`
	EnvVars   map[string]string `json:"env_vars,omitempty"`
}

// streamLine holds the fields of every NDJSON line type but result.
type streamLine struct {
	Type           string `json:"type"`
	Text           string `json:"text"`
	Timestamp      string `json:"timestamp"`
	Name           string `json:"name"`
	Value          string `json:"value"`
	Traceback      string `json:"traceback"`
	ExecutionCount int    `json:"execution_count"`
}

// Causes of a RunCode cancellation that RunCode itself triggered.
var (
	errCodeTimeout    = errors.New("execution timeout")
	errRequestTimeout = errors.New("request timeout")
)

// RunCode runs code in the sandbox's code interpreter (template
// code-interpreter-v1) and waits for it to finish. An exception raised by
// the code is returned in Execution.Error with a nil error; the error is
// for failures to run it at all (ErrNotFound for an unknown context,
// ErrTimeout when Timeout or ctx expires, the sandbox is gone, ...).
func (s *Sandbox) RunCode(ctx context.Context, code string, opts *RunCodeOptions) (*Execution, error) {
	if opts == nil {
		opts = &RunCodeOptions{}
	}
	if opts.Context != nil && opts.Language != "" {
		return nil, newError(ErrInvalidArgument, 0, "", "provide only one of Language or Context", nil)
	}
	body := executeRequest{Code: code, Language: opts.Language, EnvVars: opts.Envs}
	if opts.Context != nil {
		body.ContextID = opts.Context.ID
	}
	timeout := opts.Timeout
	switch {
	case timeout < 0:
		timeout = 0
	case timeout == 0:
		timeout = DefaultCodeTimeout
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if timeout > 0 {
		t := time.AfterFunc(timeout, func() { cancel(errCodeTimeout) })
		defer t.Stop()
	}
	// Like the JS SDK, the request timeout bounds waiting for the
	// response headers only.
	var headers *time.Timer
	if rt := s.client.cfg.requestTimeout(); rt > 0 {
		headers = time.AfterFunc(rt, func() { cancel(errRequestTimeout) })
	}

	req, err := s.interpreterRequest(ctx, http.MethodPost, "/execute", body, true)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.cfg.httpClient().Do(req)
	if headers != nil {
		headers.Stop()
	}
	if err != nil {
		return nil, s.codeFailure(ctx, err, timeout)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, interpreterHTTPError(resp)
	}
	exec := &Execution{}
	if err := readExecution(resp.Body, exec, opts); err != nil {
		var e *Error
		if errors.As(err, &e) {
			return nil, err // a malformed line
		}
		return nil, s.codeFailure(ctx, err, timeout)
	}
	return exec, nil
}

// readExecution applies the NDJSON lines of an /execute response to exec
// until the stream ends.
func readExecution(r io.Reader, exec *Execution, opts *RunCodeOptions) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if perr := applyLine(line, exec, opts); perr != nil {
				return perr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func applyLine(line []byte, exec *Execution, opts *RunCodeOptions) error {
	var l streamLine
	if err := json.Unmarshal(line, &l); err != nil {
		return newError(ErrSandbox, 0, "", "malformed code interpreter output: "+err.Error(), err)
	}
	switch l.Type {
	case "stdout", "stderr":
		msg := OutputMessage{Line: l.Text, Timestamp: parseTimestamp(l.Timestamp), Error: l.Type == "stderr"}
		if msg.Error {
			exec.Logs.Stderr = append(exec.Logs.Stderr, l.Text)
			if opts.OnStderr != nil {
				opts.OnStderr(msg)
			}
		} else {
			exec.Logs.Stdout = append(exec.Logs.Stdout, l.Text)
			if opts.OnStdout != nil {
				opts.OnStdout(msg)
			}
		}
	case "result":
		var res Result
		if err := json.Unmarshal(line, &res); err != nil {
			return newError(ErrSandbox, 0, "", "malformed code interpreter result: "+err.Error(), err)
		}
		exec.Results = append(exec.Results, res)
		if opts.OnResult != nil {
			opts.OnResult(res)
		}
	case "error":
		e := ExecutionError{Name: l.Name, Value: l.Value, Traceback: l.Traceback}
		exec.Error = &e
		if opts.OnError != nil {
			opts.OnError(e)
		}
	case "number_of_executions":
		exec.ExecutionCount = l.ExecutionCount
	}
	// end_of_execution, keepalive and unknown types carry nothing.
	return nil
}

func parseTimestamp(s string) time.Time {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t
	}
	return time.Now()
}

// codeFailure maps a failed /execute request or body read: our own
// timeouts, the caller's context, a killed sandbox, or a network error.
func (s *Sandbox) codeFailure(ctx context.Context, err error, timeout time.Duration) error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCodeTimeout):
		return newError(ErrTimeout, 0, "", fmt.Sprintf("execution timed out after %v; the kernel was interrupted", timeout), err)
	case errors.Is(cause, errRequestTimeout):
		return newError(ErrTimeout, 0, "", "request timed out waiting for the code interpreter to respond", err)
	case cause != nil:
		return transportError(cause)
	}
	// The connection broke: tell a killed sandbox from a network error.
	hctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if running, herr := s.IsRunning(hctx); herr == nil && !running {
		return newError(ErrTimeout, 0, "", "the sandbox was killed while the request was in progress", err)
	}
	return transportError(err)
}

// interpreterURL resolves the code interpreter's base URL like the
// official SDKs: explicit sandbox URL, debug localhost, then
// https://49999-{id}.{domain} (never the shared sandbox host).
func (c *Config) interpreterURL(id, domain string) string {
	switch {
	case c.SandboxURL != "":
		return strings.TrimRight(c.SandboxURL, "/")
	case c.Debug:
		return debugInterpreterURL
	default:
		return fmt.Sprintf("https://%d-%s.%s", CodeInterpreterPort, id, c.sandboxDomain(domain))
	}
}

// interpreterRequest builds a request to the code interpreter with the
// routing headers; only /execute carries the envd token.
func (s *Sandbox) interpreterRequest(ctx context.Context, method, path string, in any, withToken bool) (*http.Request, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, newError(ErrInvalidArgument, 0, "", err.Error(), err)
		}
		body = bytes.NewReader(b)
	}
	u := s.client.cfg.interpreterURL(s.ID, s.Domain) + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, newError(ErrInvalidArgument, 0, "", err.Error(), err)
	}
	h := req.Header
	h.Set("E2b-Sandbox-Id", s.ID)
	h.Set("E2b-Sandbox-Port", strconv.Itoa(CodeInterpreterPort))
	h.Set("User-Agent", userAgent())
	h.Set("Content-Type", "application/json")
	if s.trafficToken != "" {
		h.Set("E2B-Traffic-Access-Token", s.trafficToken)
	}
	if withToken && s.accessToken != "" {
		h.Set("X-Access-Token", s.accessToken)
	}
	return req, nil
}

// interpreterHTTPError maps a non-2xx code interpreter response: 404 is
// an unknown context, 502 a sandbox that is gone.
func interpreterHTTPError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	msg := strings.TrimSpace(string(raw))
	switch resp.StatusCode {
	case http.StatusNotFound:
		return newError(ErrNotFound, resp.StatusCode, "", msg, nil)
	case http.StatusBadGateway:
		return newError(ErrTimeout, resp.StatusCode, "", sandboxGoneMsg(msg), nil)
	default:
		if msg == "" {
			msg = http.StatusText(resp.StatusCode)
		}
		return newError(ErrSandbox, resp.StatusCode, "", msg, nil)
	}
}
