package buildstep

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var errNotDir = errors.New("not a directory")

// tree writes into the sandbox's filesystem on behalf of one operation.
// It follows symlinks that were there before (images have /bin -> usr/bin
// and the like, and the sandbox is the whole world here) but refuses to
// traverse one this operation made, so an archive's symlink cannot
// redirect the archive's later entries.
type tree struct {
	*helper
	uid, gid int             // owner of everything created
	made     map[string]bool // directories created (resolved sandbox paths)
	links    map[string]bool // symlinks created
}

// dir resolves sandbox directory p (absolute, clean), creating what is
// missing (mode 0755, owned by the tree's owner) when mkdir is set, and
// returns its resolved path.
func (t *tree) dir(p string, mkdir bool) (string, error) {
	todo := parts(p)
	cur := "/"
	hops := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		next := path.Join(cur, name)
		if name == ".." || next == "/" {
			cur = next
			continue
		}
		fi, err := os.Lstat(t.host(next))
		switch {
		case errors.Is(err, fs.ErrNotExist) && mkdir:
			if err := t.mkdir(next); err != nil {
				return "", err
			}
			cur = next
		case err != nil:
			return "", err
		case fi.Mode()&fs.ModeSymlink != 0:
			if t.links[next] {
				return "", fmt.Errorf("%s is a symlink this copy created: refusing to write through it", next)
			}
			if hops++; hops > 40 {
				return "", fmt.Errorf("%s: %w", p, syscall.ELOOP)
			}
			target, err := os.Readlink(t.host(next))
			if err != nil {
				return "", err
			}
			if path.IsAbs(target) {
				cur = "/"
			}
			todo = append(parts(target), todo...)
		case fi.IsDir():
			cur = next
		default:
			return "", fmt.Errorf("%s: %w", next, errNotDir)
		}
	}
	return cur, nil
}

func parts(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}

func (t *tree) mkdir(p string) error {
	hp := t.host(p)
	if err := os.Mkdir(hp, 0o755); err != nil {
		return err
	}
	if err := os.Lchown(hp, t.uid, t.gid); err != nil {
		return err
	}
	// Explicitly, whatever the umask.
	if err := os.Chmod(hp, 0o755); err != nil {
		return err
	}
	if t.made == nil {
		t.made = map[string]bool{}
	}
	t.made[p] = true
	return nil
}

// place resolves the parent of sandbox path p, creating it as needed, and
// clears p itself for a new non-directory: an existing file or symlink is
// removed (never followed), a directory is an error.
func (t *tree) place(p string) (string, error) {
	if p == "/" {
		return "", fmt.Errorf("cannot replace / with a file")
	}
	parent, err := t.dir(path.Dir(p), true)
	if err != nil {
		return "", err
	}
	dst := path.Join(parent, path.Base(p))
	fi, err := os.Lstat(t.host(dst))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return dst, nil
	case err != nil:
		return "", err
	case fi.IsDir():
		return "", fmt.Errorf("%s is a directory: cannot replace it with a file", dst)
	}
	delete(t.links, dst)
	return dst, os.Remove(t.host(dst))
}

// plan maps archive entries to destinations with Docker COPY's rules.
type plan struct {
	prefix  string // SRC's leading segments without glob characters ("" for all)
	single  bool   // SRC names one file: it is copied to dest itself
	dest    string // absolute, clean
	destDir bool   // dest is a directory to copy into
}

// staticPrefix is the part of src before its first segment with a glob
// character, and whether there was one. src is relative.
func staticPrefix(src string) (prefix string, glob bool) {
	var keep []string
	for _, s := range parts(src) {
		if strings.ContainsAny(s, "*?[{") {
			glob = true
			break
		}
		keep = append(keep, s)
	}
	return path.Join(keep...), glob
}

// target is where the entry named name (clean, relative, "" for the
// context itself) goes, or false if it is not part of the copy.
func (p plan) target(name string) (string, bool) {
	if p.single {
		if name != p.prefix {
			return "", false
		}
		if p.destDir {
			return path.Join(p.dest, path.Base(name)), true
		}
		return p.dest, true
	}
	var rel string
	switch {
	case p.prefix == "":
		rel = name
	case name == p.prefix:
		rel = ""
	case strings.HasPrefix(name, p.prefix+"/"):
		rel = name[len(p.prefix)+1:]
	default:
		return "", false
	}
	return path.Join(p.dest, rel), true
}

// entryName validates and cleans an archive entry's name.
func entryName(n string) (string, error) {
	if strings.HasPrefix(n, "/") {
		return "", fmt.Errorf("archive entry '%s' has an absolute name", n)
	}
	for _, s := range strings.Split(n, "/") {
		if s == ".." {
			return "", fmt.Errorf("archive entry '%s' has a '..' component", n)
		}
	}
	c := path.Clean(n)
	if c == "." {
		c = ""
	}
	return c, nil
}

// openArchive opens a tar archive, gunzipping it if it starts with gzip's
// magic bytes.
func openArchive(name string) (*tar.Reader, io.Closer, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(f, 64<<10)
	head, _ := br.Peek(2)
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return tar.NewReader(zr), f, nil
	}
	return tar.NewReader(br), f, nil
}

// copy runs a COPY step from an uploaded archive of the matched files.
func (h *helper) copy(args []string) error {
	fs := flag.NewFlagSet("copy", flag.ContinueOnError)
	tarPath := fs.String("tar", "", "archive of the files (tar or tar.gz)")
	src := fs.String("src", "", "source as written in the step")
	dest := fs.String("dest", "", "destination")
	userSpec := fs.String("user", "root", "the step's user")
	workdir := fs.String("workdir", "", "the step's working directory (\"\": the user's home)")
	ownerSpec := fs.String("owner", "", "owner of the copied files (\"\": the user)")
	modeStr := fs.String("mode", "", "octal mode of the copied files and directories (\"\": the archive's)")
	if _, err := parse(fs, args, 0, "copy --tar PATH --src SRC --dest DEST --user U --workdir D [--owner O] [--mode MODE]"); err != nil {
		return err
	}
	a, err := lookupAccount(*userSpec)
	if err != nil {
		return err
	}
	owner := a
	if *ownerSpec != "" {
		if owner, err = lookupAccount(*ownerSpec); err != nil {
			return err
		}
	}
	var mode *uint32
	if *modeStr != "" {
		m, err := strconv.ParseUint(*modeStr, 8, 32)
		if err != nil || m > 0o7777 {
			return fail(exitHelper, "copy '%s': invalid mode '%s'", *src, *modeStr)
		}
		m32 := uint32(m)
		mode = &m32
	}
	if path.IsAbs(*src) {
		return fail(exitHelper, "copy '%s': the source must be relative to the build context", *src)
	}
	base := *workdir
	if base == "" {
		base = a.home
	}
	d := *dest
	if !path.IsAbs(d) {
		d = path.Join(base, d)
	}
	if !path.IsAbs(d) {
		return fail(exitHelper, "copy '%s': destination '%s' is not absolute (workdir '%s')", *src, *dest, base)
	}
	c := &copier{
		tree: tree{helper: h, uid: int(owner.uid), gid: int(owner.gid), made: map[string]bool{}, links: map[string]bool{}},
		mode: mode, files: map[string]string{},
	}
	if err := c.run(*tarPath, *src, *dest, path.Clean(d)); err != nil {
		var f *failure
		if errors.As(err, &f) {
			return err
		}
		return fail(exitHelper, "copy '%s': %v", *src, err)
	}
	return nil
}

type copier struct {
	tree
	mode  *uint32           // --mode, if given
	files map[string]string // archive name -> extracted path, for hard links
	dirs  []dirMeta         // applied last, so entries can still go in
}

type dirMeta struct {
	path  string
	mode  uint32
	mtime time.Time
}

func (c *copier) run(tarPath, src, rawDest, dest string) error {
	// First pass: validate every entry and learn what SRC names.
	types := map[string]byte{}
	tr, closer, err := openArchive(c.host(tarPath))
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			closer.Close()
			return fmt.Errorf("read archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, err := entryName(hdr.Name)
		if err != nil {
			closer.Close()
			return err
		}
		switch hdr.Typeflag {
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink:
		case tar.TypeLink:
			if _, err := entryName(hdr.Linkname); err != nil {
				closer.Close()
				return fmt.Errorf("hard link '%s': %w", hdr.Name, err)
			}
		default:
			closer.Close()
			return fmt.Errorf("archive entry '%s' is a device, fifo or other special file (type %q): refusing it", hdr.Name, hdr.Typeflag)
		}
		types[name] = hdr.Typeflag
	}
	closer.Close()

	prefix, glob := staticPrefix(src)
	p := plan{prefix: prefix, dest: dest}
	p.destDir = rawDest == "" || strings.HasSuffix(rawDest, "/") || path.Base(rawDest) == "." || path.Base(rawDest) == ".."
	if typ, ok := types[prefix]; ok && !glob && prefix != "" && (typ == tar.TypeReg || typ == tar.TypeSymlink) {
		p.single = true
		if !p.destDir {
			if r, err := c.dir(dest, false); err == nil && r != "" {
				p.destDir = true
			}
		}
	}

	tr, closer, err = openArchive(c.host(tarPath))
	if err != nil {
		return fmt.Errorf("open archive: %w", err)
	}
	defer closer.Close()
	n := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name, _ := entryName(hdr.Name) // validated above
		to, ok := p.target(name)
		if !ok {
			continue
		}
		n++
		if err := c.extract(hdr, tr, name, to); err != nil {
			return err
		}
	}
	if n == 0 {
		return fail(exitHelper, "copy '%s': no files", src)
	}
	// Innermost first, so that a read-only directory is closed last.
	for i := len(c.dirs) - 1; i >= 0; i-- {
		d := c.dirs[i]
		if err := syscall.Chmod(c.host(d.path), d.mode); err != nil {
			return fmt.Errorf("chmod %s: %w", d.path, err)
		}
		if err := os.Chtimes(c.host(d.path), d.mtime, d.mtime); err != nil {
			return err
		}
	}
	return nil
}

func (c *copier) modeOf(hdr *tar.Header) uint32 {
	if c.mode != nil {
		return *c.mode
	}
	return uint32(hdr.Mode) & 0o7777
}

func (c *copier) extract(hdr *tar.Header, r io.Reader, name, to string) error {
	switch hdr.Typeflag {
	case tar.TypeDir:
		d, err := c.dir(to, true)
		if err != nil {
			return err
		}
		// A directory that was there already keeps its owner and mode
		// (COPY . /home/user must not chmod the home directory).
		if c.made[d] {
			c.dirs = append(c.dirs, dirMeta{path: d, mode: c.modeOf(hdr), mtime: hdr.ModTime})
		}
	case tar.TypeReg:
		dst, err := c.place(to)
		if err != nil {
			return err
		}
		if err := c.writeFile(dst, r, c.modeOf(hdr)); err != nil {
			return err
		}
		if err := os.Chtimes(c.host(dst), hdr.AccessTime, hdr.ModTime); err != nil {
			return err
		}
		c.files[name] = dst
	case tar.TypeSymlink:
		dst, err := c.place(to)
		if err != nil {
			return err
		}
		if err := os.Symlink(hdr.Linkname, c.host(dst)); err != nil {
			return err
		}
		c.links[dst] = true
		if err := os.Lchown(c.host(dst), c.uid, c.gid); err != nil {
			return err
		}
	case tar.TypeLink:
		target, _ := entryName(hdr.Linkname)
		old, ok := c.files[target]
		if !ok {
			return fmt.Errorf("hard link '%s' points to '%s', which this copy has not extracted", hdr.Name, hdr.Linkname)
		}
		dst, err := c.place(to)
		if err != nil {
			return err
		}
		if err := os.Link(c.host(old), c.host(dst)); err != nil {
			return err
		}
		c.files[name] = dst
	}
	return nil
}

func (c *copier) writeFile(dst string, r io.Reader, mode uint32) error {
	// O_EXCL|O_NOFOLLOW: place removed whatever was there, and nothing may
	// turn the name into a symlink meanwhile.
	f, err := os.OpenFile(c.host(dst), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chown(c.uid, c.gid)
	}
	if err == nil {
		// After chown, which clears setuid bits.
		err = f.Chmod(fileMode(mode))
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// fileMode converts Unix permission bits to an fs.FileMode.
func fileMode(m uint32) fs.FileMode {
	fm := fs.FileMode(m & 0o777)
	if m&syscall.S_ISUID != 0 {
		fm |= fs.ModeSetuid
	}
	if m&syscall.S_ISGID != 0 {
		fm |= fs.ModeSetgid
	}
	if m&syscall.S_ISVTX != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}
