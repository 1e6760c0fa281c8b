package sandbox

import (
	"strings"
	"unicode/utf8"
)

// utf8Decoder turns a byte stream into valid UTF-8 strings, holding back a
// sequence split across chunks; invalid bytes become U+FFFD.
type utf8Decoder struct {
	pending []byte
}

func (d *utf8Decoder) decode(b []byte) string {
	buf := append(d.pending, b...)
	cut := len(buf) - incompleteTail(buf)
	d.pending = append([]byte(nil), buf[cut:]...)
	return strings.ToValidUTF8(string(buf[:cut]), "\uFFFD")
}

// flush returns whatever is held back at the end of the stream.
func (d *utf8Decoder) flush() string {
	s := strings.ToValidUTF8(string(d.pending), "\uFFFD")
	d.pending = nil
	return s
}

// incompleteTail is the length of a trailing, not yet complete UTF-8
// sequence (0 if the buffer ends on a boundary).
func incompleteTail(b []byte) int {
	for i := 1; i <= utf8.UTFMax-1 && i <= len(b); i++ {
		c := b[len(b)-i]
		if c < 0x80 {
			return 0 // ASCII: boundary
		}
		if c >= 0xC0 { // leading byte
			need := 0
			switch {
			case c >= 0xF0:
				need = 4
			case c >= 0xE0:
				need = 3
			default:
				need = 2
			}
			if need > i {
				return i
			}
			return 0
		}
	}
	return 0
}
