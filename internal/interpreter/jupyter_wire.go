package interpreter

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Jupyter messaging protocol 5.3 framing: [idents…, "<IDS|MSG>", signature,
// header, parent_header, metadata, content, buffers…], signed with
// HMAC-SHA256 over the four JSON frames.

const (
	jupyterDelimiter = "<IDS|MSG>"
	jupyterVersion   = "5.3"
)

var errBadSignature = errors.New("jupyter: bad message signature")

type jupyterHeader struct {
	MsgID    string `json:"msg_id"`
	Session  string `json:"session"`
	Username string `json:"username"`
	Date     string `json:"date"`
	MsgType  string `json:"msg_type"`
	Version  string `json:"version"`
}

type jupyterMsg struct {
	Header   jupyterHeader
	Parent   jupyterHeader
	Metadata map[string]any
	Content  json.RawMessage
}

// time returns the header date, or now if it cannot be parsed.
func (m *jupyterMsg) time() time.Time {
	if t, err := time.Parse(time.RFC3339Nano, m.Header.Date); err == nil {
		return t
	}
	return time.Now()
}

type signer struct{ key []byte }

func (s signer) sign(frames ...[]byte) []byte {
	if len(s.key) == 0 {
		return nil
	}
	mac := hmac.New(sha256.New, s.key)
	for _, f := range frames {
		mac.Write(f)
	}
	sum := mac.Sum(nil)
	out := make([]byte, hex.EncodedLen(len(sum)))
	hex.Encode(out, sum)
	return out
}

// encode builds the frames of a new request message.
func (s signer) encode(session, msgType string, content any) (id string, frames [][]byte, err error) {
	id = newID()
	h := jupyterHeader{
		MsgID:    id,
		Session:  session,
		Username: "airlock",
		Date:     time.Now().UTC().Format(time.RFC3339Nano),
		MsgType:  msgType,
		Version:  jupyterVersion,
	}
	hb, err := json.Marshal(h)
	if err != nil {
		return "", nil, fmt.Errorf("encode header: %w", err)
	}
	cb, err := json.Marshal(content)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s content: %w", msgType, err)
	}
	parent, meta := []byte("{}"), []byte("{}")
	frames = [][]byte{[]byte(jupyterDelimiter), s.sign(hb, parent, meta, cb), hb, parent, meta, cb}
	return id, frames, nil
}

// decode parses and verifies a received multipart message.
func (s signer) decode(frames [][]byte) (*jupyterMsg, error) {
	i := 0
	for i < len(frames) && !bytes.Equal(frames[i], []byte(jupyterDelimiter)) {
		i++
	}
	if len(frames)-i < 6 {
		return nil, fmt.Errorf("jupyter: short message (%d frames)", len(frames))
	}
	sig, h, p, md, c := frames[i+1], frames[i+2], frames[i+3], frames[i+4], frames[i+5]
	if len(s.key) > 0 && !hmac.Equal(sig, s.sign(h, p, md, c)) {
		return nil, errBadSignature
	}
	m := &jupyterMsg{Content: json.RawMessage(c)}
	if err := json.Unmarshal(h, &m.Header); err != nil {
		return nil, fmt.Errorf("jupyter: header: %w", err)
	}
	// An empty parent is "{}"; a missing one decodes to zero values.
	if err := json.Unmarshal(p, &m.Parent); err != nil {
		return nil, fmt.Errorf("jupyter: parent header: %w", err)
	}
	_ = json.Unmarshal(md, &m.Metadata)
	return m, nil
}
