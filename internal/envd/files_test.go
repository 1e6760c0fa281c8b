package envd

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/sdk/envdapi"
)

// filePart is one multipart part: form name, raw filename, content.
type filePart struct {
	field, filename, content string
}

func multipartBody(t *testing.T, parts ...filePart) (string, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.field, p.filename))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, p.content); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), &buf
}

// rawClient is an HTTP client that does not add Accept-Encoding by itself.
func rawClient() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableCompression: true}}
}

// filesRequest sends a request to /files and returns status and body.
func (e *fsEnv) filesRequest(t *testing.T, method string, q url.Values, hdr http.Header, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+"/files?"+q.Encode(), body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := rawClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func wantJSONError(t *testing.T, resp *http.Response, body []byte, status int) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d (%s), want %d", resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("error content type %q", ct)
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code != status || e.Message == "" {
		t.Errorf("error body %q (%v)", body, err)
	}
}

func TestUploadMultipart(t *testing.T) {
	e := newFSEnv(t)
	single := e.path("single", "a.txt")
	multiA, multiB := e.path("multi", "a.txt"), e.path("multi", "sub", "b.txt")
	if err := os.Mkdir(e.path("adir"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		query  url.Values
		parts  []filePart
		status int
		want   string            // exact JSON response on success
		files  map[string]string // expected contents on disk
	}{
		{
			name:   "single with path query",
			query:  url.Values{"path": {single}},
			parts:  []filePart{{"file", single, "one"}},
			status: 200,
			want:   fmt.Sprintf(`[{"path":%q,"name":"a.txt","type":"file"}]`, single),
			files:  map[string]string{single: "one"},
		},
		{
			name:   "multi with directories in filenames",
			parts:  []filePart{{"file", multiA, "A"}, {"other", "ignored.txt", "no"}, {"file", multiB, "B"}},
			status: 200,
			want:   fmt.Sprintf(`[{"path":%q,"name":"a.txt","type":"file"},{"path":%q,"name":"b.txt","type":"file"}]`, multiA, multiB),
			files:  map[string]string{multiA: "A", multiB: "B"},
		},
		{
			name:   "same path twice",
			parts:  []filePart{{"file", e.path("dup.txt"), "1"}, {"file", e.path("x", "..", "dup.txt"), "2"}},
			status: 400,
		},
		{
			name:   "path query with two parts",
			query:  url.Values{"path": {e.path("q.txt")}},
			parts:  []filePart{{"file", "a", "1"}, {"file", "b", "2"}},
			status: 400,
		},
		{name: "no file part", parts: []filePart{{"other", "x", "1"}}, status: 400},
		{name: "no path at all", parts: []filePart{{"file", "", "1"}}, status: 400},
		{name: "target is a directory", parts: []filePart{{"file", e.path("adir"), "1"}}, status: 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := multipartBody(t, tc.parts...)
			resp, b := e.filesRequest(t, http.MethodPost, tc.query, http.Header{"Content-Type": {ct}}, body)
			if tc.status != 200 {
				wantJSONError(t, resp, b, tc.status)
				return
			}
			if resp.StatusCode != 200 || !sameJSON(b, []byte(tc.want)) {
				t.Fatalf("got %d %s\nwant %s", resp.StatusCode, b, tc.want)
			}
			for p, content := range tc.files {
				if got, err := os.ReadFile(p); err != nil || string(got) != content {
					t.Errorf("%s = %q, %v; want %q", p, got, err, content)
				}
			}
		})
	}
}

func gzipped(t *testing.T, s string) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := io.WriteString(zw, s); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf
}

func TestUploadOctetStream(t *testing.T) {
	e := newFSEnv(t)
	octet := "application/octet-stream"
	cases := []struct {
		name     string
		path     string
		ctype    string
		encoding string
		body     io.Reader
		status   int
		content  string
	}{
		{"plain", e.path("o", "plain.bin"), octet, "", strings.NewReader("raw bytes"), 200, "raw bytes"},
		{"gzip", e.path("o", "gz.bin"), octet, "gzip", gzipped(t, "unzipped"), 200, "unzipped"},
		{"identity", e.path("o", "id.bin"), octet, "identity", strings.NewReader("same"), 200, "same"},
		{"empty", e.path("o", "empty.bin"), octet, "", strings.NewReader(""), 200, ""},
		{"unsupported encoding", e.path("o", "br.bin"), octet, "br", strings.NewReader("x"), 400, ""},
		{"corrupt gzip", e.path("o", "bad.bin"), octet, "gzip", strings.NewReader("not gzip"), 400, ""},
		{"missing path", "", octet, "", strings.NewReader("x"), 400, ""},
		{"other content type", e.path("o", "t.txt"), "text/plain", "", strings.NewReader("x"), 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{}
			if tc.path != "" {
				q.Set("path", tc.path)
			}
			hdr := http.Header{"Content-Type": {tc.ctype}}
			if tc.encoding != "" {
				hdr.Set("Content-Encoding", tc.encoding)
			}
			resp, b := e.filesRequest(t, http.MethodPost, q, hdr, tc.body)
			if tc.status != 200 {
				wantJSONError(t, resp, b, tc.status)
				return
			}
			var got []envdapi.EntryInfo
			if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d %s (%v)", resp.StatusCode, b, err)
			}
			if len(got) != 1 || got[0].Path != tc.path || got[0].Type != "file" || got[0].Name != filepath.Base(tc.path) {
				t.Errorf("response %+v", got)
			}
			if data, err := os.ReadFile(tc.path); err != nil || string(data) != tc.content {
				t.Errorf("on disk %q, %v", data, err)
			}
		})
	}
}

func TestUploadMetadata(t *testing.T) {
	e := newFSEnv(t)
	p := e.path("meta.txt")
	fsWriteFile(t, p, "old")
	if err := unix.Setxattr(p, "user.e2b.stale", []byte("1"), 0); err != nil {
		t.Fatalf("setxattr (the scratch filesystem must support user xattrs): %v", err)
	}
	hdr := http.Header{
		"Content-Type":        {"application/octet-stream"},
		"X-Metadata-Color":    {"blue"},
		"X-Metadata-Owner-Id": {"a b=7"},
	}
	resp, b := e.filesRequest(t, http.MethodPost, url.Values{"path": {p}}, hdr, strings.NewReader("new"))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	want := fmt.Sprintf(`[{"path":%q,"name":"meta.txt","type":"file","metadata":{"color":"blue","owner-id":"a b=7"}}]`, p)
	if !sameJSON(b, []byte(want)) {
		t.Errorf("response %s\nwant %s", b, want)
	}
	md := readMetadata(p)
	if len(md) != 2 || md["color"] != "blue" || md["owner-id"] != "a b=7" {
		t.Errorf("xattrs = %v", md)
	}

	bad := http.Header{"Content-Type": {"application/octet-stream"}, "X-Metadata-Name": {"caf\xc3\xa9"}}
	resp, b = e.filesRequest(t, http.MethodPost, url.Values{"path": {p}}, bad, strings.NewReader("x"))
	wantJSONError(t, resp, b, 400)
	if data, _ := os.ReadFile(p); string(data) != "new" {
		t.Errorf("file changed by a rejected upload: %q", data)
	}

	// Overwriting without metadata clears it; the response has none.
	resp, b = e.filesRequest(t, http.MethodPost, url.Values{"path": {p}}, http.Header{"Content-Type": {"application/octet-stream"}}, strings.NewReader("plain"))
	if resp.StatusCode != 200 || strings.Contains(string(b), "metadata") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if md := readMetadata(p); len(md) != 0 {
		t.Errorf("metadata kept after an overwrite without any: %v", md)
	}
}

func TestUploadOwnership(t *testing.T) {
	e := newFSEnv(t)
	home := e.nobodyDir(t, "home")
	nested := filepath.Join(home, "x", "y", "f.txt")
	q := url.Values{"path": {nested}, "username": {"nobody"}}
	resp, b := e.filesRequest(t, http.MethodPost, q, http.Header{"Content-Type": {"application/octet-stream"}}, strings.NewReader("n"))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	for _, p := range []string{filepath.Join(home, "x"), filepath.Join(home, "x", "y"), nested} {
		if uid, gid := fsOwnerOf(t, p); uid != e.nobody.UID || gid != e.nobody.GID {
			t.Errorf("%s owned by %d:%d, want nobody", p, uid, gid)
		}
	}

	// A world-writable file of root's is taken over by the writer.
	shared := e.path("shared.txt")
	fsWriteFile(t, shared, "root")
	if err := os.Chmod(shared, 0o666); err != nil {
		t.Fatal(err)
	}
	q = url.Values{"path": {shared}, "username": {"nobody"}}
	if resp, b := e.filesRequest(t, http.MethodPost, q, http.Header{"Content-Type": {"application/octet-stream"}}, strings.NewReader("mine")); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if uid, _ := fsOwnerOf(t, shared); uid != e.nobody.UID {
		t.Errorf("shared file owned by %d after upload, want nobody", uid)
	}

	cases := []struct {
		name   string
		user   string
		path   string
		status int
	}{
		{"no write permission", "nobody", e.path("rootdir-file.txt"), 403},
		{"unknown user", "no-such-user-xyz", e.path("u.txt"), 401},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := url.Values{"path": {tc.path}, "username": {tc.user}}
			resp, b := e.filesRequest(t, http.MethodPost, q, http.Header{"Content-Type": {"application/octet-stream"}}, strings.NewReader("x"))
			wantJSONError(t, resp, b, tc.status)
		})
	}
}

func TestUploadNoSpace(t *testing.T) {
	e := newFSEnv(t)
	small := e.path("small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=64k"); err != nil {
		t.Fatalf("mount a small tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(small, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", small, err)
		}
	})
	q := url.Values{"path": {filepath.Join(small, "big.bin")}}
	resp, b := e.filesRequest(t, http.MethodPost, q, http.Header{"Content-Type": {"application/octet-stream"}},
		bytes.NewReader(make([]byte, 1<<20)))
	wantJSONError(t, resp, b, http.StatusInsufficientStorage)
}

func TestDownload(t *testing.T) {
	e := newFSEnv(t)
	p := e.path("dl", "hello.txt")
	fsWriteFile(t, p, "hello world")
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	empty := e.path("dl", "empty")
	fsWriteFile(t, empty, "")
	secret := e.path("dl", "secret")
	fsWriteFile(t, secret, "s")
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("plain", func(t *testing.T) {
		resp, b := e.filesRequest(t, http.MethodGet, url.Values{"path": {p}}, nil, nil)
		if resp.StatusCode != 200 || string(b) != "hello world" {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
		for k, want := range map[string]string{
			"Content-Length":      "11",
			"Content-Disposition": `inline; filename="hello.txt"`,
			"Last-Modified":       mtime.Format(http.TimeFormat),
			"Content-Type":        "text/plain; charset=utf-8",
			"Vary":                "Accept-Encoding",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
	})
	t.Run("range", func(t *testing.T) {
		resp, b := e.filesRequest(t, http.MethodGet, url.Values{"path": {p}}, http.Header{"Range": {"bytes=1-3"}}, nil)
		if resp.StatusCode != http.StatusPartialContent || string(b) != "ell" {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
	})
	t.Run("generic client defaults stay uncompressed", func(t *testing.T) {
		resp, b := e.filesRequest(t, http.MethodGet, url.Values{"path": {p}}, http.Header{"Accept-Encoding": {"gzip, deflate, br"}}, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" || string(b) != "hello world" {
			t.Fatalf("%d, encoding %q, body %q", resp.StatusCode, resp.Header.Get("Content-Encoding"), b)
		}
	})
	t.Run("gzip", func(t *testing.T) {
		resp, b := e.filesRequest(t, http.MethodGet, url.Values{"path": {p}}, http.Header{"Accept-Encoding": {"gzip"}}, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%d, encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(zr); err != nil || string(got) != "hello world" {
			t.Errorf("decompressed %q, %v", got, err)
		}
	})
	t.Run("empty file stays uncompressed", func(t *testing.T) {
		resp, b := e.filesRequest(t, http.MethodGet, url.Values{"path": {empty}}, http.Header{"Accept-Encoding": {"gzip"}}, nil)
		if resp.StatusCode != 200 || len(b) != 0 || resp.Header.Get("Content-Length") != "0" || resp.Header.Get("Content-Encoding") != "" {
			t.Errorf("%d %q %v", resp.StatusCode, b, resp.Header)
		}
	})

	if err := os.Mkdir(e.path("dl", "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	errCases := []struct {
		name   string
		q      url.Values
		hdr    http.Header
		status int
	}{
		{"missing", url.Values{"path": {e.path("dl", "nope")}}, nil, 404},
		{"directory", url.Values{"path": {e.path("dl", "dir")}}, nil, 400},
		{"unknown user", url.Values{"path": {p}, "username": {"no-such-user-xyz"}}, nil, 401},
		{"no read permission", url.Values{"path": {secret}, "username": {"nobody"}}, nil, 403},
		{"no acceptable encoding", url.Values{"path": {p}}, http.Header{"Accept-Encoding": {"br, identity;q=0"}}, 406},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := e.filesRequest(t, http.MethodGet, tc.q, tc.hdr, nil)
			wantJSONError(t, resp, b, tc.status)
		})
	}
}

func TestFileSignatureVector(t *testing.T) {
	got := fileSignature("/home/user/a.txt", "read", "", "TOKEN", "")
	if want := "v1_A9hdoNM5pnSITjAcAULFEA9/LXUn0Pij2pNU5hjrQec"; got != want {
		t.Errorf("signature = %s, want %s", got, want)
	}
}

func TestFilesAuth(t *testing.T) {
	e := newFSEnv(t)
	const token = "s3cret"
	e.st.Apply(Config{AccessToken: token})
	p := e.path("signed.txt")
	fsWriteFile(t, p, "signed")
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	past := strconv.FormatInt(time.Now().Add(-time.Minute).Unix(), 10)

	signed := func(op, user, exp string) url.Values {
		q := url.Values{"path": {p}, "signature": {fileSignature(p, op, user, token, exp)}}
		if user != "" {
			q.Set("username", user)
		}
		if exp != "" {
			q.Set("signature_expiration", exp)
		}
		return q
	}
	cases := []struct {
		name    string
		method  string
		q       url.Values
		hdr     http.Header
		status  int
		message string
	}{
		{"header token", "GET", url.Values{"path": {p}}, http.Header{"X-Access-Token": {token}}, 200, ""},
		{"wrong header token beats a valid signature", "GET", signed("read", "", ""), http.Header{"X-Access-Token": {"nope"}}, 401, ""},
		{"nothing", "GET", url.Values{"path": {p}}, nil, 401, ""},
		{"signature", "GET", signed("read", "", ""), nil, 200, ""},
		{"signature with user", "GET", signed("read", "root", ""), nil, 200, ""},
		{"signature with expiration", "GET", signed("read", "", future), nil, 200, ""},
		{"expired signature", "GET", signed("read", "", past), nil, 401, "signature is already expired"},
		{"write signature used to read", "GET", signed("write", "", ""), nil, 401, ""},
		{"tampered signature", "GET", url.Values{"path": {p}, "signature": {"v1_AAAA"}}, nil, 401, ""},
		{"expiration not covered by signature", "GET", func() url.Values {
			q := signed("read", "", "")
			q.Set("signature_expiration", future)
			return q
		}(), nil, 401, ""},
		{"write signature", "POST", signed("write", "", ""), http.Header{"Content-Type": {"application/octet-stream"}}, 200, ""},
		{"read signature used to write", "POST", signed("read", "", ""), http.Header{"Content-Type": {"application/octet-stream"}}, 401, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.method == "POST" {
				body = strings.NewReader("signed")
			}
			resp, b := e.filesRequest(t, tc.method, tc.q, tc.hdr, body)
			if tc.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, b)
				}
				return
			}
			wantJSONError(t, resp, b, tc.status)
			if tc.message != "" && !strings.Contains(string(b), tc.message) {
				t.Errorf("body %s, want message %q", b, tc.message)
			}
		})
	}
}

// heapSampler records the peak HeapInuse while running.
type heapSampler struct {
	stop chan struct{}
	wg   sync.WaitGroup
	base uint64
	peak uint64
}

func startHeapSampler() *heapSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := &heapSampler{stop: make(chan struct{}), base: ms.HeapInuse, peak: ms.HeapInuse}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				runtime.ReadMemStats(&ms)
				s.peak = max(s.peak, ms.HeapInuse)
			}
		}
	}()
	return s
}

func (s *heapSampler) growth() uint64 {
	close(s.stop)
	s.wg.Wait()
	return s.peak - s.base
}

// TestLargeRoundTrip streams 100 MB up (multipart) and down again, checking
// the content hash and that memory stays bounded on both paths.
func TestLargeRoundTrip(t *testing.T) {
	e := newFSEnv(t)
	const size = 100 << 20
	const maxGrowth = 32 << 20
	p := e.path("big", "blob.bin")

	sampler := startHeapSampler()
	upHash := sha256.New()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		part, err := mw.CreateFormFile("file", p)
		if err == nil {
			src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7}), size), upHash)
			_, err = io.Copy(part, src)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	resp, b := e.filesRequest(t, http.MethodPost, url.Values{"path": {p}},
		http.Header{"Content-Type": {mw.FormDataContentType()}}, pr)
	if resp.StatusCode != 200 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	g := sampler.growth()
	t.Logf("upload heap growth: %d KiB", g>>10)
	if g > maxGrowth {
		t.Errorf("upload grew the heap by %d MiB", g>>20)
	}
	if fi, err := os.Stat(p); err != nil || fi.Size() != size {
		t.Fatalf("uploaded file: %v, %v", fi, err)
	}

	sampler = startHeapSampler()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+"/files?"+url.Values{"path": {p}}.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	dl, err := rawClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer dl.Body.Close()
	if dl.StatusCode != 200 || dl.Header.Get("Content-Length") != strconv.Itoa(size) {
		t.Fatalf("download: %d, length %q", dl.StatusCode, dl.Header.Get("Content-Length"))
	}
	downHash := sha256.New()
	n, err := io.Copy(downHash, dl.Body)
	if err != nil || n != size {
		t.Fatalf("download read %d bytes: %v", n, err)
	}
	g = sampler.growth()
	t.Logf("download heap growth: %d KiB", g>>10)
	if g > maxGrowth {
		t.Errorf("download grew the heap by %d MiB", g>>20)
	}
	if !bytes.Equal(upHash.Sum(nil), downHash.Sum(nil)) {
		t.Error("downloaded content differs from the upload (SHA-256 mismatch)")
	}
}

// sameJSON reports whether a and b are the same JSON value (key order is
// not part of the contract).
func sameJSON(a, b []byte) bool {
	var av, bv any
	if json.Unmarshal(a, &av) != nil || json.Unmarshal(b, &bv) != nil {
		return false
	}
	return reflect.DeepEqual(av, bv)
}
