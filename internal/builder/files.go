package builder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

// COPY sources are uploaded once per team and content hash, as E2B's
// SDKs expect: a GET says whether the server has them and, if not, where
// to PUT them. The PUT carries no API key, so its URL holds a signed,
// expiring token for exactly that team, template and hash.

// uploadTTL is how long an upload link works (the SDKs' upload timeout
// is an hour).
const uploadTTL = 2 * time.Hour

var (
	keyOnce sync.Once
	signKey []byte
)

func (s *Service) key() []byte {
	keyOnce.Do(func() {
		signKey = make([]byte, 32)
		_, _ = rand.Read(signKey)
	})
	return signKey
}

func (s *Service) filesDir(team string) string {
	return filepath.Join(s.cfg.DataDir, "build-files", teamDir(team))
}

// teamDir is a team ID as one safe path element.
func teamDir(team string) string {
	sum := sha256.Sum256([]byte(team))
	return hex.EncodeToString(sum[:8])
}

// FileLink says whether the team has the files of hash and, if not, the
// token of an upload link.
func (s *Service) FileLink(ctx context.Context, team, templateID, hash string) (present bool, token string, err error) {
	if !hashPattern.MatchString(hash) {
		return false, "", errdefs.Newf(errdefs.ErrInvalid, "files hash %q is not 64 lowercase hex digits", hash)
	}
	t, err := s.cfg.Store.GetTemplate(ctx, templateID)
	if err != nil || t.TeamID != team {
		return false, "", errdefs.Newf(errdefs.ErrNotFound, "template %s not found", templateID)
	}
	if _, err := os.Stat(filepath.Join(s.filesDir(team), hash)); err == nil {
		return true, "", nil
	}
	exp := strconv.FormatInt(time.Now().Add(uploadTTL).Unix(), 10)
	return false, exp + "." + s.sign(team, templateID, hash, exp), nil
}

func (s *Service) sign(team, templateID, hash, exp string) string {
	m := hmac.New(sha256.New, s.key())
	fmt.Fprintf(m, "%s\x00%s\x00%s\x00%s", team, templateID, hash, exp)
	return hex.EncodeToString(m.Sum(nil))
}

// ErrBadUpload means an upload was not a tar archive.
var ErrBadUpload = errors.New("the upload is not a tar archive (plain or gzip)")

// Upload stores the files of hash, sent with a token from FileLink.
func (s *Service) Upload(ctx context.Context, templateID, hash, token string, body io.Reader, size int64) error {
	if !hashPattern.MatchString(hash) {
		return errdefs.Newf(errdefs.ErrInvalid, "files hash %q is not 64 lowercase hex digits", hash)
	}
	t, err := s.cfg.Store.GetTemplate(ctx, templateID)
	if err != nil {
		return errdefs.Newf(errdefs.ErrNotFound, "template %s not found", templateID)
	}
	exp, sig, _ := strings.Cut(token, ".")
	unix, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() > unix || !hmac.Equal([]byte(sig), []byte(s.sign(t.TeamID, templateID, hash, exp))) {
		return errdefs.Newf(errdefs.ErrForbidden, "the upload link is invalid or expired: ask for a new one")
	}
	if size > s.cfg.MaxUpload {
		return errdefs.Newf(errdefs.ErrTooLarge, "an upload is at most %d bytes", s.cfg.MaxUpload)
	}
	dir := s.filesDir(t.TeamID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".upload-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	defer tmp.Close()
	br := bufio.NewReaderSize(io.LimitReader(body, s.cfg.MaxUpload+1), 64<<10)
	head, _ := br.Peek(512)
	if !isTar(head) {
		return errdefs.Mark(errdefs.ErrInvalid, ErrBadUpload)
	}
	n, err := io.Copy(tmp, br)
	if err != nil {
		return fmt.Errorf("receive upload: %w", err)
	}
	if n > s.cfg.MaxUpload {
		return errdefs.Newf(errdefs.ErrTooLarge, "an upload is at most %d bytes", s.cfg.MaxUpload)
	}
	if size >= 0 && n != size {
		return errdefs.Newf(errdefs.ErrInvalid, "the upload ended after %d of %d bytes", n, size)
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, hash))
}

// isTar says whether head starts a gzip stream or a tar archive.
func isTar(head []byte) bool {
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		return true
	}
	if len(head) >= 262 && bytes.Equal(head[257:262], []byte("ustar")) {
		return true
	}
	// An archive of nothing is two zero blocks.
	return len(head) == 512 && bytes.Count(head, []byte{0}) == 512
}
