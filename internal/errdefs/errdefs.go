// Package errdefs is Airlock's one error vocabulary: every layer wraps one of
// these kinds with %w, and the edges turn the kind into a wire code here and
// nowhere else.
package errdefs

import (
	"context"
	"errors"
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
}

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
