package envd

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
	pb "github.com/airlock-sandbox/airlock/proto/filesystem"
	"github.com/airlock-sandbox/airlock/proto/filesystem/filesystemconnect"
)

// Filesystem implements the filesystem.Filesystem Connect service and the
// /files HTTP endpoints. File operations run with the requesting user's
// filesystem credentials (see runAs).
type Filesystem struct {
	st  *State
	log *slog.Logger

	mu       sync.Mutex
	closed   bool
	pollers  map[string]*pollWatcher  // CreateWatcher ids
	watchers map[*dirWatcher]struct{} // every live watcher, streams included
}

// NewFilesystem returns the filesystem service for st.
func NewFilesystem(st *State, log *slog.Logger) *Filesystem {
	if log == nil {
		log = slog.Default()
	}
	return &Filesystem{
		st:       st,
		log:      log,
		pollers:  map[string]*pollWatcher{},
		watchers: map[*dirWatcher]struct{}{},
	}
}

// Close stops every directory watcher; open WatchDir streams end.
func (f *Filesystem) Close() {
	f.mu.Lock()
	f.closed = true
	ws := make([]*dirWatcher, 0, len(f.watchers))
	for w := range f.watchers {
		ws = append(ws, w)
	}
	f.watchers = map[*dirWatcher]struct{}{}
	f.pollers = map[string]*pollWatcher{}
	f.mu.Unlock()
	for _, w := range ws {
		w.Close()
	}
}

// rpcUser resolves the user selected by a request's Basic auth header.
func (f *Filesystem) rpcUser(h http.Header) (*User, error) {
	u, err := f.st.UserFromHeader(h)
	if err != nil {
		if errors.Is(err, ErrUnknownUser) {
			return nil, rpcError(errdefs.Mark(errdefs.ErrUnauthorized, err))
		}
		return nil, rpcError(err)
	}
	return u, nil
}

// fsError converts a filesystem error into a Connect error, its code from
// the OS error's kind.
func fsError(err error) error { return rpcError(classifyOS(err)) }

func invalidArgument(format string, args ...any) error {
	return rpcError(errdefs.Newf(errdefs.ErrInvalid, format, args...))
}

// Stat describes one path without following a final symlink.
func (f *Filesystem) Stat(_ context.Context, req *connect.Request[pb.StatRequest]) (*connect.Response[pb.StatResponse], error) {
	u, err := f.rpcUser(req.Header())
	if err != nil {
		return nil, err
	}
	p := f.st.ResolvePath(u, req.Msg.GetPath())
	var entry *pb.EntryInfo
	err = runAs(u, func() error {
		var err error
		entry, err = newEntryBuilder().build(p, p)
		return err
	})
	if err != nil {
		return nil, fsError(err)
	}
	return connect.NewResponse(&pb.StatResponse{Entry: entry}), nil
}

// MakeDir creates a directory and its missing parents, owned by the user.
func (f *Filesystem) MakeDir(_ context.Context, req *connect.Request[pb.MakeDirRequest]) (*connect.Response[pb.MakeDirResponse], error) {
	u, err := f.rpcUser(req.Header())
	if err != nil {
		return nil, err
	}
	p := f.st.ResolvePath(u, req.Msg.GetPath())
	var entry *pb.EntryInfo
	err = runAs(u, func() error {
		fi, err := os.Stat(p)
		switch {
		case err == nil && fi.IsDir():
			return rpcError(errdefs.Newf(errdefs.ErrAlreadyExists, "directory %s already exists", p))
		case err == nil:
			return invalidArgument("path %s already exists and is not a directory", p)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return err
		}
		entry, err = newEntryBuilder().build(p, p)
		return err
	})
	if err != nil {
		return nil, fsError(err)
	}
	return connect.NewResponse(&pb.MakeDirResponse{Entry: entry}), nil
}

// Move renames source to destination, creating the destination's parents.
func (f *Filesystem) Move(_ context.Context, req *connect.Request[pb.MoveRequest]) (*connect.Response[pb.MoveResponse], error) {
	u, err := f.rpcUser(req.Header())
	if err != nil {
		return nil, err
	}
	src := f.st.ResolvePath(u, req.Msg.GetSource())
	dst := f.st.ResolvePath(u, req.Msg.GetDestination())
	var entry *pb.EntryInfo
	err = runAs(u, func() error {
		if _, err := os.Lstat(src); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(src, dst); err != nil {
			return err
		}
		var err error
		entry, err = newEntryBuilder().build(dst, dst)
		return err
	})
	if err != nil {
		return nil, fsError(err)
	}
	return connect.NewResponse(&pb.MoveResponse{Entry: entry}), nil
}

// ListDir lists a directory (following a symlinked argument) to the given
// depth; entry paths are built from the requested path.
func (f *Filesystem) ListDir(_ context.Context, req *connect.Request[pb.ListDirRequest]) (*connect.Response[pb.ListDirResponse], error) {
	u, err := f.rpcUser(req.Header())
	if err != nil {
		return nil, err
	}
	p := f.st.ResolvePath(u, req.Msg.GetPath())
	depth := int(req.Msg.GetDepth())
	if depth < 1 {
		depth = 1
	}
	var entries []*pb.EntryInfo
	err = runAs(u, func() error {
		var err error
		entries, err = listDir(p, depth)
		return err
	})
	if err != nil {
		return nil, fsError(err)
	}
	return connect.NewResponse(&pb.ListDirResponse{Entries: entries}), nil
}

func listDir(p string, depth int) ([]*pb.EntryInfo, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, invalidArgument("path %s is not a directory", p)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return nil, err
	}
	b := newEntryBuilder()
	entries := []*pb.EntryInfo{}
	err = filepath.WalkDir(real, func(walked string, d fs.DirEntry, err error) error {
		if walked == real {
			return err // only failures on the root itself abort the listing
		}
		if err != nil {
			return nil // vanished or unreadable subdirectory: skip it
		}
		rel, err := filepath.Rel(real, walked)
		if err != nil {
			return nil
		}
		e, err := b.build(walked, filepath.Join(p, rel))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed while we walked
			}
			return err
		}
		entries = append(entries, e)
		if d.IsDir() && strings.Count(rel, string(filepath.Separator))+1 >= depth {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return entries, nil
}

// Remove deletes a path recursively; a missing path is not an error.
func (f *Filesystem) Remove(_ context.Context, req *connect.Request[pb.RemoveRequest]) (*connect.Response[pb.RemoveResponse], error) {
	u, err := f.rpcUser(req.Header())
	if err != nil {
		return nil, err
	}
	p := f.st.ResolvePath(u, req.Msg.GetPath())
	if err := runAs(u, func() error { return os.RemoveAll(p) }); err != nil {
		return nil, fsError(err)
	}
	return connect.NewResponse(&pb.RemoveResponse{}), nil
}

var _ filesystemconnect.FilesystemHandler = (*Filesystem)(nil)
