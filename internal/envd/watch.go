package envd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/fsnotify/fsnotify"
	"golang.org/x/sys/unix"

	pb "github.com/airlock-sandbox/airlock/proto/filesystem"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

const (
	defaultKeepalive = 90 * time.Second
	// maxPolledEvents bounds a polling watcher's buffer when nobody polls.
	maxPolledEvents = 10000
)

// Filesystem magic numbers (statfs f_type) of network and FUSE mounts, which
// E2B refuses to watch unless the client allows it.
var networkFSMagic = map[int64]string{
	0x6969:     "nfs",
	0x517b:     "smb",
	0xfe534d42: "smb2",
	0xff534d42: "cifs",
	0x65735546: "fuse",
}

// watchOptions are the common fields of WatchDirRequest and CreateWatcherRequest.
type watchOptions struct {
	recursive          bool
	includeEntry       bool
	allowNetworkMounts bool
}

// dirWatcher turns fsnotify events under root into FilesystemEvents.
type dirWatcher struct {
	user *User
	root string
	opts watchOptions
	fsw  *fsnotify.Watcher
	log  *slog.Logger

	events chan *pb.FilesystemEvent
	errc   chan error // at most one fatal watcher error
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// networkFS reports the kind of network filesystem p lives on, if any.
func networkFS(p string) (string, bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(p, &st); err != nil {
		return "", false, &fs.PathError{Op: "statfs", Path: p, Err: err}
	}
	name, ok := networkFSMagic[int64(uint32(st.Type))]
	return name, ok, nil
}

// validateWatchRoot checks, as the user, that root is a watchable directory.
func validateWatchRoot(u *User, root string, opts watchOptions) error {
	return runAs(u, func() error {
		fi, err := os.Stat(root)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return invalidArgument("path %s is not a directory", root)
		}
		if opts.allowNetworkMounts {
			return nil
		}
		kind, ok, err := networkFS(root)
		if err != nil {
			return err
		}
		if ok {
			return invalidArgument("path %s is on a network filesystem (%s); set allow_network_mounts to watch it", root, kind)
		}
		return nil
	})
}

// startWatcher validates root and starts watching it; the watcher is
// registered with f so Close stops it.
func (f *Filesystem) startWatcher(u *User, root string, opts watchOptions) (*dirWatcher, error) {
	if err := validateWatchRoot(u, root, opts); err != nil {
		return nil, fsError(err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, rpcError(fmt.Errorf("create watcher: %w", err))
	}
	w := &dirWatcher{
		user:   u,
		root:   root,
		opts:   opts,
		fsw:    fsw,
		log:    f.log.With("watch", root),
		events: make(chan *pb.FilesystemEvent, 64),
		errc:   make(chan error, 1),
		done:   make(chan struct{}),
	}
	// inotify checks read permission with the caller's fsuid, so watches
	// are added as the user: no events from directories they cannot read.
	err = runAs(u, func() error {
		if err := fsw.Add(root); err != nil {
			return fmt.Errorf("watch %s: %w", root, err)
		}
		if opts.recursive {
			w.addTree(root, false)
		}
		return nil
	})
	if err != nil {
		fsw.Close()
		return nil, fsError(err)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		fsw.Close()
		return nil, rpcError(errdefs.Newf(errdefs.ErrUnavailable, "envd is shutting down"))
	}
	f.watchers[w] = struct{}{}
	f.mu.Unlock()

	w.wg.Add(1)
	go w.run()
	return w, nil
}

// forget unregisters and stops w.
func (f *Filesystem) forget(w *dirWatcher) {
	f.mu.Lock()
	delete(f.watchers, w)
	f.mu.Unlock()
	w.Close()
}

// Close stops the watcher and waits for its goroutine.
func (w *dirWatcher) Close() {
	w.once.Do(func() {
		close(w.done)
		if err := w.fsw.Close(); err != nil {
			w.log.Debug("close watcher", "err", err)
		}
	})
	w.wg.Wait()
}

func (w *dirWatcher) run() {
	defer w.wg.Done()
	for {
		select {
		case <-w.done:
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			if !w.handle(ev) {
				return
			}
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			select {
			case w.errc <- fmt.Errorf("watch %s: %w", w.root, err):
			default:
			}
			return
		}
	}
}

// opOrder is the order in which one OS event's operations are reported.
var opOrder = []struct {
	op fsnotify.Op
	t  pb.EventType
}{
	{fsnotify.Create, pb.EventType_EVENT_TYPE_CREATE},
	{fsnotify.Rename, pb.EventType_EVENT_TYPE_RENAME},
	{fsnotify.Chmod, pb.EventType_EVENT_TYPE_CHMOD},
	{fsnotify.Write, pb.EventType_EVENT_TYPE_WRITE},
	{fsnotify.Remove, pb.EventType_EVENT_TYPE_REMOVE},
}

// handle reports one fsnotify event; false means the watcher was closed.
func (w *dirWatcher) handle(ev fsnotify.Event) bool {
	for _, o := range opOrder {
		if ev.Has(o.op) && !w.emit(ev.Name, o.t) {
			return false
		}
	}
	if !w.opts.recursive || !ev.Has(fsnotify.Create) {
		return true
	}
	alive := true
	err := runAs(w.user, func() error {
		if fi, err := os.Lstat(ev.Name); err == nil && fi.IsDir() {
			alive = w.addTree(ev.Name, true)
		}
		return nil
	})
	if err != nil {
		w.log.Warn("watch new directory", "path", ev.Name, "err", err)
	}
	return alive
}

// addTree watches every directory below dir (dir itself too when it is a
// new one). With report set, entries found inside are reported as created:
// they may have appeared before the watch existed.
func (w *dirWatcher) addTree(dir string, report bool) bool {
	alive := true
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // vanished or unreadable: nothing to watch
		}
		if p != dir && report && !w.emit(p, pb.EventType_EVENT_TYPE_CREATE) {
			alive = false
			return filepath.SkipAll
		}
		if !d.IsDir() || (p == dir && !report) {
			return nil
		}
		if !w.opts.allowNetworkMounts {
			if _, ok, _ := networkFS(p); ok {
				return filepath.SkipDir
			}
		}
		if err := w.fsw.Add(p); err != nil {
			w.log.Debug("add watch", "path", p, "err", err)
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		w.log.Debug("walk for watches", "path", dir, "err", err)
	}
	return alive
}

// emit queues one event; false means the watcher was closed meanwhile.
func (w *dirWatcher) emit(name string, t pb.EventType) bool {
	rel, err := filepath.Rel(w.root, name)
	if err != nil || rel == "." {
		rel = ""
	}
	ev := &pb.FilesystemEvent{Name: rel, Type: t}
	if w.opts.includeEntry && t != pb.EventType_EVENT_TYPE_REMOVE && t != pb.EventType_EVENT_TYPE_RENAME {
		if e, err := newEntryBuilder().build(name, name); err == nil {
			ev.Entry = e
		}
	}
	select {
	case w.events <- ev:
		return true
	case <-w.done:
		return false
	}
}

// keepaliveInterval reads the Keepalive-Ping-Interval header (seconds).
func keepaliveInterval(h http.Header) time.Duration {
	v := h.Get("Keepalive-Ping-Interval")
	if v == "" {
		return defaultKeepalive
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return defaultKeepalive
	}
	return time.Duration(n) * time.Second
}

// WatchDir streams events for a directory until the client goes away or the
// Connect deadline passes.
func (f *Filesystem) WatchDir(ctx context.Context, req *connect.Request[pb.WatchDirRequest], stream *connect.ServerStream[pb.WatchDirResponse]) error {
	u, err := f.rpcUser(req.Header())
	if err != nil {
		return err
	}
	root := f.st.ResolvePath(u, req.Msg.GetPath())
	w, err := f.startWatcher(u, root, watchOptions{
		recursive:          req.Msg.GetRecursive(),
		includeEntry:       req.Msg.GetIncludeEntry(),
		allowNetworkMounts: req.Msg.GetAllowNetworkMounts(),
	})
	if err != nil {
		return err
	}
	defer f.forget(w)

	start := &pb.WatchDirResponse{Event: &pb.WatchDirResponse_Start{Start: &pb.WatchDirResponse_StartEvent{}}}
	if err := stream.Send(start); err != nil {
		return err
	}
	interval := keepaliveInterval(req.Header())
	idle := time.NewTimer(interval)
	defer idle.Stop()
	for {
		var msg *pb.WatchDirResponse
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return rpcError(errdefs.Newf(errdefs.ErrTimeout, "watch timeout reached"))
			}
			return rpcError(ctx.Err())
		case err := <-w.errc:
			return rpcError(err)
		case <-w.done:
			return rpcError(errdefs.Newf(errdefs.ErrUnavailable, "watcher stopped: envd is shutting down"))
		case ev := <-w.events:
			msg = &pb.WatchDirResponse{Event: &pb.WatchDirResponse_Filesystem{Filesystem: ev}}
		case <-idle.C:
			msg = &pb.WatchDirResponse{Event: &pb.WatchDirResponse_Keepalive{Keepalive: &pb.WatchDirResponse_KeepAlive{}}}
		}
		if err := stream.Send(msg); err != nil {
			return err
		}
		idle.Reset(interval)
	}
}

// pollWatcher buffers a watcher's events between GetWatcherEvents calls.
type pollWatcher struct {
	w *dirWatcher

	mu      sync.Mutex
	pending []*pb.FilesystemEvent
	err     error
}

func (p *pollWatcher) collect() {
	for {
		select {
		case <-p.w.done:
			return
		case err := <-p.w.errc:
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		case ev := <-p.w.events:
			p.mu.Lock()
			if len(p.pending) < maxPolledEvents {
				p.pending = append(p.pending, ev)
			} else {
				p.w.log.Warn("polling watcher buffer full, dropping event", "name", ev.GetName())
			}
			p.mu.Unlock()
		}
	}
}

func newWatcherID() (string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("watcher id: %w", err)
	}
	return "w" + hex.EncodeToString(b), nil
}

// CreateWatcher starts a server-side watcher that outlives this request.
func (f *Filesystem) CreateWatcher(_ context.Context, req *connect.Request[pb.CreateWatcherRequest]) (*connect.Response[pb.CreateWatcherResponse], error) {
	u, err := f.rpcUser(req.Header())
	if err != nil {
		return nil, err
	}
	id, err := newWatcherID()
	if err != nil {
		return nil, rpcError(err)
	}
	root := f.st.ResolvePath(u, req.Msg.GetPath())
	w, err := f.startWatcher(u, root, watchOptions{
		recursive:          req.Msg.GetRecursive(),
		includeEntry:       req.Msg.GetIncludeEntry(),
		allowNetworkMounts: req.Msg.GetAllowNetworkMounts(),
	})
	if err != nil {
		return nil, err
	}
	p := &pollWatcher{w: w}
	go p.collect()
	f.mu.Lock()
	f.pollers[id] = p
	f.mu.Unlock()
	return connect.NewResponse(&pb.CreateWatcherResponse{WatcherId: id}), nil
}

func (f *Filesystem) poller(id string) (*pollWatcher, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pollers[id]
	if !ok {
		return nil, rpcError(errdefs.Newf(errdefs.ErrNotFound, "watcher %q not found", id))
	}
	return p, nil
}

// GetWatcherEvents returns and clears the events buffered since the last call.
func (f *Filesystem) GetWatcherEvents(_ context.Context, req *connect.Request[pb.GetWatcherEventsRequest]) (*connect.Response[pb.GetWatcherEventsResponse], error) {
	if _, err := f.rpcUser(req.Header()); err != nil {
		return nil, err
	}
	p, err := f.poller(req.Msg.GetWatcherId())
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return nil, rpcError(p.err)
	}
	events := p.pending
	p.pending = nil
	return connect.NewResponse(&pb.GetWatcherEventsResponse{Events: events}), nil
}

// RemoveWatcher stops a watcher made by CreateWatcher.
func (f *Filesystem) RemoveWatcher(_ context.Context, req *connect.Request[pb.RemoveWatcherRequest]) (*connect.Response[pb.RemoveWatcherResponse], error) {
	if _, err := f.rpcUser(req.Header()); err != nil {
		return nil, err
	}
	id := req.Msg.GetWatcherId()
	f.mu.Lock()
	p, ok := f.pollers[id]
	delete(f.pollers, id)
	f.mu.Unlock()
	if !ok {
		return nil, rpcError(errdefs.Newf(errdefs.ErrNotFound, "watcher %q not found", id))
	}
	f.forget(p.w)
	return connect.NewResponse(&pb.RemoveWatcherResponse{}), nil
}
