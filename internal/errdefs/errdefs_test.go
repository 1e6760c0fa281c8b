package errdefs

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"connectrpc.com/connect"
)

func TestMapping(t *testing.T) {
	layer := fmt.Errorf("sandbox %w", ErrNotFound)
	cases := []struct {
		err    error
		status int
		code   connect.Code
	}{
		{fmt.Errorf("kill: %w", layer), http.StatusNotFound, connect.CodeNotFound},
		{fmt.Errorf("%w: bad timeout", ErrInvalid), http.StatusBadRequest, connect.CodeInvalidArgument},
		{fmt.Errorf("x: %w", ErrLimitExceeded), http.StatusTooManyRequests, connect.CodeResourceExhausted},
		{fmt.Errorf("pause: %w", ErrNotSupported), http.StatusNotImplemented, connect.CodeUnimplemented},
		{fmt.Errorf("create: %w", context.DeadlineExceeded), http.StatusServiceUnavailable, connect.CodeDeadlineExceeded},
		{errors.New("disk on fire"), http.StatusInternalServerError, connect.CodeInternal},
		{errors.Join(errors.New("a"), ErrConflict), http.StatusConflict, connect.CodeFailedPrecondition},
		{Newf(ErrAlreadyExists, "directory %s already exists", "/x"), http.StatusConflict, connect.CodeAlreadyExists},
		{Mark(ErrNoSpace, fmt.Errorf("write: %w", context.Canceled)), http.StatusInsufficientStorage, connect.CodeResourceExhausted},
	}
	for _, c := range cases {
		if got := HTTPStatus(c.err); got != c.status {
			t.Errorf("HTTPStatus(%v) = %d, want %d", c.err, got, c.status)
		}
		if got := ConnectCode(c.err); got != c.code {
			t.Errorf("ConnectCode(%v) = %v, want %v", c.err, got, c.code)
		}
	}
}

func TestMarkKeepsMessageAndChain(t *testing.T) {
	inner := fmt.Errorf("open /x: %w", context.Canceled)
	err := Mark(ErrNotFound, inner)
	if err.Error() != "open /x: context canceled" {
		t.Errorf("message = %q", err.Error())
	}
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, context.Canceled) || !errors.Is(err, inner) {
		t.Errorf("chain lost: %v", err)
	}
	if Mark(ErrNotFound, nil) != nil {
		t.Error("Mark of nil is not nil")
	}
	if got := Newf(ErrInvalid, "cwd '%s' does not exist", "/a").Error(); got != "cwd '/a' does not exist" {
		t.Errorf("Newf message = %q", got)
	}
}
