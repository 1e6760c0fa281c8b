package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// BenchmarkPullFlatten pulls and flattens a ~100 MB image from a loopback
// registry, uncached each time, and reports its time against the baseline
// measured in the same run: GNU tar extracting the same gzipped layer
// blobs (from the page cache, no download). Run with
//
//	go test -run - -bench PullFlatten -benchtime 5x ./internal/ociimage/
func BenchmarkPullFlatten(b *testing.B) {
	const files, size = 400, 256 << 10 // 100 MiB in 2 layers
	rng := rand.New(rand.NewPCG(1, 2))
	var layers [2]bytes.Buffer
	for i := range files {
		tw := tar.NewWriter(&layers[i%2])
		data := make([]byte, size)
		for j := range data {
			data[j] = byte('a' + rng.IntN(16)) // text-like: gzip gets about 2:1
		}
		name := fmt.Sprintf("data/d%d/f%03d", i%7, i)
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			b.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			b.Fatal(err)
		}
		if err := tw.Flush(); err != nil { // no end marker: the buffers are concatenated entries
			b.Fatal(err)
		}
	}
	img := empty.Image
	var plain [2][]byte
	for i := range layers {
		tw := tar.NewWriter(&layers[i])
		if err := tw.Close(); err != nil {
			b.Fatal(err)
		}
		plain[i] = layers[i].Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(plain[i])), nil })
		if err != nil {
			b.Fatal(err)
		}
		if img, err = mutate.AppendLayers(img, l); err != nil {
			b.Fatal(err)
		}
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log0())))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	ref, err := name.ParseReference(host+"/bench/img:1", name.Insecure)
	if err != nil {
		b.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		b.Fatal(err)
	}
	ls, err := img.Layers()
	if err != nil {
		b.Fatal(err)
	}
	var tars []string
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			b.Fatal(err)
		}
		blob, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			b.Fatal(err)
		}
		p := filepath.Join(b.TempDir(), "layer.tar.gz")
		if err := os.WriteFile(p, blob, 0o644); err != nil {
			b.Fatal(err)
		}
		tars = append(tars, p)
	}

	var pull, untar time.Duration
	b.ResetTimer()
	for range b.N {
		dir := b.TempDir()
		t0 := time.Now()
		s := New(Config{Dir: dir, Insecure: []string{host}})
		if _, err := s.Pull(context.Background(), host+"/bench/img:1", nil, nil); err != nil {
			b.Fatal(err)
		}
		pull += time.Since(t0)
		b.StopTimer()
		out := filepath.Join(b.TempDir(), "x")
		if err := os.Mkdir(out, 0o755); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for _, tf := range tars {
			if o, err := exec.Command("tar", "-xzf", tf, "-C", out).CombinedOutput(); err != nil {
				b.Fatalf("tar: %v %s", err, o)
			}
		}
		untar += time.Since(t1)
		b.StartTimer()
	}
	b.ReportMetric(float64(pull.Milliseconds())/float64(b.N), "pull-ms/op")
	b.ReportMetric(float64(untar.Milliseconds())/float64(b.N), "tar-baseline-ms/op")
	b.ReportMetric(float64(pull)/float64(max(untar, 1)), "x-tar")
}
