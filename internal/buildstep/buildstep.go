// Package buildstep is the helper that a template build's shell steps run
// inside the build sandbox, as `envd build-step <op> ...`: it gives RUN,
// COPY, WORKDIR, USER and the start/ready commands Docker's semantics
// without depending on the tools (su, tar, id) of whatever image the
// template starts from. It always runs as root in the sandbox.
//
// Every failure of the helper itself ends its output with one line
// "airlock-build: <reason>" on stderr, which the builder reports as the
// build's failure reason.
package buildstep

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Exit statuses of the helper's own failures (a command's status passes
// through). 125 is what docker run uses for "the runtime failed".
const (
	exitHelper = 125
	exitFailed = 1
)

// Main runs the operation args name and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	return (&helper{root: "/", stdout: stdout, stderr: stderr}).main(args)
}

type helper struct {
	// root is where the sandbox's "/" is for the file-writing operations
	// (copy, workdir): "/" in production, a temporary directory in tests.
	// Commands (run, ready) always run in the real filesystem.
	root           string
	stdout, stderr io.Writer
}

// failure is an operation's reason to stop, with its exit status.
type failure struct {
	code   int
	msg    string
	detail []string // lines printed before msg
}

func (f *failure) Error() string { return f.msg }

func fail(code int, format string, a ...any) error {
	return &failure{code: code, msg: fmt.Sprintf(format, a...)}
}

func (h *helper) main(args []string) int {
	code, err := h.dispatch(args)
	if err == nil {
		return code
	}
	// Printed only now, after the operation stopped everything it
	// started, so that nothing comes after the reason.
	code = exitHelper
	var f *failure
	if errors.As(err, &f) {
		code = f.code
		for _, l := range f.detail {
			fmt.Fprintln(h.stderr, l)
		}
	}
	// One line, so that the builder can find it.
	msg := strings.ReplaceAll(err.Error(), "\n", " ")
	fmt.Fprintf(h.stderr, "airlock-build: %s\n", msg)
	return code
}

func (h *helper) dispatch(args []string) (int, error) {
	if len(args) == 0 {
		return 0, fail(exitHelper, "build-step: missing operation (run, copy, workdir, user, ready, provision)")
	}
	op, args := args[0], args[1:]
	switch op {
	case "run":
		return h.run(args)
	case "copy":
		return 0, h.copy(args)
	case "workdir":
		return 0, h.workdir(args)
	case "user":
		return 0, h.user(args)
	case "ready":
		return h.ready(args)
	case "provision":
		return 0, h.provision(args)
	}
	return 0, fail(exitHelper, "build-step: unknown operation '%s'", op)
}

// parse parses args into fs, wanting exactly nargs positional arguments.
func parse(fs *flag.FlagSet, args []string, nargs int, usage string) ([]string, error) {
	fs.SetOutput(io.Discard) // our own one-line error is enough
	if err := fs.Parse(args); err != nil {
		return nil, fail(exitHelper, "%s: %v (usage: %s)", fs.Name(), err, usage)
	}
	if fs.NArg() != nargs {
		return nil, fail(exitHelper, "%s: want %d argument(s), got %d (usage: %s)", fs.Name(), nargs, fs.NArg(), usage)
	}
	return fs.Args(), nil
}

// envFlag collects repeated --env K=V flags in order.
type envFlag []string

func (e *envFlag) String() string { return strings.Join(*e, " ") }

func (e *envFlag) Set(kv string) error {
	if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
		return fmt.Errorf("--env %q is not KEY=VALUE", kv)
	}
	*e = append(*e, kv)
	return nil
}

// account is a resolved user spec: "name", "uid", optionally ":group".
type account struct {
	name     string
	uid, gid uint32
	groups   []uint32 // supplementary groups, the primary one included
	home     string
}

// lookupAccount resolves spec from the sandbox's /etc/passwd and
// /etc/group (os/user reads them directly in a cgo-less build).
func lookupAccount(spec string) (*account, error) {
	invalid := fail(exitHelper, "invalid username: '%s'", spec)
	name, group, hasGroup := strings.Cut(spec, ":")
	if name == "" || (hasGroup && group == "") {
		return nil, invalid
	}
	a, err := lookupUser(name)
	if err != nil {
		return nil, invalid
	}
	if hasGroup {
		gid, err := lookupGroup(group)
		if err != nil {
			return nil, fail(exitHelper, "invalid group: '%s'", group)
		}
		// As Docker's USER user:group: that group only.
		a.gid, a.groups = gid, []uint32{gid}
	}
	return a, nil
}

func lookupUser(name string) (*account, error) {
	var u *user.User
	var err error
	numeric := isNumeric(name)
	if numeric {
		u, err = user.LookupId(name)
	} else {
		u, err = user.Lookup(name)
	}
	if err != nil {
		switch {
		case numeric:
			// As Docker: a uid without a passwd entry runs with gid 0.
			uid, perr := strconv.ParseUint(name, 10, 32)
			if perr != nil {
				return nil, fmt.Errorf("uid %s: %w", name, perr)
			}
			home := "/"
			if uid == 0 {
				home = "/root"
			}
			return &account{name: name, uid: uint32(uid), groups: []uint32{0}, home: home}, nil
		case name == "root":
			// Images without /etc/passwd still have root.
			return &account{name: "root", groups: []uint32{0}, home: "/root"}, nil
		}
		return nil, fmt.Errorf("look up user %s: %w", name, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of %s: %w", name, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of %s: %w", name, err)
	}
	a := &account{name: u.Username, uid: uint32(uid), gid: uint32(gid), groups: []uint32{uint32(gid)}, home: u.HomeDir}
	if ids, err := u.GroupIds(); err == nil {
		for _, s := range ids {
			if g, err := strconv.ParseUint(s, 10, 32); err == nil && uint32(g) != a.gid {
				a.groups = append(a.groups, uint32(g))
			}
		}
	}
	return a, nil
}

func lookupGroup(name string) (uint32, error) {
	var g *user.Group
	var err error
	if isNumeric(name) {
		if g, err = user.LookupGroupId(name); err != nil {
			n, perr := strconv.ParseUint(name, 10, 32)
			if perr != nil {
				return 0, fmt.Errorf("gid %s: %w", name, perr)
			}
			return uint32(n), nil // a gid needs no entry, as in Docker
		}
	} else if g, err = user.LookupGroup(name); err != nil {
		return 0, fmt.Errorf("look up group %s: %w", name, err)
	}
	n, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("gid of %s: %w", name, err)
	}
	return uint32(n), nil
}

func isNumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// host is the real path of sandbox path p.
func (h *helper) host(p string) string {
	return filepath.Join(h.root, filepath.FromSlash(p))
}

// user checks that a USER step names a user.
func (h *helper) user(args []string) error {
	fs := flag.NewFlagSet("user", flag.ContinueOnError)
	pos, err := parse(fs, args, 1, "user NAME")
	if err != nil {
		return err
	}
	_, err = lookupAccount(pos[0])
	return err
}

// workdir makes a WORKDIR step's directory, as mkdir -p, giving the
// directories it creates to the step's user.
func (h *helper) workdir(args []string) error {
	fs := flag.NewFlagSet("workdir", flag.ContinueOnError)
	userSpec := fs.String("user", "root", "owner of the directories created")
	pos, err := parse(fs, args, 1, "workdir --user U PATH")
	if err != nil {
		return err
	}
	dir := pos[0]
	if !path.IsAbs(dir) {
		return fail(exitHelper, "workdir '%s': not an absolute path", dir)
	}
	a, err := lookupAccount(*userSpec)
	if err != nil {
		return err
	}
	t := &tree{helper: h, uid: int(a.uid), gid: int(a.gid)}
	if _, err := t.dir(path.Clean(dir), true); err != nil {
		if errors.Is(err, errNotDir) {
			return fail(exitHelper, "workdir '%s': not a directory", dir)
		}
		return fail(exitHelper, "workdir '%s': %v", dir, err)
	}
	return nil
}
