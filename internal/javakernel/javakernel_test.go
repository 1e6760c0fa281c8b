package javakernel

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

func TestJarPath(t *testing.T) {
	j := Jar{Group: "org.dflib.jjava", Artifact: "jjava-jupyter", Version: "1.0-a6"}
	if got, want := j.Path(), "org/dflib/jjava/jjava-jupyter/1.0-a6/jjava-jupyter-1.0-a6.jar"; got != want {
		t.Errorf("Path = %q, want %q", got, want)
	}
}

// A repository that serves other bytes than the pinned ones is refused,
// and nothing is left in the cache.
func TestFetchRefusesWrongChecksum(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("not the jar"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	if _, err := Fetch(context.Background(), dir, srv.URL); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Fetch = %v, want ErrChecksum", err)
	}
	if hits.Load() == 0 {
		t.Fatal("the repository was not asked")
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 0 {
		t.Errorf("cache holds %v after a refused download", left)
	}
}

// A jar the repository does not have is an error naming its status.
func TestFetchReportsStatus(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := Fetch(context.Background(), t.TempDir(), srv.URL)
	if err == nil || errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "404") {
		t.Fatalf("Fetch from a repository without the jars = %v", err)
	}
}
