package integration

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestParallelTransfers soaks the gateway with large uploads and downloads
// in parallel, to several sandboxes at once, while another sandbox burns
// CPU: every byte must arrive (size and SHA-256 checked on both ends), and
// no stream may end early.
func TestParallelTransfers(t *testing.T) {
	s := startServer(t, runtimeRunc, "")
	busy := s.create(t, map[string]any{"timeout": 300})
	defer busy.kill(t)
	// Load on the host's 2 cores while the transfers run.
	// (Output to /dev/null: envd drains a command's pipes, which background
	// jobs would otherwise hold open.)
	busy.run(t, "for i in 1 2; do timeout 120 sh -c 'while :; do :; done' >/dev/null 2>&1 & done", 30*time.Second)

	const size = 48 << 20
	boxes := []*sandbox{s.create(t, map[string]any{"timeout": 300}), s.create(t, map[string]any{"timeout": 300})}
	want := make([]string, len(boxes))
	for i, sb := range boxes {
		defer sb.kill(t)
		// A file made in the sandbox, for downloads.
		out := sb.run(t, fmt.Sprintf("head -c %d /dev/urandom > /tmp/blob && sha256sum /tmp/blob", size), 60*time.Second).stdout
		want[i], _, _ = strings.Cut(out, " ")
	}

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for round := range 5 {
		for i, sb := range boxes {
			for range 3 {
				wg.Go(func() {
					if err := download(sb, "/tmp/blob", size, want[i]); err != nil {
						errs <- fmt.Errorf("round %d download from %s: %w", round, sb.ID, err)
					}
				})
			}
			wg.Go(func() {
				if err := uploadAndCheck(sb, fmt.Sprintf("/tmp/up-%d", round), 24<<20); err != nil {
					errs <- fmt.Errorf("round %d upload to %s: %w", round, sb.ID, err)
				}
			})
		}
		wg.Wait()
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func fileRequest(sb *sandbox, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequest(method, "http://"+sb.s.addr+"/files?path="+url.QueryEscape(path)+"&username=user", body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("E2b-Sandbox-Id", sb.ID)
	req.Header.Set("E2b-Sandbox-Port", "49983")
	req.Header.Set("X-Access-Token", sb.Token)
	return req, nil
}

// download reads path through the gateway and checks its size and hash.
func download(sb *sandbox, path string, size int64, sum string) error {
	req, err := fileRequest(sb, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return fmt.Errorf("after %d of %d bytes: %w", n, size, err)
	}
	if n != size || hex.EncodeToString(h.Sum(nil)) != sum {
		return fmt.Errorf("got %d bytes with sha256 %x, want %d bytes with %s", n, h.Sum(nil), size, sum)
	}
	return nil
}

// uploadAndCheck writes random bytes to path and compares the sandbox's hash.
func uploadAndCheck(sb *sandbox, path string, size int) error {
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		return err
	}
	req, err := fileRequest(sb, http.MethodPost, path, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	res, err := sb.tryRun("sha256sum "+path+" && rm "+path, "", 60*time.Second)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	if got, _, _ := strings.Cut(res.stdout, " "); got != hex.EncodeToString(sum[:]) {
		return fmt.Errorf("sandbox has sha256 %q, want %x", got, sum)
	}
	return nil
}
