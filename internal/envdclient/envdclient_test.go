package envdclient

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestWaitSignalled covers the ready pipe and its fallback to polling.
func TestWaitSignalled(t *testing.T) {
	// A /health server on a loopback port, for the fallback cases.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	healthyPort := ln.Addr().(*net.TCPAddr).Port
	// A port nothing listens on.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	dead.Close()

	tests := []struct {
		name    string
		port    int
		writer  func(w *os.File) // what the sandbox does with its end
		cancel  bool
		wantErr string
	}{
		{name: "signalled, never polled", port: deadPort, writer: func(w *os.File) { w.Write([]byte("ready\n")); w.Close() }},
		{name: "closed silently, health answers", port: healthyPort, writer: func(w *os.File) { w.Close() }},
		{name: "closed silently, nothing listens", port: deadPort, writer: func(w *os.File) { w.Close() }, wantErr: "deadline exceeded"},
		{name: "garbage, health answers", port: healthyPort, writer: func(w *os.File) { w.Write([]byte("??")); w.Close() }},
		{name: "silent and open", port: healthyPort, writer: func(w *os.File) { t.Cleanup(func() { w.Close() }) }, wantErr: "no ready signal"},
		{name: "cancelled", port: healthyPort, writer: func(w *os.File) { t.Cleanup(func() { w.Close() }) }, cancel: true, wantErr: "context canceled"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, w, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			c := New(tc.port)
			defer c.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.cancel {
				time.AfterFunc(50*time.Millisecond, cancel)
			}
			tc.writer(w)
			err = c.WaitSignalled(ctx, r, netip.MustParseAddr("127.0.0.1"), 300*time.Millisecond)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("err = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
			}
			if tc.cancel && !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
		})
	}
}
