package envd

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// File operations named in /files URL signatures.
const (
	opRead  = "read"
	opWrite = "write"
)

var (
	errBadAccessToken   = errors.New("unauthorized access, please provide a valid access token or method signing if supported")
	errMissingSignature = errors.New("missing access token or signature")
	errBadSignature     = errors.New("invalid signature")
	errBadExpiration    = errors.New("invalid signature expiration")
	errSignatureExpired = errors.New("signature is already expired")
)

// fileSignature computes E2B's v1 URL signature. exp is the raw
// signature_expiration value; it is only part of the signed text when set.
func fileSignature(path, op, username, token, exp string) string {
	raw := path + ":" + op + ":" + username + ":" + token
	if exp != "" {
		raw += ":" + exp
	}
	sum := sha256.Sum256([]byte(raw))
	return "v1_" + base64.RawStdEncoding.EncodeToString(sum[:])
}

// authorizeFiles checks a /files request: without a configured access token
// everything passes; otherwise an X-Access-Token header must match, or, when
// there is none, a valid and unexpired URL signature for op must be present.
func (f *Filesystem) authorizeFiles(r *http.Request, op string, now time.Time) error {
	token := f.st.Config().AccessToken
	if token == "" {
		return nil
	}
	if r.Header.Get("X-Access-Token") != "" {
		if !f.st.TokenOK(r.Header) {
			return errBadAccessToken
		}
		return nil
	}
	q := r.URL.Query()
	sig := q.Get("signature")
	if sig == "" {
		return errMissingSignature
	}
	exp := q.Get("signature_expiration")
	want := fileSignature(q.Get("path"), op, q.Get("username"), token, exp)
	if subtle.ConstantTimeCompare([]byte(sig), []byte(want)) != 1 {
		return errBadSignature
	}
	if exp != "" {
		n, err := strconv.ParseInt(exp, 10, 64)
		if err != nil {
			return errBadExpiration
		}
		if n < now.Unix() {
			return errSignatureExpired
		}
	}
	return nil
}
