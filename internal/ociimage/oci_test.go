package ociimage

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	stdlog "log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

type ent struct {
	name, body, link string
	typ              byte
	mode             int64
	uid              int
}

func layer(t *testing.T, ents ...ent) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.uid, Linkname: e.link, ModTime: time.Unix(1700000000, 0)}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testImage(t *testing.T) v1.Image {
	t.Helper()
	reg := func(name, body string, mode int64, uid int) ent {
		return ent{name: name, body: body, typ: tar.TypeReg, mode: mode, uid: uid}
	}
	dir := func(name string, mode int64) ent { return ent{name: name, typ: tar.TypeDir, mode: mode} }
	lower := layer(t,
		dir("etc", 0o755), reg("etc/os-release", "ID=test\n", 0o644, 0),
		dir("usr/bin", 0o755), reg("usr/bin/su", "su", 0o4755, 0), ent{name: "bin", typ: tar.TypeSymlink, link: "usr/bin"},
		reg("gone.txt", "deleted above", 0o644, 0),
		dir("opaque", 0o755), reg("opaque/old", "hidden by the opaque dir", 0o644, 0),
		reg("home/app/data", "app data", 0o600, 1234),
		ent{name: "dev/null", typ: tar.TypeChar, mode: 0o666},
	)
	upper := layer(t,
		reg(".wh.gone.txt", "", 0o644, 0),
		dir("opaque", 0o755), reg("opaque/.wh..wh..opq", "", 0o644, 0), reg("opaque/new", "new", 0o644, 0),
		ent{name: "usr/bin/su-link", typ: tar.TypeLink, link: "usr/bin/su"},
		// Hostile: symlinks out of the tree, and entries through them.
		ent{name: "escape", typ: tar.TypeSymlink, link: "../../../../../tmp"},
		reg("escape/airlock-oci-escaped", "must not leave the tree", 0o644, 0),
		ent{name: "abs", typ: tar.TypeSymlink, link: "/"},
		reg("abs/airlock-oci-abs", "must not leave the tree", 0o644, 0),
	)
	img, err := mutate.AppendLayers(empty.Image, lower, upper)
	if err != nil {
		t.Fatal(err)
	}
	img, err = mutate.Config(img, v1.Config{Env: []string{"PATH=/usr/bin", "APP=1"}, WorkingDir: "/home/app", User: "app", Cmd: []string{"/bin/app"}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// serve runs a registry on loopback with img at repo:tag; a handler wrap
// may add auth.
func serve(t *testing.T, img v1.Image, ref string, wrap func(http.Handler) http.Handler) string {
	t.Helper()
	var h http.Handler = registry.New(registry.Logger(log0()))
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	r, err := name.ParseReference(host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	auth := remote.WithAuth(authn.FromConfig(authn.AuthConfig{Username: "u", Password: "p"}))
	if err := remote.Write(r, img, auth); err != nil {
		t.Fatal(err)
	}
	return host
}

func TestPullFlattensAndCaches(t *testing.T) {
	img := testImage(t)
	host := serve(t, img, "team/app:1", nil)
	s := New(Config{Dir: t.TempDir(), Insecure: []string{host}})
	var said []string
	im, err := s.Pull(context.Background(), host+"/team/app:1", nil, func(m string) { said = append(said, m) })
	if err != nil {
		t.Fatal(err)
	}
	root := im.Rootfs
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if got := read("etc/os-release"); got != "ID=test\n" {
		t.Errorf("os-release %q", got)
	}
	if _, err := os.Lstat(filepath.Join(root, "gone.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a whited-out file is there: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "opaque/old")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a file under an opaque dir is there: %v", err)
	}
	if got := read("opaque/new"); got != "new" {
		t.Errorf("opaque/new %q", got)
	}
	if st, err := os.Stat(filepath.Join(root, "usr/bin/su")); err != nil || st.Mode()&fs.ModeSetuid == 0 || st.Mode().Perm() != 0o755 {
		t.Errorf("setuid file: %v %v", st.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(root, "bin")); err != nil || l != "usr/bin" {
		t.Errorf("symlink bin -> %q %v", l, err)
	}
	a, _ := os.Stat(filepath.Join(root, "usr/bin/su"))
	b, _ := os.Stat(filepath.Join(root, "usr/bin/su-link"))
	if a == nil || b == nil || a.Sys().(*syscall.Stat_t).Ino != b.Sys().(*syscall.Stat_t).Ino {
		t.Error("the hard link is not one")
	}
	if st, err := os.Stat(filepath.Join(root, "home/app/data")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 1234 || st.Mode().Perm() != 0o600 {
		t.Errorf("owner and mode not kept: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "dev/null")); err == nil {
		t.Error("a device node was made")
	}
	for _, p := range []string{"/tmp/airlock-oci-escaped", "/airlock-oci-abs"} {
		if _, err := os.Lstat(p); err == nil {
			os.Remove(p)
			t.Errorf("an image entry was written outside its tree: %s", p)
		}
	}
	if im.WorkingDir != "/home/app" || im.User != "app" || strings.Join(im.Env, ",") != "PATH=/usr/bin,APP=1" || im.Layers != 2 {
		t.Errorf("config: %+v", im)
	}
	again, err := s.Pull(context.Background(), host+"/team/app:1", nil, func(m string) { said = append(said, m) })
	if err != nil || again.Rootfs != root || !strings.Contains(said[len(said)-1], "cached") {
		t.Errorf("second pull not cached: %v %v", err, said)
	}
	if dirs := cacheDirs(t, filepath.Dir(filepath.Dir(root))); len(dirs) != 1 {
		t.Errorf("cache dir holds %v, want the one image", dirs)
	}
}

// A registry on a private address is refused unless the operator listed
// it: tenants name registries, and must not make the server reach its own
// network.
func TestPrivateRegistryRefused(t *testing.T) {
	host := serve(t, testImage(t), "team/app:1", nil)
	s := New(Config{Dir: t.TempDir()})
	_, err := s.Pull(context.Background(), host+"/team/app:1", nil, nil)
	if !errors.Is(err, ErrPrivateTarget) {
		t.Fatalf("pull from loopback: %v, want ErrPrivateTarget", err)
	}
}

func TestCredentialsAndMissingImages(t *testing.T) {
	needAuth := func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != "u" || p != "p" {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
			h.ServeHTTP(w, r)
		})
	}
	host := serve(t, testImage(t), "private/app:1", needAuth)
	s := New(Config{Dir: t.TempDir(), Insecure: []string{host}})
	ctx := context.Background()
	if _, err := s.Pull(ctx, host+"/private/app:1", nil, nil); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("without credentials: %v", err)
	}
	if _, err := s.Pull(ctx, host+"/private/app:1", &Auth{Username: "u", Password: "bad"}, nil); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("with bad credentials: %v", err)
	}
	if _, err := s.Pull(ctx, host+"/private/app:1", &Auth{Username: "u", Password: "p"}, nil); err != nil {
		t.Errorf("with credentials: %v", err)
	}
	if _, err := s.Pull(ctx, host+"/private/nothing:1", &Auth{Username: "u", Password: "p"}, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing image: %v", err)
	}
	for _, bad := range []string{"", "UPPER/case", "a b", "x@sha256:nothex"} {
		if _, err := s.Pull(ctx, bad, nil, nil); !errors.Is(err, ErrBadRef) {
			t.Errorf("ref %q: %v", bad, err)
		}
	}
}

func TestTooLargeLeavesNothing(t *testing.T) {
	host := serve(t, testImage(t), "team/app:1", nil)
	dir := t.TempDir()
	s := New(Config{Dir: dir, Insecure: []string{host}, MaxBytes: 10})
	if _, err := s.Pull(context.Background(), host+"/team/app:1", nil, nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if dirs := cacheDirs(t, dir); len(dirs) != 0 {
		t.Errorf("left behind: %v", dirs)
	}
}

func TestOpenLayoutAndTarball(t *testing.T) {
	img := testImage(t)
	lp := filepath.Join(t.TempDir(), "layout")
	p, err := layout.Write(lp, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	tb := filepath.Join(t.TempDir(), "img.tar")
	tag, _ := name.NewTag("example.test/app:1")
	if err := tarball.WriteToFile(tb, tag, img); err != nil {
		t.Fatal(err)
	}
	s := New(Config{Dir: t.TempDir()})
	for _, src := range []string{lp, tb} {
		im, err := s.Open(context.Background(), src, nil)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if b, err := os.ReadFile(filepath.Join(im.Rootfs, "opaque/new")); err != nil || string(b) != "new" {
			t.Errorf("%s: opaque/new %q %v", src, b, err)
		}
	}
	if _, err := s.Open(context.Background(), filepath.Join(t.TempDir(), "none"), nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing path: %v", err)
	}
}

func log0() *stdlog.Logger { return stdlog.New(io.Discard, "", 0) }

// cacheDirs lists a cache's entries but its lock files, which stay.
func cacheDirs(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".lock") {
			out = append(out, e.Name())
		}
	}
	return out
}

// The cache keeps its images under MaxCacheBytes by removing the least
// recently used, but never one a build still holds.
func TestCacheBound(t *testing.T) {
	mk := func(tag string) v1.Image {
		img, err := mutate.AppendLayers(empty.Image, layer(t, ent{name: "f", body: strings.Repeat(tag, 1000), typ: tar.TypeReg, mode: 0o644}))
		if err != nil {
			t.Fatal(err)
		}
		return img
	}
	srv := httptest.NewServer(registry.New(registry.Logger(log0())))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	for _, tag := range []string{"a", "b", "c"} {
		r, _ := name.ParseReference(host+"/img/"+tag+":1", name.Insecure)
		if err := remote.Write(r, mk(tag)); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	s := New(Config{Dir: dir, Insecure: []string{host}, MaxCacheBytes: 1500}) // one image fits
	ctx := context.Background()
	pull := func(tag string) *Image {
		im, err := s.Pull(ctx, host+"/img/"+tag+":1", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	exists := func(im *Image) bool { _, err := os.Stat(im.Rootfs); return err == nil }
	a := pull("a")
	b := pull("b") // over the bound, but a is held
	if !exists(a) || !exists(b) {
		t.Fatal("an image in use was removed")
	}
	a.Release()
	b.Release()
	time.Sleep(10 * time.Millisecond) // distinct use times
	b2 := pull("b")                   // cached: b is now the most recently used
	b2.Release()
	c := pull("c")
	defer c.Release()
	if exists(a) {
		t.Error("the least recently used image stayed past the bound")
	}
	if !exists(c) {
		t.Error("the new image was removed")
	}
	if exists(b) {
		t.Error("b stayed: the cache holds two images over a bound of one")
	}
}
