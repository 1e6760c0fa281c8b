package ociimage

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// maxEntries bounds an image's file count.
const maxEntries = 2_000_000

// extractImage writes img's flattened filesystem (whiteouts applied by
// mutate.Extract) under dest, through an os.Root so that no entry, link
// or symlink of the image can write outside it. It returns the bytes
// written and how many device and FIFO entries it skipped.
func extractImage(ctx context.Context, img v1.Image, dest string, maxBytes int64) (int64, int, error) {
	rc := mutate.Extract(img)
	defer rc.Close()
	root, err := os.OpenRoot(dest)
	if err != nil {
		return 0, 0, err
	}
	defer root.Close()
	x := &extractor{root: root, left: maxBytes}
	if err := x.run(ctx, tar.NewReader(rc)); err != nil {
		return 0, 0, err
	}
	return maxBytes - x.left, x.skipped, nil
}

type extractor struct {
	root    *os.Root
	left    int64
	skipped int
	entries int
	links   []*tar.Header // hard links, made once their targets exist
	dirs    []*tar.Header // directories' metadata, set last
}

// clean makes an entry name relative to the root; "" for the root itself.
func clean(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return ""
	}
	return p[1:]
}

func (x *extractor) run(ctx context.Context, tr *tar.Reader) error {
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read image layers: %w", err)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if x.entries++; x.entries > maxEntries {
			return fmt.Errorf("%w: over %d files", ErrTooLarge, maxEntries)
		}
		name := clean(hdr.Name)
		if name == "" {
			continue
		}
		if err := x.entry(hdr, name, tr); err != nil {
			if escapes(err) {
				// Under a symlink that leaves the tree: the symlink hides it.
				x.skipped++
				continue
			}
			return fmt.Errorf("image file /%s: %w", name, err)
		}
	}
	for _, hdr := range x.links {
		name, target := clean(hdr.Name), clean(hdr.Linkname)
		if target == "" {
			continue
		}
		_ = x.root.Remove(name)
		if err := x.root.Link(target, name); err != nil && !escapes(err) {
			return fmt.Errorf("image hard link /%s: %w", name, err)
		}
	}
	// Deepest first, so a read-only parent is set after its children.
	for _, hdr := range slices.Backward(x.dirs) {
		name := clean(hdr.Name)
		if err := x.owner(name, hdr); err != nil {
			return err
		}
		if err := x.root.Chmod(name, mode(hdr)); err != nil {
			return err
		}
		_ = x.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

func (x *extractor) entry(hdr *tar.Header, name string, r io.Reader) error {
	if dir := path.Dir(name); dir != "." {
		if err := x.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		if st, err := x.root.Lstat(name); err == nil && !st.IsDir() {
			if err := x.root.RemoveAll(name); err != nil {
				return err
			}
		}
		if err := x.root.MkdirAll(name, 0o755); err != nil {
			return err
		}
		x.dirs = append(x.dirs, hdr)
	case tar.TypeReg:
		if hdr.Size > x.left {
			return ErrTooLarge
		}
		if err := x.replace(name); err != nil {
			return err
		}
		f, err := x.root.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		n, err := io.Copy(f, io.LimitReader(r, x.left+1))
		x.left -= n
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		if x.left < 0 {
			return ErrTooLarge
		}
		if err := x.owner(name, hdr); err != nil {
			return err
		}
		if err := x.root.Chmod(name, mode(hdr)); err != nil { // after chown, which clears setuid
			return err
		}
		_ = x.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	case tar.TypeSymlink:
		if err := x.replace(name); err != nil {
			return err
		}
		if err := x.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
		return x.owner(name, hdr)
	case tar.TypeLink:
		x.links = append(x.links, hdr)
	default: // devices and FIFOs: /dev is the runtime's
		x.skipped++
	}
	return nil
}

// escapes reports os.Root's refusal of a path that would leave the tree
// (its error is not exported).
func escapes(err error) bool {
	return err != nil && strings.Contains(err.Error(), "path escapes from parent")
}

// replace removes what is at name unless it is a directory.
func (x *extractor) replace(name string) error {
	st, err := x.root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.IsDir() {
		return x.root.RemoveAll(name)
	}
	return x.root.Remove(name)
}

func (x *extractor) owner(name string, hdr *tar.Header) error {
	if hdr.Uid < 0 || hdr.Gid < 0 || hdr.Uid > 1<<31 || hdr.Gid > 1<<31 {
		return fmt.Errorf("bad owner %d:%d", hdr.Uid, hdr.Gid)
	}
	return x.root.Lchown(name, hdr.Uid, hdr.Gid)
}

// mode is an entry's permission bits with setuid, setgid and sticky.
func mode(hdr *tar.Header) fs.FileMode {
	m := fs.FileMode(hdr.Mode).Perm()
	if hdr.Mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if hdr.Mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if hdr.Mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}
