package envd

import (
	"net/http"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/filesystem/filesystemconnect"
)

// mountFilesystem serves the filesystem Connect service (token required)
// and /files, which checks a token or a URL signature itself.
func (s *Server) mountFilesystem(mux *http.ServeMux) {
	fs := NewFilesystem(s.state, s.log.With("svc", "filesystem"))
	s.closers = append(s.closers, fs.Close)
	path, h := filesystemconnect.NewFilesystemHandler(fs, connect.WithCompressMinBytes(1024), connect.WithReadMaxBytes(maxRPCMessage))
	mux.Handle(path, s.requireToken(h))
	mux.HandleFunc("GET /files", fs.ServeDownload)
	mux.HandleFunc("POST /files", fs.ServeUpload)
}
