package envd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/fsnotify/fsnotify"

	pb "github.com/airlock-sandbox/airlock/proto/filesystem"
)

// watchStream collects a WatchDir stream's messages on a channel.
type watchStream struct {
	msgs chan *pb.WatchDirResponse
	err  chan error
}

func openWatch(t *testing.T, e *fsEnv, req *connect.Request[pb.WatchDirRequest]) *watchStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := e.client.WatchDir(ctx, req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ws := &watchStream{msgs: make(chan *pb.WatchDirResponse, 256), err: make(chan error, 1)}
	go func() {
		for stream.Receive() {
			ws.msgs <- stream.Msg()
		}
		ws.err <- stream.Err()
		close(ws.msgs)
	}()
	t.Cleanup(func() {
		cancel()
		stream.Close()
	})
	return ws
}

// next returns the next message, failing after timeout.
func (ws *watchStream) next(t *testing.T, timeout time.Duration) *pb.WatchDirResponse {
	t.Helper()
	select {
	case m, ok := <-ws.msgs:
		if !ok {
			t.Fatalf("stream ended: %v", <-ws.err)
		}
		return m
	case <-time.After(timeout):
		t.Fatalf("no stream message within %v", timeout)
		return nil
	}
}

func (ws *watchStream) expectStart(t *testing.T) {
	t.Helper()
	if m := ws.next(t, 5*time.Second); m.GetStart() == nil {
		t.Fatalf("first message is %v, want start", m)
	}
}

// waitEvent reads until an event with name and type arrives and returns it.
func (ws *watchStream) waitEvent(t *testing.T, name string, typ pb.EventType) *pb.FilesystemEvent {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var seen []string
	for time.Now().Before(deadline) {
		m := ws.next(t, time.Until(deadline))
		ev := m.GetFilesystem()
		if ev == nil {
			continue
		}
		if ev.GetName() == name && ev.GetType() == typ {
			return ev
		}
		seen = append(seen, ev.GetType().String()+" "+ev.GetName())
	}
	t.Fatalf("no %v %q event; saw %v", typ, name, seen)
	return nil
}

// streamErr waits for the stream to end and returns its error.
func (ws *watchStream) streamErr(t *testing.T) error {
	t.Helper()
	for {
		select {
		case _, ok := <-ws.msgs:
			if !ok {
				return <-ws.err
			}
		case <-time.After(5 * time.Second):
			t.Fatal("stream did not end")
		}
	}
}

func TestWatchDirRecursive(t *testing.T) {
	e := newFSEnv(t)
	root := e.path("watched")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	ws := openWatch(t, e, connect.NewRequest(&pb.WatchDirRequest{Path: root, Recursive: true, IncludeEntry: true}))
	ws.expectStart(t)

	if err := os.Mkdir(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	ev := ws.waitEvent(t, "sub", pb.EventType_EVENT_TYPE_CREATE)
	if ev.GetEntry().GetType() != pb.FileType_FILE_TYPE_DIRECTORY {
		t.Errorf("create sub entry = %v", ev.GetEntry())
	}
	file := filepath.Join(root, "sub", "f.txt")
	fsWriteFile(t, file, "hi")
	ev = ws.waitEvent(t, "sub/f.txt", pb.EventType_EVENT_TYPE_CREATE)
	if ev.GetEntry().GetPath() != file {
		t.Errorf("create entry = %v, want path %s", ev.GetEntry(), file)
	}
	ev = ws.waitEvent(t, "sub/f.txt", pb.EventType_EVENT_TYPE_WRITE)
	if ev.GetEntry().GetSize() != 2 {
		t.Errorf("write entry = %v, want size 2", ev.GetEntry())
	}
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}
	ws.waitEvent(t, "sub/f.txt", pb.EventType_EVENT_TYPE_CHMOD)
	if err := os.Rename(file, filepath.Join(root, "g.txt")); err != nil {
		t.Fatal(err)
	}
	if ev := ws.waitEvent(t, "sub/f.txt", pb.EventType_EVENT_TYPE_RENAME); ev.Entry != nil {
		t.Errorf("rename event carries an entry: %v", ev.GetEntry())
	}
	ws.waitEvent(t, "g.txt", pb.EventType_EVENT_TYPE_CREATE)
	if err := os.Remove(filepath.Join(root, "g.txt")); err != nil {
		t.Fatal(err)
	}
	ws.waitEvent(t, "g.txt", pb.EventType_EVENT_TYPE_REMOVE)

	// A tree created in one go, faster than watches can be added: every
	// level is still reported.
	fsWriteFile(t, filepath.Join(root, "a", "b", "c", "x.txt"), "x")
	for _, name := range []string{"a", "a/b", "a/b/c", "a/b/c/x.txt"} {
		ws.waitEvent(t, name, pb.EventType_EVENT_TYPE_CREATE)
	}
}

func TestWatchDirNonRecursive(t *testing.T) {
	e := newFSEnv(t)
	root := e.path("watched")
	if err := os.MkdirAll(filepath.Join(root, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	ws := openWatch(t, e, connect.NewRequest(&pb.WatchDirRequest{Path: root}))
	ws.expectStart(t)
	fsWriteFile(t, filepath.Join(root, "sub", "hidden.txt"), "h")
	fsWriteFile(t, filepath.Join(root, "top.txt"), "t")
	ev := ws.waitEvent(t, "top.txt", pb.EventType_EVENT_TYPE_CREATE)
	if ev.Entry != nil {
		t.Errorf("entry attached without include_entry: %v", ev.GetEntry())
	}
	// Drain what is queued; nothing from inside sub may appear.
	for {
		select {
		case m := <-ws.msgs:
			if n := m.GetFilesystem().GetName(); filepath.Dir(n) == "sub" {
				t.Errorf("non-recursive watch reported %q", n)
			}
			continue
		case <-time.After(300 * time.Millisecond):
		}
		break
	}
}

func TestWatchDirErrors(t *testing.T) {
	e := newFSEnv(t)
	fsWriteFile(t, e.path("file"), "x")
	if err := os.Mkdir(e.path("private"), 0o700); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		req  *connect.Request[pb.WatchDirRequest]
		code connect.Code
	}{
		{"missing", connect.NewRequest(&pb.WatchDirRequest{Path: e.path("nope")}), connect.CodeNotFound},
		{"file", connect.NewRequest(&pb.WatchDirRequest{Path: e.path("file")}), connect.CodeInvalidArgument},
		{"unknown user", fsAsUser(&pb.WatchDirRequest{Path: e.dir}, "no-such-user-xyz"), connect.CodeUnauthenticated},
		{"unreadable for the user", fsAsUser(&pb.WatchDirRequest{Path: e.path("private")}, "nobody"), connect.CodePermissionDenied},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ws := openWatch(t, e, tc.req)
			fsWantCode(t, ws.streamErr(t), tc.code)
		})
	}
}

func TestWatchDirKeepalive(t *testing.T) {
	e := newFSEnv(t)
	req := connect.NewRequest(&pb.WatchDirRequest{Path: e.dir})
	req.Header().Set("Keepalive-Ping-Interval", "1")
	ws := openWatch(t, e, req)
	ws.expectStart(t)
	began := time.Now()
	for i := 0; i < 2; i++ {
		if m := ws.next(t, 3*time.Second); m.GetKeepalive() == nil {
			t.Fatalf("got %v, want keepalive", m)
		}
	}
	if d := time.Since(began); d < 1500*time.Millisecond || d > 4*time.Second {
		t.Errorf("two keepalives took %v, want about 2s", d)
	}
}

// TestWatchDirDeadline checks the wire format of a timed-out watch: HTTP 200,
// start frame, then an end-of-stream frame carrying deadline_exceeded.
func TestWatchDirDeadline(t *testing.T) {
	e := newFSEnv(t)
	body, err := json.Marshal(map[string]string{"path": e.dir})
	if err != nil {
		t.Fatal(err)
	}
	var frame bytes.Buffer
	frame.WriteByte(0)
	_ = binary.Write(&frame, binary.BigEndian, uint32(len(body)))
	frame.Write(body)
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/filesystem.Filesystem/WatchDir", &frame)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/connect+json")
	req.Header.Set("Connect-Protocol-Version", "1")
	req.Header.Set("Connect-Timeout-Ms", "1000")
	began := time.Now()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(began); d < 900*time.Millisecond || d > 5*time.Second {
		t.Errorf("stream lasted %v, want about 1s", d)
	}
	var frames []struct {
		flags   byte
		payload string
	}
	for len(raw) >= 5 {
		n := binary.BigEndian.Uint32(raw[1:5])
		if int(n) > len(raw)-5 {
			t.Fatalf("truncated frame in %q", raw)
		}
		frames = append(frames, struct {
			flags   byte
			payload string
		}{raw[0], string(raw[5 : 5+n])})
		raw = raw[5+n:]
	}
	if len(frames) != 2 {
		t.Fatalf("frames = %+v, want start + end", frames)
	}
	if frames[0].flags != 0 || frames[0].payload != `{"start":{}}` {
		t.Errorf("first frame = %+v", frames[0])
	}
	var end struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(frames[1].payload), &end); err != nil || frames[1].flags != 2 || end.Error.Code != "deadline_exceeded" {
		t.Errorf("end frame = %+v (%v)", frames[1], err)
	}
}

func TestWatchDirEndsOnClose(t *testing.T) {
	e := newFSEnv(t)
	ws := openWatch(t, e, connect.NewRequest(&pb.WatchDirRequest{Path: e.dir}))
	ws.expectStart(t)
	e.fs.Close()
	fsWantCode(t, ws.streamErr(t), connect.CodeUnavailable)
}

func TestEventOpOrder(t *testing.T) {
	w := &dirWatcher{root: "/w", events: make(chan *pb.FilesystemEvent, 10), done: make(chan struct{})}
	all := fsnotify.Create | fsnotify.Write | fsnotify.Remove | fsnotify.Rename | fsnotify.Chmod
	if !w.handle(fsnotify.Event{Name: "/w/d/f", Op: all}) {
		t.Fatal("handle reported a closed watcher")
	}
	close(w.events)
	var got []pb.EventType
	for ev := range w.events {
		if ev.GetName() != "d/f" {
			t.Errorf("name = %q, want d/f", ev.GetName())
		}
		got = append(got, ev.GetType())
	}
	want := []pb.EventType{
		pb.EventType_EVENT_TYPE_CREATE, pb.EventType_EVENT_TYPE_RENAME, pb.EventType_EVENT_TYPE_CHMOD,
		pb.EventType_EVENT_TYPE_WRITE, pb.EventType_EVENT_TYPE_REMOVE,
	}
	if !slices.Equal(got, want) {
		t.Errorf("order = %v, want %v", got, want)
	}
}

func TestNetworkFSMagic(t *testing.T) {
	for magic, name := range map[int64]string{0x6969: "nfs", 0xff534d42: "cifs", 0x517b: "smb", 0xfe534d42: "smb2", 0x65735546: "fuse"} {
		if got, ok := networkFSMagic[magic]; !ok || got != name {
			t.Errorf("magic %#x = %q, %v; want %q", magic, got, ok, name)
		}
	}
	kind, ok, err := networkFS(t.TempDir())
	if err != nil || ok {
		t.Errorf("local temp dir classified as network fs %q (%v)", kind, err)
	}
}

func TestPollingWatcher(t *testing.T) {
	e := newFSEnv(t)
	ctx := context.Background()
	root := e.path("polled")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	res, err := e.client.CreateWatcher(ctx, connect.NewRequest(&pb.CreateWatcherRequest{Path: root, Recursive: true}))
	if err != nil {
		t.Fatal(err)
	}
	id := res.Msg.GetWatcherId()
	if len(id) < 2 || id[0] != 'w' {
		t.Fatalf("watcher id %q, want w<random>", id)
	}
	fsWriteFile(t, filepath.Join(root, "f.txt"), "x")

	poll := func() []*pb.FilesystemEvent {
		t.Helper()
		r, err := e.client.GetWatcherEvents(ctx, connect.NewRequest(&pb.GetWatcherEventsRequest{WatcherId: id}))
		if err != nil {
			t.Fatal(err)
		}
		return r.Msg.GetEvents()
	}
	hasCreate := func(evs []*pb.FilesystemEvent) bool {
		return slices.ContainsFunc(evs, func(ev *pb.FilesystemEvent) bool {
			return ev.GetName() == "f.txt" && ev.GetType() == pb.EventType_EVENT_TYPE_CREATE
		})
	}
	deadline := time.Now().Add(5 * time.Second)
	for !hasCreate(poll()) {
		if time.Now().After(deadline) {
			t.Fatal("create event never buffered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if evs := poll(); hasCreate(evs) {
		t.Errorf("buffer not drained: %v", evs)
	}

	if _, err := e.client.RemoveWatcher(ctx, connect.NewRequest(&pb.RemoveWatcherRequest{WatcherId: id})); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GetWatcherEvents(ctx, connect.NewRequest(&pb.GetWatcherEventsRequest{WatcherId: id}))
	fsWantCode(t, err, connect.CodeNotFound)
	_, err = e.client.RemoveWatcher(ctx, connect.NewRequest(&pb.RemoveWatcherRequest{WatcherId: id}))
	fsWantCode(t, err, connect.CodeNotFound)
	_, err = e.client.CreateWatcher(ctx, connect.NewRequest(&pb.CreateWatcherRequest{Path: e.path("nope")}))
	fsWantCode(t, err, connect.CodeNotFound)
}
