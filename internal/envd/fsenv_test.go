package envd

import (
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/internal/roottest"
	"github.com/airlock-sandbox/airlock/proto/filesystem/filesystemconnect"
)

// fsEnv is a Filesystem served over httptest with a Connect JSON client.
type fsEnv struct {
	st     *State
	fs     *Filesystem
	srv    *httptest.Server
	client filesystemconnect.FilesystemClient
	dir    string // world-traversable scratch directory owned by root
	nobody *User
}

func newFSEnv(t *testing.T) *fsEnv {
	t.Helper()
	roottest.Require(t, "envd's filesystem tests (they switch to the nobody user)")
	nobody, err := LookupUser("nobody")
	if err != nil {
		t.Fatalf("user nobody is required: %v", err)
	}
	dir := t.TempDir()
	// t.TempDir's directories are 0700; nobody must be able to traverse them.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	st := NewState()
	fsys := NewFilesystem(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	mux := http.NewServeMux()
	path, h := filesystemconnect.NewFilesystemHandler(fsys)
	mux.Handle(path, h)
	mux.HandleFunc("GET /files", fsys.ServeDownload)
	mux.HandleFunc("POST /files", fsys.ServeUpload)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		fsys.Close()
	})
	return &fsEnv{
		st:     st,
		fs:     fsys,
		srv:    srv,
		client: filesystemconnect.NewFilesystemClient(srv.Client(), srv.URL, connect.WithProtoJSON()),
		dir:    dir,
		nobody: nobody,
	}
}

// path joins elements onto the scratch directory.
func (e *fsEnv) path(elem ...string) string {
	return filepath.Join(append([]string{e.dir}, elem...)...)
}

// nobodyDir makes a scratch subdirectory owned by nobody.
func (e *fsEnv) nobodyDir(t *testing.T, name string) string {
	t.Helper()
	d := e.path(name)
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(d, int(e.nobody.UID), int(e.nobody.GID)); err != nil {
		t.Fatal(err)
	}
	return d
}

// asUser builds a Connect request that selects user via Basic auth.
func fsAsUser[T any](msg *T, user string) *connect.Request[T] {
	req := connect.NewRequest(msg)
	if user != "" {
		req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	}
	return req
}

func fsWriteFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fsWantCode(t *testing.T, err error, want connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got success, want %v", want)
	}
	if got := connect.CodeOf(err); got != want {
		t.Fatalf("got code %v (%v), want %v", got, err, want)
	}
}

func fsOwnerOf(t *testing.T, p string) (uid, gid uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		t.Fatal(errors.New("no Stat_t"))
	}
	return st.Uid, st.Gid
}
