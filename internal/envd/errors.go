package envd

import (
	"errors"
	"io/fs"
	"syscall"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

// rpcError turns err into a Connect error whose code is its errdefs kind
// (Internal when it has none). Connect errors pass through unchanged.
func rpcError(err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	return connect.NewError(errdefs.ConnectCode(err), err)
}

// classifyOS gives an error from the filesystem its kind, for both the
// Connect services and /files: the one table of what an OS error means.
func classifyOS(err error) error {
	var kind error
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		kind = errdefs.ErrNoSpace
	case errors.Is(err, fs.ErrNotExist):
		kind = errdefs.ErrNotFound
	case errors.Is(err, fs.ErrPermission), errors.Is(err, errCannotSwitchUser):
		kind = errdefs.ErrForbidden
	case errors.Is(err, fs.ErrExist):
		kind = errdefs.ErrAlreadyExists
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR),
		errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.ENAMETOOLONG),
		errors.Is(err, syscall.ELOOP):
		kind = errdefs.ErrInvalid
	default:
		return err
	}
	return errdefs.Mark(kind, err)
}
