// Package testimage makes the test suites' OCI image from a template's
// tree: no registry is reachable from the machines tests run on.
package testimage

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Left out of the seeded image, to keep it near 100 MB compressed: the
// toolchain, headers, docs and caches.
var skip = []string{"usr/lib/gcc", "usr/include", "usr/share/doc", "usr/share/man", "usr/share/locale",
	"usr/lib/node_modules", "usr/share/nodejs", "var/cache", "var/lib/apt/lists", "usr/libexec/gcc", "usr/share/perl"}

// FromTree is two layers: the tree, and a small one on top that adds a file
// and deletes one (a whiteout), with a config that sets ENV and WORKDIR.
func FromTree(root string) (v1.Image, error) {
	base, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return treeTar(root), nil },
		tarball.WithCompressionLevel(gzip.BestSpeed))
	if err != nil {
		return nil, err
	}
	top, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() {
			tw := tar.NewWriter(pw)
			body := "from the test registry\n"
			err := errors.Join(
				tw.WriteHeader(&tar.Header{Name: "etc/airlock-image", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}),
				write(tw, body),
				tw.WriteHeader(&tar.Header{Name: "etc/.wh.motd", Mode: 0o644, Typeflag: tar.TypeReg}),
				tw.WriteHeader(&tar.Header{Name: "srv/app/", Mode: 0o755, Typeflag: tar.TypeDir}),
				tw.Close())
			pw.CloseWithError(err)
		}()
		return pr, nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, base, top)
	if err != nil {
		return nil, err
	}
	return mutate.Config(img, v1.Config{
		Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "IMAGE_VAR=from-image"},
		WorkingDir: "/srv/app",
		Cmd:        []string{"/bin/bash"},
	})
}

func write(tw *tar.Writer, s string) error {
	_, err := tw.Write([]byte(s))
	return err
}

// treeTar streams root as a tar, owners and modes kept.
func treeTar(root string) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			if rel == "." {
				return nil
			}
			for _, s := range skip {
				if rel == s {
					return filepath.SkipDir
				}
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			link := ""
			if fi.Mode()&fs.ModeSymlink != 0 {
				if link, err = os.Readlink(p); err != nil {
					return err
				}
			}
			if !fi.Mode().IsRegular() && !fi.IsDir() && fi.Mode()&fs.ModeSymlink == 0 {
				return nil // devices, sockets
			}
			hdr, err := tar.FileInfoHeader(fi, link)
			if err != nil {
				return err
			}
			hdr.Name = filepath.ToSlash(rel)
			if fi.IsDir() {
				hdr.Name += "/"
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
			}
			hdr.Uname, hdr.Gname = "", ""
			if err := tw.WriteHeader(hdr); err != nil {
				return err
			}
			if fi.Mode().IsRegular() {
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				_, err = io.Copy(tw, f)
				f.Close()
				return err
			}
			return nil
		})
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return pr
}
