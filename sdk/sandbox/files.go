package sandbox

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/filesystem"
	"github.com/airlock-sandbox/airlock/sdk/envdapi"
)

// Files reads, writes and manages files in the sandbox. Relative paths
// resolve against the user's home directory.
type Files struct {
	s *Sandbox
}

// FileType is the kind of a filesystem entry.
type FileType string

// File types.
const (
	TypeFile    FileType = "file"
	TypeDir     FileType = "dir"
	TypeSymlink FileType = "symlink"
)

// EntryInfo describes a file or directory.
type EntryInfo struct {
	Name          string
	Type          FileType
	Path          string
	Size          int64
	Mode          os.FileMode // permission bits
	Permissions   string      // e.g. "-rw-r--r--"
	Owner         string
	Group         string
	ModifiedTime  time.Time
	SymlinkTarget string
	Metadata      map[string]string
}

// WriteInfo describes a written file.
type WriteInfo struct {
	Name     string
	Type     FileType
	Path     string
	Metadata map[string]string
}

// FileOptions are the options shared by file calls.
type FileOptions struct {
	// User selects the Linux user (and home for relative paths).
	User string
}

// ReadOptions configures Read, ReadString and ReadStream.
type ReadOptions struct {
	User string
	// Gzip asks envd to compress the transfer.
	Gzip bool
}

// WriteOptions configures writes.
type WriteOptions struct {
	User string
	// Gzip compresses the upload (streams only; envd >= 0.5.7).
	Gzip bool
	// Metadata is stored with every written file (envd >= 0.6.2).
	Metadata map[string]string
}

// WriteEntry is one file of WriteMany; set Data or Reader.
type WriteEntry struct {
	Path   string
	Data   []byte
	Reader io.Reader
}

func (o *FileOptions) user() string {
	if o == nil {
		return ""
	}
	return o.User
}

// Read returns a file's content.
func (f *Files) Read(ctx context.Context, path string, opts *ReadOptions) ([]byte, error) {
	ctx, cancel := f.s.unaryCtx(ctx)
	defer cancel()
	rc, err := f.ReadStream(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, transportError(err)
	}
	return b, nil
}

// ReadString returns a file's content as text.
func (f *Files) ReadString(ctx context.Context, path string, opts *ReadOptions) (string, error) {
	b, err := f.Read(ctx, path, opts)
	return string(b), err
}

// ReadStream opens a file for streaming; the caller must close it. No
// request timeout applies: ctx bounds the whole transfer.
func (f *Files) ReadStream(ctx context.Context, path string, opts *ReadOptions) (io.ReadCloser, error) {
	if opts == nil {
		opts = &ReadOptions{}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.filesURL(path, opts.User), nil)
	if err != nil {
		return nil, newError(ErrInvalidArgument, 0, "", err.Error(), err)
	}
	if opts.Gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := f.s.doEnvd(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, envdHTTPError(resp)
	}
	if resp.Header.Get("Content-Encoding") == "gzip" && !resp.Uncompressed {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			resp.Body.Close()
			return nil, newError(ErrSandbox, 0, "", "gzip response: "+err.Error(), err)
		}
		return &gzipBody{Reader: zr, body: resp.Body}, nil
	}
	return resp.Body, nil
}

type gzipBody struct {
	*gzip.Reader
	body io.Closer
}

func (g *gzipBody) Close() error {
	_ = g.Reader.Close()
	return g.body.Close()
}

func (f *Files) filesURL(path, user string) string {
	q := url.Values{}
	if path != "" {
		q.Set("path", path)
	}
	if u := f.s.effectiveUser(user); u != "" {
		q.Set("username", u)
	}
	return f.s.envdURL + "/files?" + q.Encode()
}

// Write writes data to path (creating parent directories) as one
// multipart upload, like the official SDKs do for in-memory data.
func (f *Files) Write(ctx context.Context, path string, data []byte, opts *WriteOptions) (*WriteInfo, error) {
	ctx, cancel := f.s.unaryCtx(ctx)
	defer cancel()
	infos, err := f.upload(ctx, path, []WriteEntry{{Path: path, Data: data}}, opts)
	if err != nil {
		return nil, err
	}
	return &infos[0], nil
}

// WriteString writes text to path.
func (f *Files) WriteString(ctx context.Context, path, text string, opts *WriteOptions) (*WriteInfo, error) {
	return f.Write(ctx, path, []byte(text), opts)
}

// WriteFrom streams r to path as application/octet-stream without
// buffering it. No request timeout applies: ctx bounds the transfer.
func (f *Files) WriteFrom(ctx context.Context, path string, r io.Reader, opts *WriteOptions) (*WriteInfo, error) {
	if opts == nil {
		opts = &WriteOptions{}
	}
	if versionLess(f.s.EnvdVersion, "0.5.7") {
		infos, err := f.upload(ctx, path, []WriteEntry{{Path: path, Reader: r}}, opts)
		if err != nil {
			return nil, err
		}
		return &infos[0], nil
	}
	body := r
	if opts.Gzip {
		pr, pw := io.Pipe()
		go func() {
			zw := gzip.NewWriter(pw)
			_, err := io.Copy(zw, r)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
			pw.CloseWithError(err)
		}()
		defer pr.Close()
		body = pr
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.filesURL(path, opts.User), body)
	if err != nil {
		return nil, newError(ErrInvalidArgument, 0, "", err.Error(), err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if opts.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	infos, err := f.sendUpload(req, opts)
	if err != nil {
		return nil, err
	}
	return &infos[0], nil
}

// WriteMany writes several files in one multipart request.
func (f *Files) WriteMany(ctx context.Context, files []WriteEntry, opts *WriteOptions) ([]WriteInfo, error) {
	if len(files) == 0 {
		return nil, nil
	}
	return f.upload(ctx, "", files, opts)
}

// upload streams a multipart body with one "file" part per entry; the
// part's filename is the full path (envd uses it when path is "").
func (f *Files) upload(ctx context.Context, path string, files []WriteEntry, opts *WriteOptions) ([]WriteInfo, error) {
	if opts == nil {
		opts = &WriteOptions{}
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		pw.CloseWithError(writeParts(mw, files))
	}()
	defer pr.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.filesURL(path, opts.User), pr)
	if err != nil {
		return nil, newError(ErrInvalidArgument, 0, "", err.Error(), err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return f.sendUpload(req, opts)
}

func writeParts(mw *multipart.Writer, files []WriteEntry) error {
	for _, e := range files {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, e.Path))
		h.Set("Content-Type", "application/octet-stream")
		w, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		r := e.Reader
		if r == nil {
			r = bytes.NewReader(e.Data)
		}
		if _, err := io.Copy(w, r); err != nil {
			return err
		}
	}
	return mw.Close()
}

func (f *Files) sendUpload(req *http.Request, opts *WriteOptions) ([]WriteInfo, error) {
	for k, v := range opts.Metadata {
		req.Header.Set("X-Metadata-"+k, v)
	}
	resp, err := f.s.doEnvd(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, envdHTTPError(resp)
	}
	var entries []envdapi.EntryInfo
	if err := json.NewDecoder(resp.Body).Decode(&entries); err != nil {
		return nil, newError(ErrSandbox, resp.StatusCode, "", "decode upload response: "+err.Error(), err)
	}
	if len(entries) == 0 {
		return nil, newError(ErrSandbox, resp.StatusCode, "", "expected to receive information about written file", nil)
	}
	infos := make([]WriteInfo, len(entries))
	for i, e := range entries {
		infos[i] = WriteInfo{Name: e.Name, Type: FileType(e.Type), Path: e.Path}
		if len(e.Metadata) > 0 {
			infos[i].Metadata = e.Metadata
		}
	}
	return infos, nil
}

// ListDirOptions configures List.
type ListDirOptions struct {
	User string
	// Depth of the walk; 0 means 1 (only direct children).
	Depth uint32
}

// List lists a directory.
func (f *Files) List(ctx context.Context, path string, opts *ListDirOptions) ([]EntryInfo, error) {
	if opts == nil {
		opts = &ListDirOptions{}
	}
	depth := opts.Depth
	if depth == 0 {
		depth = 1
	}
	ctx, cancel := f.s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&filesystem.ListDirRequest{Path: path, Depth: depth})
	f.s.rpcHeaders(req.Header(), opts.User, false)
	resp, err := f.s.fs.ListDir(ctx, req)
	if err != nil {
		return nil, rpcError(err)
	}
	out := make([]EntryInfo, 0, len(resp.Msg.GetEntries()))
	for _, e := range resp.Msg.GetEntries() {
		if e.GetType() == filesystem.FileType_FILE_TYPE_UNSPECIFIED {
			continue // dangling symlinks and the like, hidden like the SDKs do
		}
		out = append(out, entryFromProto(e))
	}
	return out, nil
}

// Exists reports whether path exists.
func (f *Files) Exists(ctx context.Context, path string, opts *FileOptions) (bool, error) {
	_, err := f.stat(ctx, path, opts.user())
	if isCode(err, connect.CodeNotFound) {
		return false, nil
	}
	if err != nil {
		return false, rpcError(err)
	}
	return true, nil
}

// GetInfo returns information about path.
func (f *Files) GetInfo(ctx context.Context, path string, opts *FileOptions) (*EntryInfo, error) {
	e, err := f.stat(ctx, path, opts.user())
	if err != nil {
		return nil, rpcError(err)
	}
	info := entryFromProto(e)
	return &info, nil
}

func (f *Files) stat(ctx context.Context, path, user string) (*filesystem.EntryInfo, error) {
	ctx, cancel := f.s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&filesystem.StatRequest{Path: path})
	f.s.rpcHeaders(req.Header(), user, false)
	resp, err := f.s.fs.Stat(ctx, req)
	if err != nil {
		return nil, err
	}
	return resp.Msg.GetEntry(), nil
}

// Remove removes a file or directory tree; a missing path is not an error.
func (f *Files) Remove(ctx context.Context, path string, opts *FileOptions) error {
	ctx, cancel := f.s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&filesystem.RemoveRequest{Path: path})
	f.s.rpcHeaders(req.Header(), opts.user(), false)
	_, err := f.s.fs.Remove(ctx, req)
	return rpcError(err)
}

// Rename moves oldPath to newPath (creating parents) and returns the
// new entry.
func (f *Files) Rename(ctx context.Context, oldPath, newPath string, opts *FileOptions) (*EntryInfo, error) {
	ctx, cancel := f.s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&filesystem.MoveRequest{Source: oldPath, Destination: newPath})
	f.s.rpcHeaders(req.Header(), opts.user(), false)
	resp, err := f.s.fs.Move(ctx, req)
	if err != nil {
		return nil, rpcError(err)
	}
	info := entryFromProto(resp.Msg.GetEntry())
	return &info, nil
}

// MakeDir creates a directory and its parents; false means it already
// existed.
func (f *Files) MakeDir(ctx context.Context, path string, opts *FileOptions) (bool, error) {
	ctx, cancel := f.s.unaryCtx(ctx)
	defer cancel()
	req := connect.NewRequest(&filesystem.MakeDirRequest{Path: path})
	f.s.rpcHeaders(req.Header(), opts.user(), false)
	_, err := f.s.fs.MakeDir(ctx, req)
	if isCode(err, connect.CodeAlreadyExists) {
		return false, nil
	}
	if err != nil {
		return false, rpcError(err)
	}
	return true, nil
}

func fileType(t filesystem.FileType) FileType {
	switch t {
	case filesystem.FileType_FILE_TYPE_FILE:
		return TypeFile
	case filesystem.FileType_FILE_TYPE_DIRECTORY:
		return TypeDir
	case filesystem.FileType_FILE_TYPE_SYMLINK:
		return TypeSymlink
	default:
		return ""
	}
}

func entryFromProto(e *filesystem.EntryInfo) EntryInfo {
	info := EntryInfo{
		Name:          e.GetName(),
		Type:          fileType(e.GetType()),
		Path:          e.GetPath(),
		Size:          e.GetSize(),
		Mode:          os.FileMode(e.GetMode()),
		Permissions:   e.GetPermissions(),
		Owner:         e.GetOwner(),
		Group:         e.GetGroup(),
		SymlinkTarget: e.GetSymlinkTarget(),
		Metadata:      e.GetMetadata(),
	}
	if e.GetModifiedTime() != nil {
		info.ModifiedTime = e.GetModifiedTime().AsTime()
	}
	if len(info.Metadata) == 0 {
		info.Metadata = nil
	}
	return info
}
