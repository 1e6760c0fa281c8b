// Package ociimage fetches container images, from a registry, an OCI layout or
// a `docker save` tarball, and flattens them into directory trees that
// template builds start from.
package ociimage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Errors a caller maps to its own vocabulary.
var (
	ErrBadRef        = errors.New("invalid image reference")
	ErrNotFound      = errors.New("image not found")
	ErrUnauthorized  = errors.New("registry refused the credentials")
	ErrPrivateTarget = errors.New("registry address is on a private network")
	ErrTooLarge      = errors.New("image is too large")
)

// Config configures a Store.
type Config struct {
	// Dir holds one flattened tree per image digest.
	Dir string
	// DefaultRegistry is where references without a registry go
	// (Docker Hub when "").
	DefaultRegistry string
	// Insecure registries ("host:port") are reached over plain HTTP and
	// may be on private addresses; every other registry, and every
	// address a registry redirects to, must be public.
	Insecure []string
	// MaxBytes bounds an image's flattened size (default 20 GiB).
	MaxBytes int64
	// MaxCacheBytes bounds the flattened images kept in Dir together
	// (default 40 GiB): the least recently used ones no build holds go.
	MaxCacheBytes int64
	// Transport is the base HTTP transport (tests); nil: Go's default.
	Transport *http.Transport
	Log       *slog.Logger
}

// Auth is a registry's basic credentials.
type Auth struct {
	Username, Password string
}

// Image is a flattened image: its tree and the parts of its config a
// template takes.
type Image struct {
	Ref        string   `json:"ref"`
	Digest     string   `json:"digest"`
	Rootfs     string   `json:"-"`
	Env        []string `json:"env,omitempty"`
	WorkingDir string   `json:"workingDir,omitempty"`
	User       string   `json:"user,omitempty"`
	Entrypoint []string `json:"entrypoint,omitempty"`
	Cmd        []string `json:"cmd,omitempty"`
	Layers     int      `json:"layers"`
	Bytes      int64    `json:"bytes"`

	release func()
}

// Release lets the cache remove the image's tree again; call it once the
// tree is no longer read (the build that pulled it ended).
func (im *Image) Release() {
	if im != nil && im.release != nil {
		im.release()
		im.release = nil
	}
}

// Store fetches and caches images.
type Store struct {
	cfg   Config
	log   *slog.Logger
	locks sync.Map // digest -> *sync.Mutex
}

// New returns a Store.
func New(cfg Config) *Store {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 20 << 30
	}
	if cfg.MaxCacheBytes <= 0 {
		cfg.MaxCacheBytes = 40 << 30
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Store{cfg: cfg, log: cfg.Log.With("component", "images")}
}

// Progress receives human-readable steps of a fetch.
type Progress func(msg string)

// Pull fetches ref from its registry (with auth, if given) and returns its
// flattened tree, cached by digest.
func (s *Store) Pull(ctx context.Context, ref string, auth *Auth, progress Progress) (*Image, error) {
	r, err := s.parse(ref)
	if err != nil {
		return nil, err
	}
	reg := r.Context().RegistryStr()
	var a authn.Authenticator = authn.Anonymous
	if auth != nil && (auth.Username != "" || auth.Password != "") {
		a = authn.FromConfig(authn.AuthConfig{Username: auth.Username, Password: auth.Password})
	}
	progress.say("Pulling %s", r.Name())
	img, err := remote.Image(r,
		remote.WithContext(ctx),
		remote.WithAuth(a),
		remote.WithTransport(s.transport(reg)),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}),
	)
	if err != nil {
		return nil, registryError(ref, err)
	}
	out, err := s.flatten(ctx, r.Name(), img, progress)
	if err != nil {
		return nil, registryError(ref, err)
	}
	return out, nil
}

// Open reads an image from a local OCI layout directory or a `docker save`
// tarball and returns its flattened tree.
func (s *Store) Open(ctx context.Context, path string, progress Progress) (*Image, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotFound, err)
	}
	var img v1.Image
	if st.IsDir() {
		idx, err := layout.ImageIndexFromPath(path)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not an OCI layout: %v", ErrBadRef, path, err)
		}
		if img, err = pickImage(idx); err != nil {
			return nil, fmt.Errorf("%w: %s: %v", ErrBadRef, path, err)
		}
	} else if img, err = tarball.ImageFromPath(path, nil); err != nil {
		return nil, fmt.Errorf("%w: %s is not a docker save tarball with one image: %v", ErrBadRef, path, err)
	}
	return s.flatten(ctx, path, img, progress)
}

// pickImage finds the linux image of this machine's architecture in an
// index (or the only image there is).
func pickImage(idx v1.ImageIndex) (v1.Image, error) {
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	var first *v1.Descriptor
	for i := range m.Manifests {
		d := &m.Manifests[i]
		if d.MediaType.IsIndex() {
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, err
			}
			return pickImage(child)
		}
		if !d.MediaType.IsImage() {
			continue
		}
		if first == nil {
			first = d
		}
		if p := d.Platform; p != nil && p.OS == "linux" && p.Architecture == runtime.GOARCH {
			return idx.Image(d.Digest)
		}
	}
	if first == nil {
		return nil, errors.New("no image in the index")
	}
	return idx.Image(first.Digest)
}

// parse checks a reference and marks insecure registries.
func (s *Store) parse(ref string) (name.Reference, error) {
	if ref == "" || len(ref) > 512 || strings.ContainsAny(ref, " \t\n") {
		return nil, fmt.Errorf("%w: %q", ErrBadRef, ref)
	}
	var opts []name.Option
	if s.cfg.DefaultRegistry != "" {
		opts = append(opts, name.WithDefaultRegistry(s.cfg.DefaultRegistry))
	}
	r, err := name.ParseReference(ref, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRef, err)
	}
	if slices.Contains(s.cfg.Insecure, r.Context().RegistryStr()) {
		if r, err = name.ParseReference(ref, append(opts, name.Insecure)...); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadRef, err)
		}
	}
	return r, nil
}

// registryError names what went wrong in the vocabulary of this package.
func registryError(ref string, err error) error {
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusNotFound:
			return fmt.Errorf("%w: %s", ErrNotFound, ref)
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w: %s: %v", ErrUnauthorized, ref, te)
		}
		for _, d := range te.Errors {
			if d.Code == transport.ManifestUnknownErrorCode || d.Code == transport.NameUnknownErrorCode {
				return fmt.Errorf("%w: %s", ErrNotFound, ref)
			}
		}
	}
	if errors.Is(err, ErrPrivateTarget) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrBadRef) {
		return err
	}
	return fmt.Errorf("image %s: %w", ref, err)
}

// flatten extracts img into its digest's tree unless that is there already.
func (s *Store) flatten(ctx context.Context, ref string, img v1.Image, progress Progress) (*Image, error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	key := digest.Algorithm + "-" + digest.Hex
	dir := filepath.Join(s.cfg.Dir, key)
	if err := os.MkdirAll(s.cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	// Held by the caller until Release: the pruner leaves the tree alone.
	release, err := s.lockShared(key)
	if err != nil {
		return nil, err
	}
	out, err := s.flattenLocked(ctx, ref, key, dir, img, progress)
	if err != nil {
		release()
		return nil, err
	}
	out.release = release
	return out, nil
}

func (s *Store) flattenLocked(ctx context.Context, ref, key, dir string, img v1.Image, progress Progress) (*Image, error) {
	mu, _ := s.locks.LoadOrStore(key, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if out, err := readMeta(dir); err == nil {
		now := time.Now()
		_ = os.Chtimes(filepath.Join(dir, "image.json"), now, now) // recently used
		progress.say("Image %s (%s) is cached", ref, out.Digest)
		return out, nil
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if cf.OS != "" && cf.OS != "linux" {
		return nil, fmt.Errorf("%w: image %s is for %s, not linux", ErrBadRef, ref, cf.OS)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("image layers: %w", err)
	}
	out := &Image{
		Ref: ref, Digest: digest.String(), Layers: len(layers),
		Env: cf.Config.Env, WorkingDir: cf.Config.WorkingDir, User: cf.Config.User,
		Entrypoint: cf.Config.Entrypoint, Cmd: cf.Config.Cmd,
	}
	tmp, err := os.MkdirTemp(s.cfg.Dir, ".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	rootfs := filepath.Join(tmp, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return nil, err
	}
	progress.say("Flattening %d layers of %s", len(layers), ref)
	n, skipped, err := extractImage(ctx, img, rootfs, s.cfg.MaxBytes)
	if err != nil {
		return nil, err
	}
	out.Bytes = n
	if skipped > 0 {
		progress.say("Skipped %d device or FIFO entries (the runtime provides /dev)", skipped)
	}
	meta, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "image.json"), meta, 0o600); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, err
	}
	out.Rootfs = filepath.Join(dir, "rootfs")
	s.log.Info("image flattened", "ref", ref, "digest", digest.String(), "layers", len(layers), "bytes", n)
	s.prune(key)
	return out, nil
}

func readMeta(dir string) (*Image, error) {
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		return nil, err
	}
	var out Image
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	out.Rootfs = filepath.Join(dir, "rootfs")
	return &out, nil
}

func (p Progress) say(format string, a ...any) {
	if p != nil {
		p(fmt.Sprintf(format, a...))
	}
}
