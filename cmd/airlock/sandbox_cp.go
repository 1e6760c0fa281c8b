package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// Uploads of many files are batched into multipart requests of this size.
const (
	uploadBatchFiles = 256
	uploadBatchBytes = 64 << 20
	// smallCopyBytes is the size below which no progress bar is drawn.
	smallCopyBytes = 4 << 20
	// downloadParallel is how many files a directory download fetches at once.
	downloadParallel = 8
)

// errNotRegular is a local path that is neither a file nor a directory.
var errNotRegular = errors.New("not a regular file or directory")

// cpSpec is one side of a copy: a local path, or a path in a sandbox.
type cpSpec struct {
	sandboxID string // "" for local
	path      string
}

// parseCpSpec splits "ID:/path"; anything with a slash or dot before the
// first colon (./a:b, /tmp/x:y) is local, like scp.
func parseCpSpec(s string) cpSpec {
	id, p, ok := strings.Cut(s, ":")
	if !ok || id == "" || strings.ContainsAny(id, `/\.`) {
		return cpSpec{path: s}
	}
	if p == "" {
		p = "."
	}
	return cpSpec{sandboxID: id, path: p}
}

func newSandboxCpCmd(f *clientFlags) *cobra.Command {
	var user string
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cp SRC DST",
		Short: "Copy files and directories into or out of a sandbox",
		Long: `Copy a file or a directory tree between the local machine and a sandbox.
Exactly one of SRC and DST is remote, written ID:PATH; relative remote paths
are relative to the user's home. As with cp -r, copying onto an existing
directory puts SRC inside it. A progress bar is drawn on stderr when it is a
terminal.`,
		Example: `  airlock sandbox cp ./main.py $id:/home/user/main.py
  airlock sandbox cp ./project $id:/home/user/
  airlock sandbox cp $id:/var/log ./sandbox-logs`,
		Args: exactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst := parseCpSpec(args[0]), parseCpSpec(args[1])
			if (src.sandboxID == "") == (dst.sandboxID == "") {
				return usagef("exactly one of SRC and DST must be a sandbox path (ID:PATH)")
			}
			id := src.sandboxID + dst.sandboxID
			sbx, err := f.connect(cmd.Context(), id)
			if err != nil {
				return err
			}
			c := &copier{ctx: cmd.Context(), sbx: sbx, user: user, progress: !quiet && isTerminal(errOf(cmd)), errw: errOf(cmd)}
			var res copyResult
			if dst.sandboxID != "" {
				res, err = c.upload(src.path, dst.path)
			} else {
				res, err = c.download(src.path, dst.path)
			}
			if err != nil {
				return err
			}
			if f.json {
				return printJSON(outOf(cmd), res)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&user, "user", "u", "", "read and write remote files as this Linux user")
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "no progress bar")
	return cmd
}

// copyResult summarises a copy for --json.
type copyResult struct {
	Files       int    `json:"files"`
	Directories int    `json:"directories"`
	Bytes       int64  `json:"bytes"`
	Destination string `json:"destination"`
}

type copier struct {
	ctx      context.Context
	sbx      *sandbox.Sandbox
	user     string
	progress bool
	errw     io.Writer
}

func (c *copier) bar(total int64, desc string) *progressbar.ProgressBar {
	if !c.progress || total < smallCopyBytes {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(c.errw),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)
}

// finishBar completes bar, if one is drawn.
func finishBar(bar *progressbar.ProgressBar) {
	if bar != nil {
		_ = bar.Finish()
	}
}

// counted wraps r so that reads advance bar (if any).
func counted(r io.Reader, bar *progressbar.ProgressBar) io.Reader {
	if bar == nil {
		return r
	}
	return io.TeeReader(r, bar)
}

// remoteTarget decides where SRC lands: inside DST when DST is an
// existing directory (or ends with a slash), else DST itself.
func (c *copier) remoteTarget(dst, base string) (string, error) {
	if strings.HasSuffix(dst, "/") {
		return path.Join(dst, base), nil
	}
	info, err := c.sbx.Files.GetInfo(c.ctx, dst, &sandbox.FileOptions{User: c.user})
	switch {
	case errors.Is(err, sandbox.ErrNotFound):
		return dst, nil
	case err != nil:
		return "", fmt.Errorf("stat %s: %w", dst, err)
	case info.Type == sandbox.TypeDir:
		return path.Join(dst, base), nil
	}
	return dst, nil
}

// localFile is one file of an upload, opened only when its part is sent.
type localFile struct {
	local, remote string
	size          int64
	mode          fs.FileMode
}

func (c *copier) upload(src, dst string) (copyResult, error) {
	st, err := os.Stat(src)
	if err != nil {
		return copyResult{}, fmt.Errorf("copy %s: %w", src, err)
	}
	target, err := c.remoteTarget(dst, filepath.Base(filepath.Clean(src)))
	if err != nil {
		return copyResult{}, err
	}
	res := copyResult{Destination: target}
	if !st.IsDir() {
		if !st.Mode().IsRegular() {
			return res, fmt.Errorf("copy %s: %w", src, errNotRegular)
		}
		fh, err := os.Open(src)
		if err != nil {
			return res, fmt.Errorf("copy %s: %w", src, err)
		}
		defer fh.Close()
		bar := c.bar(st.Size(), "upload")
		if _, err := c.sbx.Files.WriteFrom(c.ctx, target, counted(fh, bar), &sandbox.WriteOptions{User: c.user}); err != nil {
			return res, fmt.Errorf("upload %s: %w", target, err)
		}
		finishBar(bar)
		res.Files, res.Bytes = 1, st.Size()
		return res, c.chmodExecutables([]localFile{{remote: target, mode: st.Mode()}})
	}

	var files []localFile
	var dirs []string
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		remote := path.Join(target, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			dirs = append(dirs, remote)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, localFile{local: p, remote: remote, size: info.Size(), mode: info.Mode()})
		default:
			fmt.Fprintf(c.errw, "airlock: skipping %s: %v\n", p, errNotRegular)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("walk %s: %w", src, err)
	}
	// Directories first, so empty ones exist too.
	for _, d := range dirs {
		if _, err := c.sbx.Files.MakeDir(c.ctx, d, &sandbox.FileOptions{User: c.user}); err != nil {
			return res, fmt.Errorf("mkdir %s: %w", d, err)
		}
	}
	var total int64
	for _, lf := range files {
		total += lf.size
	}
	bar := c.bar(total, "upload")
	for start := 0; start < len(files); {
		end, size := start, int64(0)
		for end < len(files) && end-start < uploadBatchFiles && (end == start || size+files[end].size <= uploadBatchBytes) {
			size += files[end].size
			end++
		}
		if err := c.uploadBatch(files[start:end], bar); err != nil {
			return res, err
		}
		start = end
	}
	finishBar(bar)
	res.Files, res.Directories, res.Bytes = len(files), len(dirs), total
	return res, c.chmodExecutables(files)
}

// uploadBatch sends files in one multipart request, opening each lazily.
func (c *copier) uploadBatch(files []localFile, bar *progressbar.ProgressBar) error {
	entries := make([]sandbox.WriteEntry, len(files))
	readers := make([]*lazyFile, len(files))
	for i, lf := range files {
		readers[i] = &lazyFile{path: lf.local}
		entries[i] = sandbox.WriteEntry{Path: lf.remote, Reader: counted(readers[i], bar)}
	}
	defer func() {
		for _, r := range readers {
			r.close()
		}
	}()
	if _, err := c.sbx.Files.WriteMany(c.ctx, entries, &sandbox.WriteOptions{User: c.user}); err != nil {
		return fmt.Errorf("upload %d files: %w", len(files), err)
	}
	for _, r := range readers {
		if r.err != nil {
			return fmt.Errorf("read %s: %w", r.path, r.err)
		}
	}
	return nil
}

// chmodExecutables restores the executable bits uploads do not carry.
func (c *copier) chmodExecutables(files []localFile) error {
	var exe []string
	for _, lf := range files {
		if lf.mode&0o111 != 0 {
			exe = append(exe, shellQuote(lf.remote))
		}
	}
	for len(exe) > 0 {
		n := min(len(exe), 500)
		line := "chmod +x -- " + strings.Join(exe[:n], " ")
		if _, err := c.sbx.Commands.Run(c.ctx, line, &sandbox.RunOptions{User: c.user}); err != nil {
			return fmt.Errorf("set executable bits: %w", err)
		}
		exe = exe[n:]
	}
	return nil
}

// lazyFile opens its file on the first Read and closes it at EOF, so a
// batch keeps at most one descriptor open. Read errors are remembered
// because the multipart writer only reports that the upload failed.
type lazyFile struct {
	path string
	f    *os.File
	err  error
	done bool
}

func (l *lazyFile) Read(p []byte) (int, error) {
	if l.done {
		return 0, io.EOF
	}
	if l.f == nil {
		f, err := os.Open(l.path)
		if err != nil {
			l.err = err
			return 0, err
		}
		l.f = f
	}
	n, err := l.f.Read(p)
	if err == io.EOF {
		l.close()
		l.done = true
	} else if err != nil {
		l.err = err
	}
	return n, err
}

func (l *lazyFile) close() {
	if l.f != nil {
		_ = l.f.Close()
		l.f = nil
	}
}

// localTarget is remoteTarget's counterpart for downloads.
func localTarget(dst, base string) string {
	if strings.HasSuffix(dst, string(os.PathSeparator)) {
		return filepath.Join(dst, base)
	}
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		return filepath.Join(dst, base)
	}
	return dst
}

func (c *copier) download(src, dst string) (copyResult, error) {
	opts := &sandbox.FileOptions{User: c.user}
	info, err := c.sbx.Files.GetInfo(c.ctx, src, opts)
	if err != nil {
		return copyResult{}, fmt.Errorf("stat %s: %w", src, err)
	}
	target := localTarget(dst, path.Base(info.Path))
	res := copyResult{Destination: target}
	if info.Type != sandbox.TypeDir {
		bar := c.bar(info.Size, "download")
		if err := c.downloadFile(c.ctx, info.Path, target, info.Mode, bar); err != nil {
			return res, err
		}
		finishBar(bar)
		res.Files, res.Bytes = 1, info.Size
		return res, nil
	}

	entries, err := c.sbx.Files.List(c.ctx, info.Path, &sandbox.ListDirOptions{User: c.user, Depth: 1 << 16})
	if err != nil {
		return res, fmt.Errorf("list %s: %w", src, err)
	}
	if err := os.MkdirAll(target, 0o755); err != nil {
		return res, fmt.Errorf("copy to %s: %w", target, err)
	}
	res.Directories = 1
	var total int64
	for _, e := range entries {
		if e.Type == sandbox.TypeFile {
			total += e.Size
		}
	}
	bar := c.bar(total, "download")
	root := strings.TrimSuffix(info.Path, "/") + "/"
	// Files are fetched a few at a time: one request each, so many small
	// files are latency-bound.
	g, gctx := errgroup.WithContext(c.ctx)
	g.SetLimit(downloadParallel)
	for _, e := range entries {
		rel, ok := strings.CutPrefix(e.Path, root)
		if !ok || rel == "" {
			continue
		}
		local := filepath.Join(target, filepath.FromSlash(rel))
		switch e.Type {
		case sandbox.TypeDir:
			if err := os.MkdirAll(local, 0o755); err != nil {
				return res, fmt.Errorf("copy to %s: %w", local, err)
			}
			res.Directories++
		case sandbox.TypeFile:
			if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
				return res, fmt.Errorf("copy to %s: %w", local, err)
			}
			g.Go(func() error { return c.downloadFile(gctx, e.Path, local, e.Mode, bar) })
			res.Files++
			res.Bytes += e.Size
		case sandbox.TypeSymlink:
			if err := os.Symlink(e.SymlinkTarget, local); err != nil && !errors.Is(err, fs.ErrExist) {
				return res, fmt.Errorf("symlink %s: %w", local, err)
			}
		}
	}
	if err := g.Wait(); err != nil {
		return res, err
	}
	finishBar(bar)
	return res, nil
}

func (c *copier) downloadFile(ctx context.Context, remote, local string, mode fs.FileMode, bar *progressbar.ProgressBar) error {
	rc, err := c.sbx.Files.ReadStream(ctx, remote, &sandbox.ReadOptions{User: c.user})
	if err != nil {
		return fmt.Errorf("download %s: %w", remote, err)
	}
	defer rc.Close()
	perm := mode.Perm()
	if perm == 0 {
		perm = 0o644
	}
	out, err := os.OpenFile(local, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("copy to %s: %w", local, err)
	}
	if _, err := io.Copy(out, counted(rc, bar)); err != nil {
		out.Close()
		return fmt.Errorf("download %s: %w", remote, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("copy to %s: %w", local, err)
	}
	return nil
}
