package sandbox_test

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// TestWireHeaders checks the headers the official SDKs send to envd,
// against a fake envd that records them.
func TestWireHeaders(t *testing.T) {
	var mu sync.Mutex
	got := map[string]http.Header{}
	envd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got[r.URL.Path] = r.Header.Clone()
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":"not_found","message":"nope"}`))
	}))
	defer envd.Close()
	api := fakeAPI(t, "")
	sbx, err := sandbox.NewClient(sandbox.WithAPIURL(api.URL), sandbox.WithSandboxURL(envd.URL),
		sandbox.WithAPIKey("e2b_00"), localHTTP()).Connect(context.Background(), "sbx1", 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, _ = sbx.Commands.Run(ctx, "true", &sandbox.RunOptions{User: "root", Timeout: 5 * time.Second})
	_, _ = sbx.Files.Exists(ctx, "/x", nil)
	_, _ = sbx.Files.Read(ctx, "/x", nil)

	start := got["/process.Process/Start"]
	for k, want := range map[string]string{
		"E2b-Sandbox-Id":           "sbx1",
		"E2b-Sandbox-Port":         "49983",
		"X-Access-Token":           "tok",
		"Keepalive-Ping-Interval":  "50",
		"Connect-Protocol-Version": "1",
		"Content-Type":             "application/connect+json",
		"Authorization":            "Basic " + base64.StdEncoding.EncodeToString([]byte("root:")),
	} {
		if v := start.Get(k); v != want {
			t.Errorf("Start %s = %q, want %q", k, v, want)
		}
	}
	if ms := start.Get("Connect-Timeout-Ms"); ms == "" || len(ms) > 4 {
		t.Errorf("Start Connect-Timeout-Ms = %q, want <= 5000", ms)
	}
	stat := got["/filesystem.Filesystem/Stat"]
	if stat.Get("Content-Type") != "application/json" || stat.Get("Authorization") != "" || stat.Get("X-Access-Token") != "tok" {
		t.Errorf("Stat headers = %v", stat)
	}
	if files := got["/files"]; files.Get("X-Access-Token") != "tok" || files.Get("E2b-Sandbox-Id") != "sbx1" {
		t.Errorf("/files headers = %v", files)
	}
}
