package envd

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"

	pb "github.com/airlock-sandbox/airlock/proto/filesystem"
)

func TestStat(t *testing.T) {
	e := newFSEnv(t)
	ctx := context.Background()
	file := e.path("a.txt")
	fsWriteFile(t, file, "hello")
	if err := os.Chmod(file, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(file, "user.e2b.color", []byte("blue"), 0); err != nil {
		t.Fatalf("setxattr (the scratch filesystem must support user xattrs): %v", err)
	}
	if err := unix.Setxattr(file, "user.other", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2024, 5, 1, 12, 0, 0, 123456789, time.UTC)
	if err := os.Chtimes(file, mtime, mtime); err != nil {
		t.Fatal(err)
	}

	res, err := e.client.Stat(ctx, fsAsUser(&pb.StatRequest{Path: file}, "root"))
	if err != nil {
		t.Fatal(err)
	}
	got := res.Msg.GetEntry()
	want := &pb.EntryInfo{
		Name: "a.txt", Type: pb.FileType_FILE_TYPE_FILE, Path: file, Size: 5,
		Mode: 0o640, Permissions: "-rw-r-----", Owner: "root", Group: "root",
	}
	if got.GetName() != want.Name || got.GetType() != want.Type || got.GetPath() != want.Path ||
		got.GetSize() != want.Size || got.GetMode() != want.Mode || got.GetPermissions() != want.Permissions ||
		got.GetOwner() != want.Owner || got.GetGroup() != want.Group {
		t.Errorf("entry = %v, want %v", got, want)
	}
	if !got.GetModifiedTime().AsTime().Equal(mtime) {
		t.Errorf("modifiedTime = %v, want %v", got.GetModifiedTime().AsTime(), mtime)
	}
	if got.SymlinkTarget != nil {
		t.Errorf("symlinkTarget set for a regular file: %q", got.GetSymlinkTarget())
	}
	if md := got.GetMetadata(); len(md) != 1 || md["color"] != "blue" {
		t.Errorf("metadata = %v, want only color=blue", md)
	}

	dirRes, err := e.client.Stat(ctx, connect.NewRequest(&pb.StatRequest{Path: e.dir}))
	if err != nil {
		t.Fatal(err)
	}
	if d := dirRes.Msg.GetEntry(); d.GetType() != pb.FileType_FILE_TYPE_DIRECTORY || d.GetPermissions() != "drwxr-xr-x" || d.GetMode() != 0o755 {
		t.Errorf("dir entry = %v", d)
	}

	private := e.path("private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	fsWriteFile(t, filepath.Join(private, "secret"), "s")

	errCases := []struct {
		name string
		path string
		user string
		code connect.Code
	}{
		{"missing", e.path("nope"), "", connect.CodeNotFound},
		{"unknown user", file, "no-such-user-xyz", connect.CodeUnauthenticated},
		{"no search permission", filepath.Join(private, "secret"), "nobody", connect.CodePermissionDenied},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.Stat(ctx, fsAsUser(&pb.StatRequest{Path: tc.path}, tc.user))
			fsWantCode(t, err, tc.code)
		})
	}
}

func TestStatSymlinks(t *testing.T) {
	e := newFSEnv(t)
	ctx := context.Background()
	target := e.path("target.txt")
	fsWriteFile(t, target, "12345678")
	if err := os.Symlink("target.txt", e.path("link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.path("missing"), e.path("dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(e.dir, e.path("dirlink")); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		link     string
		typ      pb.FileType
		mode     uint32
		target   string
		linkPerm bool
	}{
		{"link", pb.FileType_FILE_TYPE_FILE, 0o644, target, true},
		{"dirlink", pb.FileType_FILE_TYPE_DIRECTORY, 0o755, e.dir, true},
		{"dangling", pb.FileType_FILE_TYPE_UNSPECIFIED, 0, e.path("missing"), true},
	}
	for _, tc := range cases {
		t.Run(tc.link, func(t *testing.T) {
			res, err := e.client.Stat(ctx, connect.NewRequest(&pb.StatRequest{Path: e.path(tc.link)}))
			if err != nil {
				t.Fatal(err)
			}
			got := res.Msg.GetEntry()
			if got.GetType() != tc.typ || got.GetMode() != tc.mode {
				t.Errorf("type/mode = %v/%o, want %v/%o", got.GetType(), got.GetMode(), tc.typ, tc.mode)
			}
			if !strings.HasPrefix(got.GetPermissions(), "L") {
				t.Errorf("permissions = %q, want L prefix", got.GetPermissions())
			}
			if got.SymlinkTarget == nil || got.GetSymlinkTarget() != tc.target {
				t.Errorf("symlinkTarget = %v, want %q", got.SymlinkTarget, tc.target)
			}
			if got.GetPath() != e.path(tc.link) || got.GetName() != tc.link {
				t.Errorf("path/name = %q/%q", got.GetPath(), got.GetName())
			}
		})
	}
}

func TestMakeDir(t *testing.T) {
	e := newFSEnv(t)
	ctx := context.Background()
	home := e.nobodyDir(t, "home")
	fsWriteFile(t, e.path("file"), "x")

	nested := filepath.Join(home, "a", "b", "c")
	res, err := e.client.MakeDir(ctx, fsAsUser(&pb.MakeDirRequest{Path: nested}, "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Msg.GetEntry(); got.GetPath() != nested || got.GetType() != pb.FileType_FILE_TYPE_DIRECTORY || got.GetOwner() != "nobody" {
		t.Errorf("entry = %v", got)
	}
	for _, d := range []string{filepath.Join(home, "a"), filepath.Join(home, "a", "b"), nested} {
		if uid, gid := fsOwnerOf(t, d); uid != e.nobody.UID || gid != e.nobody.GID {
			t.Errorf("%s owned by %d:%d, want nobody", d, uid, gid)
		}
	}

	cases := []struct {
		name string
		path string
		user string
		code connect.Code
	}{
		{"existing dir", nested, "nobody", connect.CodeAlreadyExists},
		{"existing file", e.path("file"), "", connect.CodeInvalidArgument},
		{"parent is a file", e.path("file", "sub"), "", connect.CodeInvalidArgument},
		{"no write permission", e.path("rootonly", "x"), "nobody", connect.CodePermissionDenied},
		{"unknown user", e.path("y"), "no-such-user-xyz", connect.CodeUnauthenticated},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.MakeDir(ctx, fsAsUser(&pb.MakeDirRequest{Path: tc.path}, tc.user))
			fsWantCode(t, err, tc.code)
		})
	}
}

func TestMove(t *testing.T) {
	e := newFSEnv(t)
	ctx := context.Background()
	src := e.path("src.txt")
	fsWriteFile(t, src, "data")
	dst := e.path("deep", "er", "dst.txt")

	res, err := e.client.Move(ctx, connect.NewRequest(&pb.MoveRequest{Source: src, Destination: dst}))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Msg.GetEntry(); got.GetPath() != dst || got.GetName() != "dst.txt" || got.GetSize() != 4 {
		t.Errorf("entry = %v", got)
	}
	if _, err := os.Stat(src); !os.IsNotExist(err) {
		t.Errorf("source still there: %v", err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "data" {
		t.Errorf("destination = %q, %v", b, err)
	}

	_, err = e.client.Move(ctx, connect.NewRequest(&pb.MoveRequest{Source: e.path("missing"), Destination: e.path("x")}))
	fsWantCode(t, err, connect.CodeNotFound)

	// nobody may not rename root's file out of a root-owned directory.
	_, err = e.client.Move(ctx, fsAsUser(&pb.MoveRequest{Source: dst, Destination: e.path("stolen")}, "nobody"))
	fsWantCode(t, err, connect.CodePermissionDenied)
}

func TestListDir(t *testing.T) {
	e := newFSEnv(t)
	ctx := context.Background()
	root := e.path("tree")
	fsWriteFile(t, filepath.Join(root, "a.txt"), "a")
	fsWriteFile(t, filepath.Join(root, "sub", "b.txt"), "bb")
	fsWriteFile(t, filepath.Join(root, "sub", "deeper", "c.txt"), "ccc")
	if err := os.Symlink("a.txt", filepath.Join(root, "link-a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("gone", filepath.Join(root, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(root, e.path("tree-link")); err != nil {
		t.Fatal(err)
	}

	type row struct {
		path string
		typ  pb.FileType
	}
	list := func(t *testing.T, p string, depth uint32) []row {
		t.Helper()
		res, err := e.client.ListDir(ctx, connect.NewRequest(&pb.ListDirRequest{Path: p, Depth: depth}))
		if err != nil {
			t.Fatal(err)
		}
		var rows []row
		for _, en := range res.Msg.GetEntries() {
			if filepath.Base(en.GetPath()) != en.GetName() {
				t.Errorf("name %q does not match path %q", en.GetName(), en.GetPath())
			}
			rows = append(rows, row{en.GetPath(), en.GetType()})
		}
		return rows
	}
	file, dir, unspec := pb.FileType_FILE_TYPE_FILE, pb.FileType_FILE_TYPE_DIRECTORY, pb.FileType_FILE_TYPE_UNSPECIFIED
	j := filepath.Join
	cases := []struct {
		name  string
		path  string
		depth uint32
		want  []row
	}{
		{"depth 0 means 1", root, 0, []row{{j(root, "a.txt"), file}, {j(root, "dangling"), unspec}, {j(root, "link-a"), file}, {j(root, "sub"), dir}}},
		{"depth 2", root, 2, []row{
			{j(root, "a.txt"), file}, {j(root, "dangling"), unspec}, {j(root, "link-a"), file}, {j(root, "sub"), dir},
			{j(root, "sub", "b.txt"), file}, {j(root, "sub", "deeper"), dir},
		}},
		{"symlinked dir argument", e.path("tree-link"), 1, []row{
			{e.path("tree-link", "a.txt"), file}, {e.path("tree-link", "dangling"), unspec},
			{e.path("tree-link", "link-a"), file}, {e.path("tree-link", "sub"), dir},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := list(t, tc.path, tc.depth)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}

	errCases := []struct {
		name string
		path string
		code connect.Code
	}{
		{"missing", e.path("nope"), connect.CodeNotFound},
		{"file", filepath.Join(root, "a.txt"), connect.CodeInvalidArgument},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.client.ListDir(ctx, connect.NewRequest(&pb.ListDirRequest{Path: tc.path}))
			fsWantCode(t, err, tc.code)
		})
	}
}

func TestRemove(t *testing.T) {
	e := newFSEnv(t)
	ctx := context.Background()
	fsWriteFile(t, e.path("tree", "x", "y.txt"), "y")
	if _, err := e.client.Remove(ctx, connect.NewRequest(&pb.RemoveRequest{Path: e.path("tree")})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(e.path("tree")); !os.IsNotExist(err) {
		t.Errorf("tree still exists: %v", err)
	}
	if _, err := e.client.Remove(ctx, connect.NewRequest(&pb.RemoveRequest{Path: e.path("tree")})); err != nil {
		t.Errorf("removing a missing path: %v", err)
	}
	fsWriteFile(t, e.path("keep.txt"), "k")
	_, err := e.client.Remove(ctx, fsAsUser(&pb.RemoveRequest{Path: e.path("keep.txt")}, "nobody"))
	fsWantCode(t, err, connect.CodePermissionDenied)
	if _, err := os.Stat(e.path("keep.txt")); err != nil {
		t.Errorf("file removed despite permissions: %v", err)
	}
}

func TestRelativePathsResolveToHome(t *testing.T) {
	e := newFSEnv(t)
	ctx := context.Background()
	home := e.nobodyDir(t, "home")
	// nobody's real home (/nonexistent) is unusable, so check resolution
	// through the default workdir for "" and through ResolvePath for others.
	e.st.Apply(Config{DefaultWorkdir: home})
	res, err := e.client.ListDir(ctx, fsAsUser(&pb.ListDirRequest{Path: ""}, "nobody"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(res.Msg.GetEntries()); n != 0 {
		t.Errorf("empty home listed %d entries", n)
	}
	if got := e.st.ResolvePath(e.nobody, "x/../y"); got != filepath.Join(e.nobody.Home, "y") {
		t.Errorf("ResolvePath = %q", got)
	}
}
