package sandbox_test

import (
	"fmt"
	"io"
	"mime/multipart"
	"net/textproto"
	"testing"
)

// multipartBody writes one "file" part the way a browser form would.
func multipartBody(t *testing.T, w io.Writer, filename, content string) string {
	t.Helper()
	mw := multipart.NewWriter(w)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, filename))
	pw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(pw, content); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType()
}
