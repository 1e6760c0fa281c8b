package envd

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/roottest"
	"github.com/airlock-sandbox/airlock/proto/filesystem/filesystemconnect"
)

// ResolvePath always yields a clean absolute path; relative paths without
// ".." stay under the user's home.
func FuzzResolvePath(f *testing.F) {
	for _, p := range []string{"", "~", "~/a", "a/b", "../../etc/passwd", "/a/../../b", "~user", "./x", "//x", "a\x00b", "~/../x"} {
		f.Add(p)
	}
	st := NewState()
	u := &User{Name: "user", Home: "/home/user"}
	f.Fuzz(func(t *testing.T, p string) {
		got := st.ResolvePath(u, p)
		if !filepath.IsAbs(got) || filepath.Clean(got) != got {
			t.Fatalf("ResolvePath(%q) = %q: not clean and absolute", p, got)
		}
		if !filepath.IsAbs(p) && !strings.Contains(p, "..") && got != u.Home && !strings.HasPrefix(got, u.Home+"/") {
			t.Fatalf("ResolvePath(%q) = %q left the home directory", p, got)
		}
	})
}

// newFuzzFiles serves /files for the nobody user into a scratch directory
// that nobody owns, with an access token set.
func newFuzzFiles(f *testing.F) (*Filesystem, string) {
	roottest.Require(f, "envd's /files fuzz targets (they switch to the nobody user)")
	nobody, err := LookupUser("nobody")
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Chown(dir, int(nobody.UID), int(nobody.GID)); err != nil {
		f.Fatal(err)
	}
	st := NewState()
	st.Apply(Config{AccessToken: "tok", DefaultUser: "nobody"})
	fsys := NewFilesystem(st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	f.Cleanup(fsys.Close)
	return fsys, dir
}

// /files uploads: any body and content type gets a 2xx or a 4xx with
// E2B's body, and writes nothing but the one path the query names.
func FuzzFilesUpload(f *testing.F) {
	f.Add("multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nhello\r\n--X--\r\n")
	f.Add("multipart/form-data; boundary=X", "--X\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/etc/x\"\r\n\r\n1\r\n--X\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n2\r\n--X--\r\n")
	f.Add("multipart/form-data", "--\r\n")
	f.Add("multipart/form-data; boundary=\"", "")
	f.Add("application/octet-stream", "raw bytes")
	f.Add("text/plain", "x")
	fsys, dir := newFuzzFiles(f)
	target := filepath.Join(dir, "upload")
	f.Fuzz(func(t *testing.T, contentType, body string) {
		os.Remove(target)
		q := url.Values{"path": {target}}
		req := httptest.NewRequest(http.MethodPost, "/files?"+q.Encode(), strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		req.Header.Set("X-Access-Token", "tok")
		rec := httptest.NewRecorder()
		fsys.ServeUpload(rec, req)
		checkFilesAnswer(t, rec)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() != "upload" {
				t.Fatalf("upload wrote %s", e.Name())
			}
		}
	})
}

// Signed /files URLs: only the exact signature for the exact path, user,
// operation and expiry passes; anything else is 401, never 404.
func FuzzFileSignature(f *testing.F) {
	f.Add("/home/user/a.txt", "user", "", 0, uint8(0))
	f.Add("relative", "root", "1", 5, uint8(3))
	f.Add("", "", "x", 90, uint8(200))
	fsys, _ := newFuzzFiles(f)
	f.Fuzz(func(t *testing.T, p, user, exp string, flip int, b uint8) {
		now := time.Now()
		sig := fileSignature(p, opRead, user, "tok", exp)
		q := url.Values{"path": {p}, "username": {user}, "signature": {sig}}
		if exp != "" {
			q.Set("signature_expiration", exp)
		}
		req := httptest.NewRequest(http.MethodGet, "/files?"+q.Encode(), nil)
		err := fsys.authorizeFiles(req, opRead, now)
		n, perr := strconv.ParseInt(exp, 10, 64)
		valid := exp == "" || (perr == nil && n >= now.Unix())
		if (err == nil) != valid {
			t.Fatalf("path %q user %q exp %q: err %v, valid %v", p, user, exp, err, valid)
		}
		// A changed signature byte never passes.
		raw := []byte(sig)
		i := flip % len(raw)
		if i < 0 {
			i = -i
		}
		if raw[i] == b {
			return
		}
		raw[i] = b
		q.Set("signature", string(raw))
		req = httptest.NewRequest(http.MethodGet, "/files?"+q.Encode(), nil)
		if fsys.authorizeFiles(req, opRead, now) == nil {
			t.Fatalf("tampered signature %q passed", raw)
		}
		// Nor does the right signature for the other operation.
		q.Set("signature", sig)
		req = httptest.NewRequest(http.MethodGet, "/files?"+q.Encode(), nil)
		if fsys.authorizeFiles(req, opWrite, now) == nil {
			t.Fatalf("a read signature authorised a write")
		}
		rec := httptest.NewRecorder()
		q.Set("signature", string(raw))
		fsys.ServeDownload(rec, httptest.NewRequest(http.MethodGet, "/files?"+q.Encode(), nil))
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("tampered download: %d", rec.Code)
		}
	})
}

func checkFilesAnswer(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 || rec.Code < 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	if rec.Code >= 400 {
		var eb struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil || eb.Code != rec.Code || eb.Message == "" {
			t.Fatalf("status %d body %q", rec.Code, rec.Body.String())
		}
	}
}

// Connect framing: any body to a unary and a streaming filesystem RPC
// (both read-only) ends with an answer, never a panic or a hang.
func FuzzConnectFraming(f *testing.F) {
	env := func(flags byte, msg string) string {
		var b bytes.Buffer
		b.WriteByte(flags)
		_ = binary.Write(&b, binary.BigEndian, uint32(len(msg)))
		b.WriteString(msg)
		return b.String()
	}
	f.Add("application/json", `{"path":"/"}`)
	f.Add("application/json", `{"path":`)
	f.Add("application/proto", "\x0a\x01/")
	f.Add("application/connect+json", env(0, `{"path":"/tmp"}`))
	f.Add("application/connect+json", env(2, `{}`))
	f.Add("application/connect+json", "\x00\xff\xff\xff\xff")
	f.Add("application/connect+proto", env(1, "garbage"))
	fsys, _ := newFuzzFiles(f)
	mux := http.NewServeMux()
	p, h := filesystemconnect.NewFilesystemHandler(fsys)
	mux.Handle(p, h)
	f.Fuzz(func(t *testing.T, contentType, body string) {
		for _, proc := range []string{"Stat", "WatchDir"} {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/filesystem.Filesystem/"+proc, strings.NewReader(body))
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("Connect-Protocol-Version", "1")
			rec := httptest.NewRecorder()
			done := make(chan struct{})
			go func() {
				defer close(done)
				mux.ServeHTTP(rec, req)
			}()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("%s with %q did not return", proc, body)
			}
			cancel()
			if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s: status %d for %q %q", proc, rec.Code, contentType, body)
			}
		}
	})
}
