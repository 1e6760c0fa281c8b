// Package httplimit bounds what one HTTP request may carry before anything
// else looks at it.
package httplimit

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// MaxHeaderBytes bounds a request's line and headers together.
const MaxHeaderBytes = 64 << 10

// HeaderBytes is the size of a request's line and headers, as received.
func HeaderBytes(r *http.Request) int {
	n := len(r.Method) + len(r.RequestURI) + len(r.Host)
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // ": " and CRLF
		}
	}
	return n
}

// Headers answers 431 with E2B's error body to requests whose headers are
// over MaxHeaderBytes, and passes the rest to next.
func Headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if HeaderBytes(r) > MaxHeaderBytes {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
			_ = json.NewEncoder(w).Encode(struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}{http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("request headers are larger than %d KiB", MaxHeaderBytes>>10)})
			return
		}
		next.ServeHTTP(w, r)
	})
}
