package sandbox

import (
	"context"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/filesystem"
)

// EventType is the kind of a filesystem event.
type EventType string

// Filesystem event types.
const (
	EventCreate EventType = "create"
	EventWrite  EventType = "write"
	EventRemove EventType = "remove"
	EventRename EventType = "rename"
	EventChmod  EventType = "chmod"
)

// FilesystemEvent is one change in a watched directory.
type FilesystemEvent struct {
	// Name is relative to the watched directory.
	Name  string
	Type  EventType
	Entry *EntryInfo // set with WatchOptions.IncludeEntry
}

// WatchOptions configures WatchDir.
type WatchOptions struct {
	User               string
	Recursive          bool
	IncludeEntry       bool
	AllowNetworkMounts bool
	// Timeout ends the watch; 0 means 60 s, NoTimeout unlimited.
	Timeout time.Duration
	// OnExit is called once when the watch ends: nil after Stop,
	// otherwise the reason (a timeout is ErrTimeout).
	OnExit func(error)
}

// WatchHandle is a running directory watch.
type WatchHandle struct {
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	stopped bool
	err     error
}

var eventTypes = map[filesystem.EventType]EventType{
	filesystem.EventType_EVENT_TYPE_CREATE: EventCreate,
	filesystem.EventType_EVENT_TYPE_WRITE:  EventWrite,
	filesystem.EventType_EVENT_TYPE_REMOVE: EventRemove,
	filesystem.EventType_EVENT_TYPE_RENAME: EventRename,
	filesystem.EventType_EVENT_TYPE_CHMOD:  EventChmod,
}

// WatchDir watches a directory and calls onEvent for each change, from a
// single goroutine. It returns once the watch is active; ctx only bounds
// that start.
func (f *Files) WatchDir(ctx context.Context, path string, onEvent func(FilesystemEvent), opts *WatchOptions) (*WatchHandle, error) {
	if opts == nil {
		opts = &WatchOptions{}
	}
	if opts.Recursive && versionLess(f.s.EnvdVersion, "0.1.4") {
		return nil, newError(ErrTemplate, 0, "", "recursive watch needs a newer template (envd >= 0.1.4)", nil)
	}
	sctx, cancel := f.s.streamCtx(ctx, opts.Timeout, true)
	req := connect.NewRequest(&filesystem.WatchDirRequest{
		Path: path, Recursive: opts.Recursive, IncludeEntry: opts.IncludeEntry,
		AllowNetworkMounts: opts.AllowNetworkMounts,
	})
	f.s.rpcHeaders(req.Header(), opts.User, true)
	stop := f.s.handshakeGuard(ctx, cancel)
	defer stop()
	stream, err := f.s.fs.WatchDir(sctx, req)
	if err != nil {
		cancel()
		return nil, rpcError(err)
	}
	if !stream.Receive() {
		err := stream.Err()
		_ = stream.Close()
		cancel()
		if err == nil {
			return nil, newError(ErrSandbox, 0, "", "watch ended before the start event", nil)
		}
		return nil, rpcError(err)
	}
	if stream.Msg().GetStart() == nil {
		_ = stream.Close()
		cancel()
		return nil, newError(ErrSandbox, 0, "", "expected start event", nil)
	}
	h := &WatchHandle{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(h.done)
		defer cancel()
		defer stream.Close()
		for stream.Receive() {
			ev := stream.Msg().GetFilesystem()
			if ev == nil {
				continue // start/keepalive
			}
			t, ok := eventTypes[ev.GetType()]
			if !ok {
				continue
			}
			fe := FilesystemEvent{Name: ev.GetName(), Type: t}
			if ev.Entry != nil {
				e := entryFromProto(ev.GetEntry())
				fe.Entry = &e
			}
			if onEvent != nil {
				onEvent(fe)
			}
		}
		h.mu.Lock()
		if err := stream.Err(); err != nil && !h.stopped {
			h.err = rpcError(err)
		}
		err := h.err
		h.mu.Unlock()
		if opts.OnExit != nil {
			opts.OnExit(err)
		}
	}()
	return h, nil
}

// Stop ends the watch and waits until no more events are delivered.
func (h *WatchHandle) Stop() {
	h.mu.Lock()
	h.stopped = true
	h.mu.Unlock()
	h.cancel()
	<-h.done
}

// Done is closed when the watch has ended.
func (h *WatchHandle) Done() <-chan struct{} { return h.done }

// Err is why the watch ended (nil while running or after Stop).
func (h *WatchHandle) Err() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}
