package sandbox_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func TestFiles(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	sbx := newSandbox(t, sandbox.CreateOptions{})
	f := sbx.Files

	// Write/Read bytes and strings; parents are created; relative paths resolve to home.
	wi, err := f.Write(ctx, "/home/user/dir/a.txt", []byte("alpha"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if wi.Path != "/home/user/dir/a.txt" || wi.Name != "a.txt" || wi.Type != sandbox.TypeFile {
		t.Fatalf("write info = %+v", wi)
	}
	if s, err := f.ReadString(ctx, "dir/a.txt", nil); err != nil || s != "alpha" {
		t.Fatalf("ReadString = %q, %v", s, err)
	}
	if b, err := f.Read(ctx, "~/dir/a.txt", &sandbox.ReadOptions{Gzip: true}); err != nil || string(b) != "alpha" {
		t.Fatalf("Read gzip = %q, %v", b, err)
	}
	rc, err := f.ReadStream(ctx, "/home/user/dir/a.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "alpha" {
		t.Fatalf("ReadStream = %q, %v", b, err)
	}
	if _, err := f.WriteString(ctx, "/home/user/empty", "", nil); err != nil {
		t.Fatal(err)
	}
	if b, err := f.Read(ctx, "/home/user/empty", nil); err != nil || len(b) != 0 {
		t.Fatalf("empty file = %q, %v", b, err)
	}

	// Streamed (octet-stream) writes, plain and gzip, with metadata.
	if _, err := f.WriteFrom(ctx, "/home/user/stream.txt", strings.NewReader("streamed"), &sandbox.WriteOptions{Metadata: map[string]string{"owner": "sdk"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteFrom(ctx, "/home/user/gz.txt", strings.NewReader(strings.Repeat("z", 10000)), &sandbox.WriteOptions{Gzip: true}); err != nil {
		t.Fatal(err)
	}
	if got := run(t, sbx, "cat ~/stream.txt; echo; wc -c < ~/gz.txt"); got != "streamed\n10000\n" {
		t.Fatalf("streamed files: %q", got)
	}
	info, err := f.GetInfo(ctx, "/home/user/stream.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != 8 || info.Type != sandbox.TypeFile || info.Owner != "user" || info.Metadata["owner"] != "sdk" || info.ModifiedTime.IsZero() || info.Permissions == "" {
		t.Fatalf("GetInfo = %+v", info)
	}

	// WriteMany: one request, several files, from bytes and readers.
	infos, err := f.WriteMany(ctx, []sandbox.WriteEntry{
		{Path: "/home/user/many/one.txt", Data: []byte("1")},
		{Path: "/home/user/many/sub/two.txt", Reader: strings.NewReader("22")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 2 || infos[1].Path != "/home/user/many/sub/two.txt" {
		t.Fatalf("WriteMany = %+v", infos)
	}

	// List with depth.
	names := func(es []sandbox.EntryInfo) []string {
		var n []string
		for _, e := range es {
			n = append(n, e.Path)
		}
		slices.Sort(n)
		return n
	}
	l1, err := f.List(ctx, "/home/user/many", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(l1); !slices.Equal(got, []string{"/home/user/many/one.txt", "/home/user/many/sub"}) {
		t.Fatalf("List depth 1 = %v", got)
	}
	if i := slices.IndexFunc(l1, func(e sandbox.EntryInfo) bool { return e.Name == "sub" }); l1[i].Type != sandbox.TypeDir {
		t.Fatalf("sub type = %q", l1[i].Type)
	}
	l2, err := f.List(ctx, "/home/user/many", &sandbox.ListDirOptions{Depth: 2})
	if err != nil || len(l2) != 3 {
		t.Fatalf("List depth 2 = %v, %v", names(l2), err)
	}

	// Exists, MakeDir, Rename, Remove.
	for _, tc := range []struct {
		path string
		want bool
	}{{"/home/user/many/one.txt", true}, {"/home/user/nope", false}} {
		if ok, err := f.Exists(ctx, tc.path, nil); ok != tc.want || err != nil {
			t.Fatalf("Exists(%s) = %v, %v", tc.path, ok, err)
		}
	}
	if ok, err := f.MakeDir(ctx, "/home/user/made/deep", nil); !ok || err != nil {
		t.Fatalf("MakeDir = %v, %v", ok, err)
	}
	if ok, err := f.MakeDir(ctx, "/home/user/made/deep", nil); ok || err != nil {
		t.Fatalf("MakeDir again = %v, %v; want false", ok, err)
	}
	ri, err := f.Rename(ctx, "/home/user/many/one.txt", "/home/user/moved/uno.txt", nil)
	if err != nil || ri.Path != "/home/user/moved/uno.txt" || ri.Name != "uno.txt" {
		t.Fatalf("Rename = %+v, %v", ri, err)
	}
	if err := f.Remove(ctx, "/home/user/many", nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := f.Exists(ctx, "/home/user/many/sub/two.txt", nil); ok {
		t.Fatal("Remove left the tree behind")
	}
	if err := f.Remove(ctx, "/home/user/many", nil); err != nil {
		t.Fatalf("Remove of a missing path: %v", err)
	}

	// Users: root's home and a root-owned file.
	if _, err := f.Write(ctx, "rootfile", []byte("r"), &sandbox.WriteOptions{User: "root"}); err != nil {
		t.Fatal(err)
	}
	ri2, err := f.GetInfo(ctx, "/root/rootfile", &sandbox.FileOptions{User: "root"})
	if err != nil || ri2.Owner != "root" {
		t.Fatalf("root file = %+v, %v", ri2, err)
	}

	// Typed errors.
	if _, err := f.Read(ctx, "/home/user/missing", nil); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("Read missing: %v, want ErrNotFound", err)
	}
	if _, err := f.GetInfo(ctx, "/home/user/missing", nil); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("GetInfo missing: %v, want ErrNotFound", err)
	}
	if _, err := f.List(ctx, "/home/user/moved/uno.txt", nil); !errors.Is(err, sandbox.ErrInvalidArgument) {
		t.Fatalf("List of a file: %v, want ErrInvalidArgument", err)
	}
	if _, err := f.Read(ctx, "/home/user", nil); !errors.Is(err, sandbox.ErrInvalidArgument) {
		t.Fatalf("Read of a directory: %v, want ErrInvalidArgument", err)
	}
	if _, err := f.Rename(ctx, "/home/user/missing", "/home/user/x", nil); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("Rename missing: %v, want ErrNotFound", err)
	}
}

func TestWatchDir(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	sbx := newSandbox(t, sandbox.CreateOptions{})
	if _, err := sbx.Files.MakeDir(ctx, "/home/user/w/sub", nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []sandbox.FilesystemEvent
	exited := make(chan error, 1)
	h, err := sbx.Files.WatchDir(ctx, "/home/user/w", func(e sandbox.FilesystemEvent) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}, &sandbox.WatchOptions{Recursive: true, IncludeEntry: true, OnExit: func(err error) { exited <- err }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sbx.Files.Write(ctx, "/home/user/w/sub/f.txt", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	if err := sbx.Files.Remove(ctx, "/home/user/w/sub/f.txt", nil); err != nil {
		t.Fatal(err)
	}
	has := func(name string, typ sandbox.EventType) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(events, func(e sandbox.FilesystemEvent) bool { return e.Name == name && e.Type == typ })
	}
	deadline := time.Now().Add(10 * time.Second)
	for !(has("sub/f.txt", sandbox.EventCreate) && has("sub/f.txt", sandbox.EventWrite) && has("sub/f.txt", sandbox.EventRemove)) {
		if time.Now().After(deadline) {
			mu.Lock()
			t.Fatalf("events = %+v", events)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	for _, e := range events {
		if e.Type == sandbox.EventCreate && e.Entry != nil && e.Entry.Path != "/home/user/w/sub/f.txt" {
			t.Errorf("create entry = %+v", e.Entry)
		}
	}
	mu.Unlock()
	h.Stop()
	if err := <-exited; err != nil {
		t.Fatalf("OnExit after Stop: %v", err)
	}

	// The watch timeout ends the stream with ErrTimeout.
	h2, err := sbx.Files.WatchDir(ctx, "/home/user/w", nil, &sandbox.WatchOptions{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-h2.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("watch did not end after its timeout")
	}
	if !errors.Is(h2.Err(), sandbox.ErrTimeout) {
		t.Fatalf("watch ended with %v, want ErrTimeout", h2.Err())
	}
	if _, err := sbx.Files.WatchDir(ctx, "/home/user/missing", nil, nil); !errors.Is(err, sandbox.ErrNotFound) && !errors.Is(err, sandbox.ErrInvalidArgument) {
		t.Fatalf("watch missing dir: %v", err)
	}
}

// TestSignedURLs uses the URLs the way a third party would: a plain HTTP
// client with no access token. In URL mode the routing headers are added
// since a single E2B_SANDBOX_URL cannot carry the sandbox ID.
func TestSignedURLs(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	sbx := newSandbox(t, sandbox.CreateOptions{})
	plain := func(method, u, ctype string, body io.Reader) *http.Response {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if mode == "url" {
			req.Header.Set("E2b-Sandbox-Id", sbx.ID)
			req.Header.Set("E2b-Sandbox-Port", "49983")
		}
		resp, err := testHTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}

	up, err := sbx.UploadURL("/home/user/signed.txt", &sandbox.URLOptions{Expiration: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	pu, _ := url.Parse(up)
	if mode == "host" && pu.Host != "49983-"+sbx.ID+"."+sandbox.NewConfig().Domain {
		t.Fatalf("upload URL host = %q", pu.Host)
	}
	if !strings.HasPrefix(pu.Query().Get("signature"), "v1_") || pu.Query().Get("signature_expiration") == "" {
		t.Fatalf("upload URL = %s", up)
	}
	var body bytes.Buffer
	ctype := multipartBody(t, &body, "/home/user/signed.txt", "signed content")
	if resp := plain(http.MethodPost, up, ctype, &body); resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upload via signed URL: %d %s", resp.StatusCode, b)
	}

	down, err := sbx.DownloadURL("/home/user/signed.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp := plain(http.MethodGet, down, "", nil)
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(got) != "signed content" {
		t.Fatalf("download via signed URL: %d %q", resp.StatusCode, got)
	}

	// Tampered path and expired signature are refused.
	bad := strings.Replace(down, "signed.txt", "other.txt", 1)
	if resp := plain(http.MethodGet, bad, "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("tampered URL: %d, want 401", resp.StatusCode)
	}
	exp := time.Now().Add(-time.Minute).Unix()
	q := url.Values{"path": {"/home/user/signed.txt"}, "signature_expiration": {strconv.FormatInt(exp, 10)},
		"signature": {sandbox.FileSignature("/home/user/signed.txt", "read", "", sbx.EnvdAccessToken(), exp)}}
	expired := strings.SplitN(down, "?", 2)[0] + "?" + q.Encode()
	if resp := plain(http.MethodGet, expired, "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("expired URL: %d, want 401", resp.StatusCode)
	}
}
