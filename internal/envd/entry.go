package envd

import (
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/airlock-sandbox/airlock/proto/filesystem"
)

// metadataXattrPrefix namespaces E2B file metadata among extended attributes.
const metadataXattrPrefix = "user.e2b."

// entryBuilder turns files into EntryInfo messages. It caches uid/gid name
// lookups, so create one per request rather than sharing it.
type entryBuilder struct {
	users  map[uint32]string
	groups map[uint32]string
}

func newEntryBuilder() *entryBuilder {
	return &entryBuilder{users: map[uint32]string{}, groups: map[uint32]string{}}
}

// build describes the file at fsPath (not following a final symlink),
// reporting it under reportPath.
func (b *entryBuilder) build(fsPath, reportPath string) (*pb.EntryInfo, error) {
	fi, err := os.Lstat(fsPath)
	if err != nil {
		return nil, err
	}
	e := &pb.EntryInfo{
		Name:         entryName(reportPath),
		Type:         fileType(fi.Mode()),
		Path:         reportPath,
		Size:         fi.Size(),
		Mode:         uint32(fi.Mode().Perm()),
		Permissions:  fi.Mode().String(),
		ModifiedTime: timestamppb.New(fi.ModTime()),
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		e.Owner = b.userName(st.Uid)
		e.Group = b.groupName(st.Gid)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		// E2B's quirk: type and mode describe the target, permissions keep
		// the link's "L"; a dangling link has an unspecified type.
		e.Type = pb.FileType_FILE_TYPE_UNSPECIFIED
		e.Mode = 0
		target := symlinkTarget(fsPath)
		e.SymlinkTarget = &target
		if ti, err := os.Stat(fsPath); err == nil {
			e.Type = fileType(ti.Mode())
			e.Mode = uint32(ti.Mode().Perm())
		}
	}
	e.Metadata = readMetadata(fsPath)
	return e, nil
}

func entryName(p string) string {
	if p == "/" {
		return "/"
	}
	return filepath.Base(p)
}

func fileType(m fs.FileMode) pb.FileType {
	switch {
	case m.IsRegular():
		return pb.FileType_FILE_TYPE_FILE
	case m.IsDir():
		return pb.FileType_FILE_TYPE_DIRECTORY
	case m&fs.ModeSymlink != 0:
		return pb.FileType_FILE_TYPE_SYMLINK
	default:
		return pb.FileType_FILE_TYPE_UNSPECIFIED
	}
}

// symlinkTarget is the fully resolved target of a link, or for a dangling
// link its literal target made absolute.
func symlinkTarget(p string) string {
	if t, err := filepath.EvalSymlinks(p); err == nil {
		return t
	}
	t, err := os.Readlink(p)
	if err != nil {
		return ""
	}
	if !filepath.IsAbs(t) {
		t = filepath.Join(filepath.Dir(p), t)
	}
	return t
}

func (b *entryBuilder) userName(uid uint32) string {
	if n, ok := b.users[uid]; ok {
		return n
	}
	id := strconv.FormatUint(uint64(uid), 10)
	n := id
	if u, err := user.LookupId(id); err == nil {
		n = u.Username
	}
	b.users[uid] = n
	return n
}

func (b *entryBuilder) groupName(gid uint32) string {
	if n, ok := b.groups[gid]; ok {
		return n
	}
	id := strconv.FormatUint(uint64(gid), 10)
	n := id
	if g, err := user.LookupGroupId(id); err == nil {
		n = g.Name
	}
	b.groups[gid] = n
	return n
}

// readMetadata returns the user.e2b.* extended attributes of p with the
// prefix stripped, or nil when there are none or xattrs are unsupported.
func readMetadata(p string) map[string]string {
	names, err := listXattrs(p)
	if err != nil {
		return nil
	}
	var md map[string]string
	for _, n := range names {
		key, ok := strings.CutPrefix(n, metadataXattrPrefix)
		if !ok || key == "" {
			continue
		}
		val, err := getXattr(p, n)
		if err != nil {
			continue
		}
		if md == nil {
			md = map[string]string{}
		}
		md[key] = val
	}
	return md
}

func listXattrs(p string) ([]string, error) {
	for {
		size, err := unix.Listxattr(p, nil)
		if err != nil || size == 0 {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := unix.Listxattr(p, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew between the two calls
		}
		if err != nil {
			return nil, err
		}
		return splitXattrNames(buf[:n]), nil
	}
}

func getXattr(p, name string) (string, error) {
	for {
		size, err := unix.Getxattr(p, name, nil)
		if err != nil || size == 0 {
			return "", err
		}
		buf := make([]byte, size)
		n, err := unix.Getxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// replaceMetadata drops all existing user.e2b.* attributes of the open file
// and writes md instead.
func replaceMetadata(f *os.File, md map[string]string) error {
	fd := int(f.Fd())
	if names, err := flistXattrs(fd); err == nil {
		for _, n := range names {
			if strings.HasPrefix(n, metadataXattrPrefix) {
				if err := unix.Fremovexattr(fd, n); err != nil && !errors.Is(err, unix.ENODATA) {
					return &fs.PathError{Op: "removexattr", Path: f.Name(), Err: err}
				}
			}
		}
	}
	for k, v := range md {
		if err := unix.Fsetxattr(fd, metadataXattrPrefix+k, []byte(v), 0); err != nil {
			return &fs.PathError{Op: "setxattr", Path: f.Name(), Err: err}
		}
	}
	return nil
}

func flistXattrs(fd int) ([]string, error) {
	size, err := unix.Flistxattr(fd, nil)
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	n, err := unix.Flistxattr(fd, buf)
	if err != nil {
		return nil, err
	}
	return splitXattrNames(buf[:n]), nil
}

// splitXattrNames parses the NUL-separated list returned by listxattr(2).
func splitXattrNames(buf []byte) []string {
	var names []string
	for _, s := range strings.Split(string(buf), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names
}
