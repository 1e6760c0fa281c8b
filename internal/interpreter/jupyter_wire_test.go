package interpreter

import (
	"bytes"
	"errors"
	"testing"
)

func TestJupyterWireRoundTrip(t *testing.T) {
	s := signer{key: []byte("secret")}
	id, frames, err := s.encode("sess", "execute_request", map[string]any{"code": "1"})
	if err != nil {
		t.Fatal(err)
	}
	// Routers prefix identities; decode must skip them.
	frames = append([][]byte{[]byte("ident")}, frames...)
	m, err := s.decode(frames)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.MsgID != id || m.Header.MsgType != "execute_request" || m.Header.Session != "sess" ||
		m.Header.Version != jupyterVersion || !bytes.Equal(m.Content, []byte(`{"code":"1"}`)) {
		t.Errorf("decoded %+v", m)
	}

	tampered := append([][]byte(nil), frames...)
	tampered[len(tampered)-1] = []byte(`{"code":"2"}`)
	if _, err := s.decode(tampered); !errors.Is(err, errBadSignature) {
		t.Errorf("tampered message: %v, want errBadSignature", err)
	}
	if _, err := (signer{key: []byte("other")}).decode(frames); !errors.Is(err, errBadSignature) {
		t.Errorf("wrong key: %v, want errBadSignature", err)
	}
	if _, err := s.decode(frames[:4]); err == nil {
		t.Error("short message decoded")
	}
}
