package ociimage

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// The cache holds one directory per digest and a lock file beside each.
// A build holds its image's lock shared from the pull until Release; the
// pruner removes only images whose lock it can take exclusively, so
// neither this server's builds nor a `template build --from-oci` in
// another process lose their tree.

// lockShared takes the lock of the image named key, shared.
func (s *Store) lockShared(key string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open image lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock image: %w", err)
	}
	return func() { f.Close() }, nil
}

// tryLockExclusive takes key's lock exclusively if nobody holds it.
func (s *Store) tryLockExclusive(key string) (func(), bool) {
	f, err := os.OpenFile(filepath.Join(s.cfg.Dir, key+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() { f.Close() }, true
}

// prune removes the least recently used images not in use until the
// cache's images together are at most MaxCacheBytes; keep is never removed.
func (s *Store) prune(keep string) {
	type entry struct {
		key   string
		bytes int64
		used  time.Time
	}
	ents, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return
	}
	var list []entry
	var total int64
	for _, e := range ents {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		meta := filepath.Join(s.cfg.Dir, e.Name(), "image.json")
		st, err := os.Stat(meta)
		if err != nil {
			continue // being made, or not an image
		}
		im, err := readMeta(filepath.Dir(meta))
		if err != nil {
			continue
		}
		list = append(list, entry{e.Name(), im.Bytes, st.ModTime()})
		total += im.Bytes
	}
	slices.SortFunc(list, func(a, b entry) int { return a.used.Compare(b.used) })
	for _, e := range list {
		if total <= s.cfg.MaxCacheBytes {
			return
		}
		if e.key == keep {
			continue
		}
		unlock, ok := s.tryLockExclusive(e.key)
		if !ok {
			continue // a build uses it
		}
		err := os.RemoveAll(filepath.Join(s.cfg.Dir, e.key))
		unlock()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.Warn("remove cached image", "image", e.key, "err", err)
			continue
		}
		total -= e.bytes
		s.log.Info("removed a cached image", "image", e.key, "bytes", e.bytes)
	}
}
