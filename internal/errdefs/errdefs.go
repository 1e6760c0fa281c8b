// Package errdefs is Airlock's one error vocabulary: every layer wraps one of
// these kinds with %w, and the edges turn the kind into a wire code here and
// nowhere else.
package errdefs

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
)

// The kinds. Layers define their own sentinels on top of them, e.g.
// orchestrator.ErrNotFound = fmt.Errorf("sandbox %w", ErrNotFound).
var (
	ErrNotFound      = errors.New("not found")
	ErrInvalid       = errors.New("invalid request")
	ErrConflict      = errors.New("conflicting state")
	ErrUnavailable   = errors.New("unavailable")
	ErrNotSupported  = errors.New("not supported")
	ErrUnauthorized  = errors.New("unauthorized")
	ErrForbidden     = errors.New("forbidden")
	ErrLimitExceeded = errors.New("limit exceeded")
	ErrTooLarge      = errors.New("too large")
	ErrTimeout       = errors.New("timed out")
	ErrAlreadyExists = errors.New("already exists")
	ErrNoSpace       = errors.New("no space left")
)

var kinds = []struct {
	err     error
	status  int
	connect connect.Code
}{
	{ErrNotFound, http.StatusNotFound, connect.CodeNotFound},
	{ErrInvalid, http.StatusBadRequest, connect.CodeInvalidArgument},
	{ErrConflict, http.StatusConflict, connect.CodeFailedPrecondition},
	{ErrUnavailable, http.StatusServiceUnavailable, connect.CodeUnavailable},
	{ErrNotSupported, http.StatusNotImplemented, connect.CodeUnimplemented},
	{ErrUnauthorized, http.StatusUnauthorized, connect.CodeUnauthenticated},
	{ErrForbidden, http.StatusForbidden, connect.CodePermissionDenied},
	{ErrLimitExceeded, http.StatusTooManyRequests, connect.CodeResourceExhausted},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, connect.CodeResourceExhausted},
	{ErrTimeout, http.StatusRequestTimeout, connect.CodeDeadlineExceeded},
	{ErrAlreadyExists, http.StatusConflict, connect.CodeAlreadyExists},
	{ErrNoSpace, http.StatusInsufficientStorage, connect.CodeResourceExhausted},
}

// Newf is an error of kind whose message is only the formatted text, for
// messages clients show verbatim (E2B's wording, no "not found: " prefix).
func Newf(kind error, format string, args ...any) error {
	return Mark(kind, fmt.Errorf(format, args...))
}

// Mark gives err the kind while keeping its message and its own chain.
func Mark(kind, err error) error {
	if err == nil {
		return nil
	}
	return &marked{kind: kind, err: err}
}

type marked struct{ kind, err error }

func (m *marked) Error() string   { return m.err.Error() }
func (m *marked) Unwrap() []error { return []error{m.err, m.kind} }

// HTTPStatus is the status for err: its kind's, 503 for a cancelled or
// timed-out context, 500 for anything else.
func HTTPStatus(err error) int {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.status
		}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// ConnectCode is the Connect code for err, on the same rules.
func ConnectCode(err error) connect.Code {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.connect
		}
	}
	if errors.Is(err, context.Canceled) {
		return connect.CodeCanceled
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return connect.CodeDeadlineExceeded
	}
	return connect.CodeInternal
}
