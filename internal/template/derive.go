package template

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// ErrInvalidName means a template name cannot be used as an alias.
var ErrInvalidName = errors.New("invalid template name")

// ErrStepFailed means one of a derived template's --run commands failed.
var ErrStepFailed = errors.New("build step failed")

// DeriveOptions says how to derive a template from an existing one.
type DeriveOptions struct {
	Name string   // alias of the new template; an existing template of that name is replaced
	From string   // ID or alias of the ready template to start from
	Run  []string // shell commands run in order, as root, inside the copy
	// StartCmd is the new template's start command; nil keeps From's.
	StartCmd *string
	CPUCount int // 0 keeps From's
	MemoryMB int // 0 keeps From's
	// TeamID owns the new template ("" is store.DefaultTeamID); only that
	// team sees it unless Public.
	TeamID string
	Public bool
	// Runtime is the runtime its sandboxes use unless a create names one:
	// "runc" or "runsc"; "" keeps From's ("" there = the server's default).
	Runtime string
}

// namePattern is what a derived template may be called: an alias usable in
// a URL path and a hostname-like label, and never mistaken for a path.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// Derive builds a template from a copy of a ready template's rootfs with
// opts.Run executed inside it, and records it ready under opts.Name.
// Rebuilding an existing name keeps its ID and swaps in a new rootfs; the
// old tree is removed once no sandbox uses it. Progress, and each command's
// output, go to progress. On failure nothing is recorded or left on disk.
func (m *Manager) Derive(ctx context.Context, opts DeriveOptions, progress io.Writer) (*store.Template, error) {
	if !namePattern.MatchString(opts.Name) {
		return nil, fmt.Errorf("%w %q: use lowercase letters, digits, '.', '_' and '-' (at most 63)", ErrInvalidName, opts.Name)
	}
	if !slices.Contains([]string{"", "runc", "runsc"}, opts.Runtime) {
		return nil, fmt.Errorf("%w: runtime %q (want runc or runsc)", ErrInvalidName, opts.Runtime)
	}
	if err := os.MkdirAll(m.templatesDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create templates dir: %w", err)
	}
	if progress == nil {
		progress = io.Discard
	}
	// The lock keeps a starting server's removeStale off our build dir.
	unlock, err := m.lockTemplates(progress)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if opts.TeamID == "" {
		opts.TeamID = store.DefaultTeamID
	}
	from, err := m.Resolve(ctx, opts.From)
	if err != nil {
		return nil, err
	}
	if from.TeamID != "" && from.TeamID != opts.TeamID && !from.Public {
		return nil, fmt.Errorf("template %q: %w", opts.From, ErrNotFound)
	}
	if !isDir(from.RootfsDir) {
		return nil, fmt.Errorf("template %q: rootfs %s is missing", opts.From, from.RootfsDir)
	}

	rec, err := m.derivedRecord(ctx, opts, from)
	if err != nil {
		return nil, err
	}
	fill := func(ctx context.Context, dir string, rep *reporter) error {
		return m.fillDerived(ctx, from, opts.Run, dir, rep)
	}
	if err := m.build(ctx, rec, progress, fill); err != nil {
		_ = os.Remove(filepath.Dir(rec.RootfsDir)) // only if empty: a new template's dir
		return nil, err
	}
	if err := m.put(ctx, rec, StatusReady); err != nil {
		if rerr := removeTree(rec.RootfsDir); rerr != nil {
			m.log.Error("remove unrecorded template rootfs", "dir", rec.RootfsDir, "err", rerr)
		}
		_ = os.Remove(filepath.Dir(rec.RootfsDir))
		return nil, err
	}
	m.pruneOldRootfs(filepath.Dir(rec.RootfsDir), rec.RootfsDir)
	return rec, nil
}

// derivedRecord returns the record the new template will have: the existing
// one of that name with a new rootfs, or a new one with a fresh ID.
func (m *Manager) derivedRecord(ctx context.Context, opts DeriveOptions, from *store.Template) (*store.Template, error) {
	now := time.Now().UTC()
	rec := &store.Template{
		Aliases:    []string{opts.Name},
		CPUCount:   from.CPUCount,
		MemoryMB:   from.MemoryMB,
		DiskSizeMB: from.DiskSizeMB,
		StartCmd:   from.StartCmd,
		Runtime:    from.Runtime,
		TeamID:     opts.TeamID,
		Public:     opts.Public,
		CreatedAt:  now,
	}
	old, err := m.st.GetTemplate(ctx, opts.Name)
	switch {
	case err == nil:
		if old.ID == stableID(BaseAlias) || old.ID == stableID(CodeInterpreterAlias) || old.TeamID == "" {
			return nil, fmt.Errorf("%w %q: it is a built-in template", ErrInvalidName, opts.Name)
		}
		if old.TeamID != opts.TeamID {
			return nil, fmt.Errorf("%w %q: another team has a template of that name", ErrInvalidName, opts.Name)
		}
		rec.ID, rec.Aliases, rec.CreatedAt = old.ID, old.Aliases, old.CreatedAt
		rec.SpawnCount, rec.LastSpawnAt = old.SpawnCount, old.LastSpawnAt
	case errors.Is(err, store.ErrNotFound):
		if rec.ID, err = newID(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("get template %q: %w", opts.Name, err)
	}
	if opts.StartCmd != nil {
		rec.StartCmd = *opts.StartCmd
	}
	if opts.Runtime != "" {
		rec.Runtime = opts.Runtime
	}
	if opts.CPUCount > 0 {
		rec.CPUCount = opts.CPUCount
	}
	if opts.MemoryMB > 0 {
		rec.MemoryMB = opts.MemoryMB
	}
	build, err := newID()
	if err != nil {
		return nil, err
	}
	// A new directory per build: sandboxes on the old tree keep it.
	rec.RootfsDir = m.rootfsDir(rec.ID, "d-"+build[:8])
	return rec, nil
}

// fillDerived copies from's rootfs into dir and runs the steps in it.
func (m *Manager) fillDerived(ctx context.Context, from *store.Template, steps []string, dir string, rep *reporter) error {
	const copyEnd, stepsEnd = 20, 95
	copyPhase := "copy " + from.ID
	if len(from.Aliases) > 0 {
		copyPhase = "copy " + from.Aliases[0]
	}
	rep.Update(copyPhase, 0)
	err := copyTree(ctx, from.RootfsDir, dir, func(frac float64) {
		rep.Update(copyPhase, int(min(max(frac, 0), 1)*copyEnd))
	})
	if err != nil {
		return err
	}
	for i, step := range steps {
		pct := copyEnd + i*(stepsEnd-copyEnd)/len(steps)
		rep.Update(fmt.Sprintf("run %d/%d", i+1, len(steps)), pct)
		rep.Println(fmt.Sprintf("$ %s", step))
		out := &lineWriter{fn: func(line string) {
			m.log.Debug("build output", "template", rep.name, "line", line)
			rep.Println("  " + line)
		}}
		err := runStep(ctx, dir, m.cacheDir(), step, out)
		out.Flush()
		if err != nil {
			return fmt.Errorf("%w: step %d (%s): %w (last output: %s)", ErrStepFailed, i+1, step, err, out.Tail())
		}
	}
	rep.Update("finalize", stepsEnd)
	return cleanCaches(dir)
}

// stepScript runs $STEP with /bin/sh inside the rootfs $R as root, in a
// private mount and PID namespace: when the step ends, whatever it left
// running dies with the namespace and every mount below goes away. The
// host's resolver config and CA bundle are lent read-only for downloads
// (a host behind a TLS proxy trusts its CA; the rootfs may not), and the
// shared .deb cache speeds up apt-get.
const stepScript = `set -eu
mount -t proc proc "$R/proc"
mount -t tmpfs -o mode=755,nosuid dev "$R/dev"
for d in null zero full random urandom tty; do
	: >"$R/dev/$d"
	mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir -p "$R/dev/shm" "$R/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$R/dev/shm"
ln -s /proc/self/fd "$R/dev/fd"
lend() { # host file, file in the rootfs: bind read-only if the target is a plain file
	[ -f "$1" ] && [ -f "$R$2" ] && [ ! -L "$R$2" ] || return 1
	mount --bind "$1" "$R$2" && mount -o remount,bind,ro "$R$2"
}
lend /etc/resolv.conf /etc/resolv.conf || true
ca=
if [ -d "$R/tmp" ] && [ ! -L "$R/tmp" ] && : >"$R/tmp/.airlock-host-ca.crt" && lend /etc/ssl/certs/ca-certificates.crt /tmp/.airlock-host-ca.crt; then
	ca=/tmp/.airlock-host-ca.crt
fi
if [ -d "$R/var/cache/apt/archives" ] && [ ! -L "$R/var/cache/apt/archives" ]; then
	mount --bind "$CACHE" "$R/var/cache/apt/archives"
fi
if [ -n "$ca" ]; then
	set -- SSL_CERT_FILE=$ca REQUESTS_CA_BUNDLE=$ca PIP_CERT=$ca CURL_CA_BUNDLE=$ca GIT_SSL_CAINFO=$ca NODE_EXTRA_CA_CERTS=$ca
fi
chroot "$R" env HOME=/root USER=root LOGNAME=root "$@" /bin/sh -c "$STEP"
`

// runStep runs one build step in the rootfs at root, writing its output to out.
func runStep(ctx context.Context, root, cacheDir, step string, out io.Writer) error {
	for _, tool := range []string{"chroot", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found in PATH", ErrToolMissing, tool)
		}
	}
	if !isExecutable(filepath.Join(root, "bin/sh")) {
		return fmt.Errorf("no /bin/sh in the template's rootfs")
	}
	if err := os.MkdirAll(filepath.Join(cacheDir, "partial"), 0o755); err != nil {
		return fmt.Errorf("create apt cache: %w", err)
	}
	for _, d := range []string{"proc", "dev"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
	}
	defer os.Remove(filepath.Join(root, "tmp/.airlock-host-ca.crt"))

	cmd := exec.CommandContext(ctx, "sh", "-c", stepScript, "airlock-step")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(),
		"DEBIAN_FRONTEND=noninteractive",
		"LC_ALL=C.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"R="+root, "CACHE="+cacheDir, "STEP="+step,
	)
	// As in runIsolated, plus a PID namespace whose init is the script.
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:   syscall.CLONE_NEWPID,
		Unshareflags: syscall.CLONE_NEWNS,
		Setpgid:      true,
		Pdeathsig:    syscall.SIGKILL,
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd.Run()
}

// lockTemplates takes the templates lock (see ensure), saying so on
// progress when another build holds it.
func (m *Manager) lockTemplates(progress io.Writer) (func(), error) {
	path := filepath.Join(m.templatesDir(), ".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		fmt.Fprintln(progress, "waiting for another template build to finish...")
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// newID returns a random 20-character [a-z0-9] ID.
func newID() (string, error) {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b), nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Println writes a line of build output between progress updates, moving
// the terminal bar out of its way.
func (r *reporter) Println(line string) {
	if r.bar != nil {
		_ = r.bar.Clear()
	}
	fmt.Fprintln(r.w, strings.TrimRight(line, "\n"))
	if r.bar != nil {
		_ = r.bar.RenderBlank()
	}
}
