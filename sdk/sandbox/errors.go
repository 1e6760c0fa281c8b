package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Sentinel errors, matching E2B's error classes. Every error returned by
// this package for a failed call is an *Error that matches ErrSandbox and
// at most one more specific sentinel below.
var (
	ErrSandbox         = errors.New("sandbox error")
	ErrNotFound        = errors.New("not found")
	ErrTimeout         = errors.New("timeout")
	ErrAuthentication  = errors.New("authentication failed")
	ErrRateLimit       = errors.New("rate limit exceeded")
	ErrInvalidArgument = errors.New("invalid argument")
	ErrNotEnoughSpace  = errors.New("not enough space")
	ErrTemplate        = errors.New("template error")
)

// Error is a failed call. Kind is one of the sentinel errors (ErrSandbox
// when nothing more specific applies); Status is the HTTP status and Code
// the Connect code when the server sent one.
type Error struct {
	Kind    error
	Status  int
	Code    string
	Message string
	Err     error // underlying cause, if any
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	switch {
	case e.Code != "":
		fmt.Fprintf(&b, " (%s)", e.Code)
	case e.Status != 0:
		fmt.Fprintf(&b, " (%d)", e.Status)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	return b.String()
}

// Is makes every *Error match ErrSandbox, the base class.
func (e *Error) Is(target error) bool { return target == ErrSandbox }

// Unwrap exposes the kind and the cause to errors.Is/As.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

func newError(kind error, status int, code, msg string, cause error) *Error {
	return &Error{Kind: kind, Status: status, Code: code, Message: msg, Err: cause}
}

// CommandExitError is returned when a command exits with a non-zero code.
type CommandExitError struct {
	ExitCode int
	Stdout   string
	Stderr   string
	// ErrorMessage is envd's error text, e.g. "exit status 1".
	ErrorMessage string
}

func (e *CommandExitError) Error() string {
	return fmt.Sprintf("command exited with code %d and error:\n%s", e.ExitCode, e.Stderr)
}

// Is lets errors.Is(err, ErrSandbox) hold for command failures too.
func (e *CommandExitError) Is(target error) bool { return target == ErrSandbox }

// apiErrorBody is the control API and envd HTTP error shape.
type apiErrorBody struct {
	Code    json.RawMessage `json:"code"`
	Message string          `json:"message"`
}

// readErrorBody extracts the message (falling back to the raw text).
func readErrorBody(resp *http.Response) string {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var body apiErrorBody
	if json.Unmarshal(raw, &body) == nil && body.Message != "" {
		return body.Message
	}
	return strings.TrimSpace(string(raw))
}

// apiError maps a control API error response.
func apiError(resp *http.Response, notFoundMsg string) error {
	msg := readErrorBody(resp)
	var kind error
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		kind = ErrAuthentication
	case http.StatusTooManyRequests:
		kind = ErrRateLimit
	case http.StatusNotFound:
		kind = ErrNotFound
		if notFoundMsg != "" {
			msg = notFoundMsg
		}
	case http.StatusBadRequest:
		kind = ErrInvalidArgument
	default:
		kind = ErrSandbox
	}
	return newError(kind, resp.StatusCode, "", msg, nil)
}

// envdHTTPError maps an envd plain-HTTP (/files, /health) error response.
func envdHTTPError(resp *http.Response) error {
	msg := readErrorBody(resp)
	var kind error
	switch resp.StatusCode {
	case http.StatusBadRequest:
		kind = ErrInvalidArgument
	case http.StatusUnauthorized:
		kind = ErrAuthentication
	case http.StatusNotFound:
		kind = ErrNotFound
	case http.StatusTooManyRequests:
		kind = ErrRateLimit
	case http.StatusBadGateway:
		kind = ErrTimeout
		msg = sandboxGoneMsg(msg)
	case http.StatusInsufficientStorage:
		kind = ErrNotEnoughSpace
	default:
		kind = ErrSandbox
	}
	return newError(kind, resp.StatusCode, "", msg, nil)
}

func sandboxGoneMsg(msg string) string {
	return msg + ": this error is likely due to sandbox timeout; the sandbox was killed or reached its end of life"
}

// rpcError maps a Connect error from envd. A proxy's 502 arrives as
// unavailable and means the sandbox is gone.
func rpcError(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if !errors.As(err, &ce) {
		return newError(ErrSandbox, 0, "", err.Error(), err)
	}
	code := ce.Code()
	msg := ce.Message()
	var kind error
	switch code {
	case connect.CodeInvalidArgument:
		kind = ErrInvalidArgument
	case connect.CodeUnauthenticated:
		kind = ErrAuthentication
	case connect.CodeNotFound:
		kind = ErrNotFound
	case connect.CodeResourceExhausted:
		kind = ErrRateLimit
	case connect.CodeUnavailable:
		kind = ErrTimeout
		msg = sandboxGoneMsg(msg)
	case connect.CodeCanceled:
		kind = ErrTimeout
		msg = "request canceled: " + msg
	case connect.CodeDeadlineExceeded:
		kind = ErrTimeout
		msg = "operation exceeded its timeout: " + msg
	default:
		kind = ErrSandbox
	}
	return newError(kind, 0, code.String(), msg, err)
}

// isCode reports whether err is a Connect error with the given code.
func isCode(err error, code connect.Code) bool {
	var ce *connect.Error
	return errors.As(err, &ce) && ce.Code() == code
}

// transportError wraps a failure to reach a server at all.
func transportError(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return newError(ErrTimeout, 0, "", "request timed out", err)
	}
	return newError(ErrSandbox, 0, "", err.Error(), err)
}
