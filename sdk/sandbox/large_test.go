package sandbox_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

const (
	largeSize = 100 << 20
	// Streaming must not hold the file: both bounds are far below 100 MB.
	maxHeapGrowth = 32 << 20
	maxRSSGrowth  = 64 << 20
)

// memWatch samples the Go heap and the process' peak RSS while running.
type memWatch struct {
	stop     chan struct{}
	wg       sync.WaitGroup
	baseHeap uint64
	peakHeap uint64
	baseRSS  int64
}

func startMemWatch(t *testing.T) *memWatch {
	t.Helper()
	runtime.GC()
	// Reset VmHWM so the peak below belongs to this test alone.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset peak RSS: %v", err)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	w := &memWatch{stop: make(chan struct{}), baseHeap: ms.HeapInuse, peakHeap: ms.HeapInuse, baseRSS: procStatusKB(t, "VmHWM") << 10}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				w.peakHeap = max(w.peakHeap, ms.HeapInuse)
			}
		}
	}()
	return w
}

func (w *memWatch) check(t *testing.T, what string) {
	t.Helper()
	close(w.stop)
	w.wg.Wait()
	heap := int64(w.peakHeap) - int64(w.baseHeap)
	rss := procStatusKB(t, "VmHWM")<<10 - w.baseRSS
	t.Logf("%s: peak heap growth %d MiB, peak RSS growth %d MiB", what, heap>>20, rss>>20)
	if heap > maxHeapGrowth || rss > maxRSSGrowth {
		t.Fatalf("%s of %d MiB used too much memory: heap +%d MiB (max %d), RSS +%d MiB (max %d)",
			what, largeSize>>20, heap>>20, maxHeapGrowth>>20, rss>>20, maxRSSGrowth>>20)
	}
}

func procStatusKB(t *testing.T, field string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}

func TestLargeFileStreaming(t *testing.T) {
	ctx := ctxT(t, 5*time.Minute)
	sbx := newSandbox(t, sandbox.CreateOptions{})
	const path = "/home/user/large.bin"

	// Upload from an io.Reader that generates the data on the fly.
	src := io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), largeSize)
	sent := sha256.New()
	mw := startMemWatch(t)
	wi, err := sbx.Files.WriteFrom(ctx, path, io.TeeReader(src, sent), nil)
	if err != nil {
		t.Fatal(err)
	}
	mw.check(t, "upload")
	want := hex.EncodeToString(sent.Sum(nil))
	if wi.Path != path {
		t.Fatalf("write info = %+v", wi)
	}
	out := run(t, sbx, "stat -c %s "+path+"; sha256sum "+path)
	if exp := strconv.Itoa(largeSize) + "\n" + want + "  " + path + "\n"; out != exp {
		t.Fatalf("in sandbox: %q, want %q", out, exp)
	}

	// Download into an io.Writer.
	mw = startMemWatch(t)
	rc, err := sbx.Files.ReadStream(ctx, path, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, rc)
	rc.Close()
	if err != nil {
		running, rerr := sbx.IsRunning(ctx)
		t.Fatalf("download failed after %d bytes: %v (sandbox running: %v, %v)", n, err, running, rerr)
	}
	mw.check(t, "download")
	if n != largeSize || hex.EncodeToString(got.Sum(nil)) != want {
		t.Fatalf("downloaded %d bytes with sha256 %x, want %d bytes %s", n, got.Sum(nil), largeSize, want)
	}
}
