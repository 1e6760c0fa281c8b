package sandbox

import (
	"crypto/sha256"
	"encoding/base64"
	"net/url"
	"strconv"
	"time"
)

// URLOptions configures UploadURL and DownloadURL.
type URLOptions struct {
	User string
	// Expiration limits the signature's validity (0 = no expiry).
	Expiration time.Duration
}

// UploadURL returns a URL that accepts a multipart POST of a file to path
// without any other credentials; path "" lets the part's filename decide.
func (s *Sandbox) UploadURL(path string, opts *URLOptions) (string, error) {
	return s.fileURL(path, "write", opts)
}

// DownloadURL returns a URL that serves the file at path to anyone.
func (s *Sandbox) DownloadURL(path string, opts *URLOptions) (string, error) {
	return s.fileURL(path, "read", opts)
}

func (s *Sandbox) fileURL(path, op string, opts *URLOptions) (string, error) {
	if opts == nil {
		opts = &URLOptions{}
	}
	if opts.Expiration != 0 && s.accessToken == "" {
		return "", newError(ErrInvalidArgument, 0, "", "signature expiration needs a secured sandbox", nil)
	}
	user := s.effectiveUser(opts.User)
	q := url.Values{}
	if path != "" {
		q.Set("path", path)
	}
	if user != "" {
		q.Set("username", user)
	}
	if s.accessToken != "" {
		var exp int64
		if opts.Expiration > 0 {
			exp = time.Now().Add(opts.Expiration).Unix()
			q.Set("signature_expiration", strconv.FormatInt(exp, 10))
		}
		q.Set("signature", FileSignature(path, op, user, s.accessToken, exp))
	}
	base := s.client.cfg.directEnvdURL(s.ID, s.Domain)
	return base + "/files?" + q.Encode(), nil
}

// FileSignature computes envd's v1 file URL signature for operation
// "read" or "write"; expiration 0 means none.
func FileSignature(path, operation, user, accessToken string, expiration int64) string {
	raw := path + ":" + operation + ":" + user + ":" + accessToken
	if expiration != 0 {
		raw += ":" + strconv.FormatInt(expiration, 10)
	}
	sum := sha256.Sum256([]byte(raw))
	return "v1_" + base64.RawStdEncoding.EncodeToString(sum[:])
}
