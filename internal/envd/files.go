package envd

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
	"github.com/airlock-sandbox/airlock/sdk/envdapi"
)

// httpError carries the HTTP status a /files failure should produce.
type httpError struct {
	status int
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

func httpErrorf(status int, format string, args ...any) error {
	return &httpError{status: status, err: fmt.Errorf(format, args...)}
}

// statusOf picks the HTTP status for a /files error.
func statusOf(err error) int {
	var he *httpError
	if errors.As(err, &he) {
		return he.status
	}
	return errdefs.HTTPStatus(classifyOS(err))
}

// writeFilesError answers with E2B's JSON error body.
func writeFilesError(w http.ResponseWriter, status int, msg string) {
	h := w.Header()
	for _, k := range []string{"Content-Disposition", "Content-Encoding", "Last-Modified", "Content-Length"} {
		h.Del(k)
	}
	h.Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(envdapi.Error{Code: status, Message: msg})
}

// filesUser authorizes a /files request and resolves its user.
func (f *Filesystem) filesUser(r *http.Request, op string) (*User, error) {
	if err := f.authorizeFiles(r, op, time.Now()); err != nil {
		return nil, &httpError{status: http.StatusUnauthorized, err: err}
	}
	u, err := f.st.UserByName(r.URL.Query().Get("username"))
	if err != nil {
		if errors.Is(err, ErrUnknownUser) {
			return nil, &httpError{status: http.StatusUnauthorized, err: err}
		}
		return nil, err
	}
	return u, nil
}

// ServeDownload handles GET /files: the file's bytes, gzip-compressed when
// the client asks for gzip alone.
func (f *Filesystem) ServeDownload(w http.ResponseWriter, r *http.Request) {
	if err := f.download(w, r); err != nil {
		status := statusOf(err)
		if status >= 500 {
			f.log.Error("download", "path", r.URL.Query().Get("path"), "err", err)
		}
		writeFilesError(w, status, err.Error())
	}
}

func (f *Filesystem) download(w http.ResponseWriter, r *http.Request) error {
	u, err := f.filesUser(r, opRead)
	if err != nil {
		return err
	}
	p := f.st.ResolvePath(u, r.URL.Query().Get("path"))
	var file *os.File
	err = runAs(u, func() error {
		var err error
		file, err = os.Open(p)
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return httpErrorf(http.StatusNotFound, "path %s not found", p)
	}
	if err != nil {
		return err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return httpErrorf(http.StatusBadRequest, "path %s is a directory", p)
	}
	if !fi.Mode().IsRegular() {
		return httpErrorf(http.StatusBadRequest, "path %s is not a regular file", p)
	}

	gzipOK, identityOK := acceptedEncodings(r.Header.Get("Accept-Encoding"))
	name := filepath.Base(p)
	h := w.Header()
	h.Set("Content-Disposition", contentDisposition(name))
	h.Set("Vary", "Accept-Encoding")

	// Ranges and empty files are served as is: clients need exact lengths.
	if !gzipOK || r.Header.Get("Range") != "" || r.Method == http.MethodHead || fi.Size() == 0 {
		if !identityOK {
			return httpErrorf(http.StatusNotAcceptable, "no acceptable content encoding")
		}
		http.ServeContent(w, r, name, fi.ModTime(), file)
		return nil
	}
	ctype, err := contentType(name, file)
	if err != nil {
		return err
	}
	h.Set("Content-Type", ctype)
	h.Set("Content-Encoding", "gzip")
	h.Set("Last-Modified", fi.ModTime().UTC().Format(http.TimeFormat))
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	if err != nil {
		return err
	}
	// Past this point the status line is sent; errors only cut the body short.
	if _, err := io.Copy(gz, file); err != nil {
		f.log.Warn("download interrupted", "path", p, "err", err)
		return nil
	}
	if err := gz.Close(); err != nil {
		f.log.Warn("download interrupted", "path", p, "err", err)
	}
	return nil
}

// contentDisposition is `inline; filename="<name>"`, falling back to the
// RFC 2231 form for names that cannot be a plain quoted string.
func contentDisposition(name string) string {
	if printableASCII(name) && !strings.ContainsAny(name, `"\\`) {
		return `inline; filename="` + name + `"`
	}
	return mime.FormatMediaType("inline", map[string]string{"filename": name})
}

// acceptedEncodings parses Accept-Encoding for gzip and identity. gzip is
// chosen only when it is the one compression the client names: that is what
// the SDKs send for their gzip option, while generic client defaults
// ("gzip, deflate, br") would otherwise make every large download burn CPU
// instead of going out uncompressed with sendfile.
func acceptedEncodings(header string) (gzipOK, identityOK bool) {
	gzipQ, identityQ, anyQ := -1.0, -1.0, -1.0
	others := false
	for _, item := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(item), ";")
		q := 1.0
		for _, param := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(param), "q="); ok {
				if n, err := strconv.ParseFloat(v, 64); err == nil {
					q = n
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "gzip", "x-gzip":
			gzipQ = q
		case "identity":
			identityQ = q
		case "*":
			anyQ = q
		case "":
		default:
			others = others || q > 0
		}
	}
	gzipOK = gzipQ > 0 && !others
	identityOK = identityQ > 0 || (identityQ < 0 && anyQ != 0)
	return gzipOK, identityOK
}

// contentType guesses a MIME type like http.ServeContent: by extension,
// else by sniffing the first 512 bytes.
func contentType(name string, file *os.File) (string, error) {
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		return t, nil
	}
	var buf [512]byte
	n, err := io.ReadFull(file, buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", err
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	return http.DetectContentType(buf[:n]), nil
}

// ServeUpload handles POST /files with a multipart or raw body.
func (f *Filesystem) ServeUpload(w http.ResponseWriter, r *http.Request) {
	files, err := f.upload(r)
	if err != nil {
		status := statusOf(err)
		if status >= 500 {
			f.log.Error("upload", "path", r.URL.Query().Get("path"), "err", err)
		}
		writeFilesError(w, status, err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(files)
}

func (f *Filesystem) upload(r *http.Request) ([]envdapi.EntryInfo, error) {
	u, err := f.filesUser(r, opWrite)
	if err != nil {
		return nil, err
	}
	md, err := metadataFromHeaders(r.Header)
	if err != nil {
		return nil, &httpError{status: http.StatusBadRequest, err: err}
	}
	mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, httpErrorf(http.StatusBadRequest, "invalid content type: %w", err)
	}
	switch mediaType {
	case "multipart/form-data":
		return f.uploadMultipart(r, u, md, params["boundary"])
	case "application/octet-stream":
		return f.uploadRaw(r, u, md)
	default:
		return nil, httpErrorf(http.StatusBadRequest, "unsupported content type %q", mediaType)
	}
}

func (f *Filesystem) uploadMultipart(r *http.Request, u *User, md map[string]string, boundary string) ([]envdapi.EntryInfo, error) {
	if boundary == "" {
		return nil, httpErrorf(http.StatusBadRequest, "multipart body without boundary")
	}
	queryPath := r.URL.Query().Get("path")
	mr := multipart.NewReader(r.Body, boundary)
	seen := map[string]bool{}
	var out []envdapi.EntryInfo
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, httpErrorf(http.StatusBadRequest, "malformed multipart body: %w", err)
		}
		if part.FormName() != "file" {
			part.Close()
			continue
		}
		target := queryPath
		if target == "" {
			target = rawFileName(part)
		}
		if target == "" {
			part.Close()
			return nil, httpErrorf(http.StatusBadRequest, "missing path: no path query and no filename in part")
		}
		p := f.st.ResolvePath(u, target)
		if seen[p] {
			part.Close()
			return nil, httpErrorf(http.StatusBadRequest, "path %s appears more than once in the upload", p)
		}
		seen[p] = true
		res, err := writeUpload(u, p, part, md)
		part.Close()
		if err != nil {
			return nil, err
		}
		out = append(out, res)
	}
	if len(out) == 0 {
		return nil, httpErrorf(http.StatusBadRequest, "no part named \"file\" in the upload")
	}
	return out, nil
}

// rawFileName returns a part's filename parameter verbatim, directories
// included (multipart.Part.FileName keeps only the base name).
func rawFileName(part *multipart.Part) string {
	_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return params["filename"]
}

func (f *Filesystem) uploadRaw(r *http.Request, u *User, md map[string]string) ([]envdapi.EntryInfo, error) {
	target := r.URL.Query().Get("path")
	if target == "" {
		return nil, httpErrorf(http.StatusBadRequest, "missing path query parameter")
	}
	var body io.Reader = r.Body
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		gz, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, httpErrorf(http.StatusBadRequest, "invalid gzip body: %w", err)
		}
		defer gz.Close()
		body = gz
	default:
		return nil, httpErrorf(http.StatusBadRequest, "unsupported content encoding %q", enc)
	}
	res, err := writeUpload(u, f.st.ResolvePath(u, target), body, md)
	if err != nil {
		return nil, err
	}
	return []envdapi.EntryInfo{res}, nil
}

// metadataFromHeaders collects X-Metadata-<key> headers (keys lower-cased);
// keys and values must be printable ASCII.
func metadataFromHeaders(h http.Header) (map[string]string, error) {
	const prefix = "x-metadata-"
	var md map[string]string
	for k, vals := range h {
		if len(k) <= len(prefix) || !strings.EqualFold(k[:len(prefix)], prefix) {
			continue
		}
		key := strings.ToLower(k[len(prefix):])
		val := strings.Join(vals, ",")
		if !printableASCII(key) || !printableASCII(val) {
			return nil, fmt.Errorf("metadata %q: keys and values must be printable ASCII", key)
		}
		if md == nil {
			md = map[string]string{}
		}
		md[key] = val
	}
	return md, nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// readErrReader remembers the error of the wrapped reader, to tell a broken
// request body (400) from a failing disk.
type readErrReader struct {
	r   io.Reader
	err error
}

func (e *readErrReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		e.err = err
	}
	return n, err
}

// writeUpload streams src into path p as user u: missing parents are
// created (owned by u), the file is created or truncated and chowned to u,
// then the metadata replaces the file's previous metadata.
func writeUpload(u *User, p string, src io.Reader, md map[string]string) (envdapi.EntryInfo, error) {
	var file *os.File
	err := runAs(u, func() error {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		var err error
		file, err = os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o666)
		return err
	})
	if errors.Is(err, syscall.EISDIR) {
		return envdapi.EntryInfo{}, httpErrorf(http.StatusBadRequest, "path %s is a directory", p)
	}
	if err != nil {
		return envdapi.EntryInfo{}, fmt.Errorf("open %s for writing: %w", p, err)
	}
	defer file.Close()
	if os.Geteuid() == 0 {
		// An existing file may belong to someone else; E2B hands it to the user.
		if err := file.Chown(int(u.UID), int(u.GID)); err != nil {
			return envdapi.EntryInfo{}, fmt.Errorf("chown %s: %w", p, err)
		}
	}
	body := &readErrReader{r: src}
	if _, err := io.Copy(file, body); err != nil {
		if body.err != nil {
			return envdapi.EntryInfo{}, httpErrorf(http.StatusBadRequest, "read upload body: %w", body.err)
		}
		return envdapi.EntryInfo{}, fmt.Errorf("write %s: %w", p, err)
	}
	// Even without metadata: an overwritten file must not keep the
	// metadata of its old contents.
	if err := replaceMetadata(file, md); err != nil {
		return envdapi.EntryInfo{}, fmt.Errorf("metadata of %s: %w", p, err)
	}
	if err := file.Close(); err != nil {
		return envdapi.EntryInfo{}, fmt.Errorf("close %s: %w", p, err)
	}
	return envdapi.EntryInfo{Path: p, Name: filepath.Base(p), Type: "file", Metadata: md}, nil
}
