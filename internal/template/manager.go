// Package template builds, caches and resolves the rootfs directories that
// sandboxes are created from (the read-only lower layer of their overlay).
package template

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// ErrNotFound means no ready template has the requested ID or alias. It
// wraps store.ErrNotFound, so errors.Is works with either.
var ErrNotFound = fmt.Errorf("template not found: %w", store.ErrNotFound)

// Build states recorded in store.Template.BuildStatus.
const (
	StatusBuilding = "building"
	StatusReady    = "ready"
	StatusError    = "error"
)

// Names of the built-in templates.
const (
	BaseAlias            = "base"
	CodeInterpreterAlias = "code-interpreter-v1"
)

// Resources recorded for the built-in templates; sandboxes may override them.
const (
	DefaultCPUCount   = 2
	DefaultMemoryMB   = 1024
	DefaultDiskSizeMB = 10240
)

// basePackages go into the base template on top of debootstrap's minbase:
// what E2B's base image answers by name (python and pip as well as python3,
// Node with npm, git, curl, sudo, a C toolchain and Python headers so pip
// can build native wheels) plus the small tools people reach for in a
// shell. apt-get installs them, because debootstrap's resolver cannot
// handle virtual packages (npm needs some).
var basePackages = []string{
	"ca-certificates", "curl", "wget", "git", "sudo", "procps", "iproute2", "less",
	"netbase", "tzdata", "unzip", "zip", "xz-utils", "jq", "file",
	"python3", "python3-pip", "python3-venv", "python3-dev", "python-is-python3",
	"build-essential",
	"nodejs", "npm",
}

// Config configures a Manager. Zero fields get defaults.
type Config struct {
	DataDir string // templates live in DataDir/templates/<id>/rootfs; .debs in DataDir/cache/apt
	Mirror  string // Debian mirror; default: the host's apt mirror, else deb.debian.org
	Suite   string // default "bookworm"
	// Steps runs derived templates' build steps in sandboxes; without it
	// a build with steps fails with ErrNoStepRunner.
	Steps StepRunner
}

// Manager builds the built-in templates and resolves templates for sandboxes.
type Manager struct {
	cfg      Config
	st       store.Templates
	log      *slog.Logger
	sources  aptSources
	populate populateFunc // debootstrap + apt-get; replaced in tests
	install  installFunc  // apt-get + npm into a copy of base; replaced in tests
	// bootEstimate is the expected number of packages debootstrap fetches
	// (bookworm minbase), for the progress bar before the real count is known.
	bootEstimate int
}

// NewManager returns a Manager that keeps templates under cfg.DataDir and
// records them in st.
func NewManager(cfg Config, st store.Templates, log *slog.Logger) *Manager {
	if log == nil {
		log = slog.Default()
	}
	src := detectSources("/etc/apt")
	if cfg.Mirror != "" {
		src.Archive = strings.TrimRight(cfg.Mirror, "/")
	}
	cfg.Mirror = src.Archive
	if cfg.Suite == "" {
		cfg.Suite = "bookworm"
	}
	return &Manager{
		cfg:          cfg,
		st:           st,
		log:          log.With("component", "template"),
		sources:      src,
		populate:     populateDebootstrap,
		install:      installLayer,
		bootEstimate: 88,
	}
}

// RemoveFiles deletes a template's directory (every rootfs version of it)
// once no sandbox runs on it: trees still leased are retired and go with
// their last sandbox. It only touches the template's own directory under
// templates/: a build that changed nothing uses its base's tree, which
// stays.
func (m *Manager) RemoveFiles(t *store.Template) error {
	dir := filepath.Join(m.templatesDir(), t.ID)
	if !validTreeID(t.ID) {
		return fmt.Errorf("template %q: not a template directory name; not removing anything", t.ID)
	}
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	// No templates lock: a build holds it for minutes, and builds only
	// write their own template's directory.
	all := true
	for _, p := range rootfsTrees(dir, "") {
		gone, err := m.retire(p)
		if err != nil {
			return err
		}
		all = all && gone
	}
	if !all {
		return nil
	}
	return removeTree(dir)
}

// rootfsTrees lists the rootfs trees in a template's directory, except keep
// (not builds in progress, leases dirs or marks).
func rootfsTrees(dir, keep string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		if p == keep || !e.IsDir() || !strings.HasPrefix(e.Name(), "rootfs") || strings.HasSuffix(e.Name(), ".leases") || strings.HasPrefix(e.Name(), tmpPrefix) {
			continue
		}
		out = append(out, p)
	}
	return out
}

func (m *Manager) templatesDir() string { return filepath.Join(m.cfg.DataDir, "templates") }
func (m *Manager) cacheDir() string     { return filepath.Join(m.cfg.DataDir, "cache", "apt") }

// baseRecipe names the current way "base" is built. Bump it whenever the
// build changes: a data dir holding a rootfs of another recipe rebuilds it,
// and the rootfs path carries the recipe so sandboxes still running on the
// old tree keep it until they are gone.
const baseRecipe = "base-4"

func (m *Manager) rootfsDir(id, recipe string) string {
	return filepath.Join(m.templatesDir(), id, "rootfs-"+recipe)
}

// Resolve finds a ready template by ID or alias.
func (m *Manager) Resolve(ctx context.Context, ref string) (*store.Template, error) {
	t, err := m.st.GetTemplate(ctx, ref)
	if name, tag := SplitRef(ref); errors.Is(err, store.ErrNotFound) && tag != "" {
		// name:tag names one build of the template.
		if t, err = m.st.GetTemplate(ctx, name); err == nil {
			return m.resolveTag(ctx, t, tag)
		}
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("get template %q: %w", ref, err)
	}
	if t.BuildStatus != StatusReady {
		return nil, fmt.Errorf("%w: %q is %s, not ready", ErrNotFound, ref, t.BuildStatus)
	}
	return t, nil
}

// EnsureDefaults makes sure the built-in templates exist: it builds "base"
// if it is missing (minutes, with progress written to progress), then
// "code-interpreter-v1" from a copy of base plus the interpreter's
// packages. When both are already built and recorded it does no work.
//
// Only base is essential: when code-interpreter-v1 fails to build (say
// npm is unreachable) the error is logged, its record says "error", the
// server runs without it, and the next start tries again. ctx being
// cancelled is still an error.
func (m *Manager) EnsureDefaults(ctx context.Context, progress io.Writer) error {
	base, err := m.ensure(ctx, builtin{alias: BaseAlias, recipe: baseRecipe, fill: m.fillBase}, progress)
	if err != nil {
		return err
	}
	err = m.ensureCodeInterpreter(ctx, base, progress)
	if err != nil && ctx.Err() == nil {
		m.log.Error("code-interpreter-v1 is unavailable until a later start builds it", "err", err)
		return nil
	}
	return err
}

func (m *Manager) ensureCodeInterpreter(ctx context.Context, base *store.Template, progress io.Writer) error {
	_, err := m.ensure(ctx, builtin{
		alias:    CodeInterpreterAlias,
		recipe:   baseRecipe + "." + ciRecipe,
		startCmd: InterpreterStartCmd,
		fill: func(ctx context.Context, dir string, rep *reporter) error {
			return m.fillCodeInterpreter(ctx, base.RootfsDir, dir, rep)
		},
	}, progress)
	return err
}

// builtin is a template Airlock builds itself.
type builtin struct {
	alias    string
	recipe   string // goes into the rootfs path; see baseRecipe
	startCmd string
	fill     fillFunc
}

// ensure returns the ready record of a built-in template, building it if needed.
func (m *Manager) ensure(ctx context.Context, b builtin, progress io.Writer) (*store.Template, error) {
	id := stableID(b.alias)
	if t, err := m.st.GetTemplate(ctx, b.alias); err == nil {
		id = t.ID
		if t.BuildStatus == StatusReady && t.RootfsDir == m.rootfsDir(id, b.recipe) && t.StartCmd == b.startCmd && isBuilt(t.RootfsDir) {
			return t, nil // fast path
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("get template %q: %w", b.alias, err)
	}

	if err := os.MkdirAll(m.templatesDir(), 0o755); err != nil {
		return nil, fmt.Errorf("create templates dir: %w", err)
	}
	// One builder per data dir; a second `airlock serve` waits, then finds the result.
	unlock, err := lockFile(filepath.Join(m.templatesDir(), ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := m.removeStale(); err != nil {
		return nil, err
	}

	rec := &store.Template{
		ID:         id,
		Aliases:    []string{b.alias},
		RootfsDir:  m.rootfsDir(id, b.recipe),
		CPUCount:   DefaultCPUCount,
		MemoryMB:   DefaultMemoryMB,
		DiskSizeMB: DefaultDiskSizeMB,
		StartCmd:   b.startCmd,
		Public:     true,
		CreatedAt:  time.Now().UTC(),
	}
	if isBuilt(rec.RootfsDir) {
		// Built and renamed into place, but the store never heard (crash or a new database).
		m.log.Info("found built template, recording it", "template", b.alias, "id", id)
		return rec, m.put(ctx, rec, StatusReady)
	}
	defer m.pruneOldRootfs(filepath.Dir(rec.RootfsDir), rec.RootfsDir)
	if err := m.put(ctx, rec, StatusBuilding); err != nil {
		return nil, err
	}
	if err := m.build(ctx, rec, progress, b.fill); err != nil {
		// Recording the failure is best effort: the build error matters more.
		if perr := m.put(context.WithoutCancel(ctx), rec, StatusError); perr != nil {
			m.log.Error("record failed build", "template", b.alias, "err", perr)
		}
		return nil, err
	}
	return rec, m.put(ctx, rec, StatusReady)
}

// pruneOldRootfs retires the other rootfs trees of a template: removed now
// when no sandbox runs on them, else by their last sandbox's release.
func (m *Manager) pruneOldRootfs(dir, keep string) {
	for _, p := range rootfsTrees(dir, keep) {
		if gone, err := m.retire(p); err != nil {
			m.log.Warn("retire old template rootfs", "dir", p, "err", err)
		} else if gone {
			m.log.Info("removed template rootfs of an older build", "dir", p)
		}
	}
}

func (m *Manager) put(ctx context.Context, t *store.Template, status string) error {
	t.BuildStatus = status
	t.UpdatedAt = time.Now().UTC()
	if err := m.st.PutTemplate(ctx, t); err != nil {
		return fmt.Errorf("record template %s as %s: %w", t.ID, status, err)
	}
	return nil
}

// isBuilt reports whether dir holds a finished rootfs. Builds are renamed
// into place only when complete, so existence is the commit mark; os-release
// guards against a tree someone half deleted.
func isBuilt(dir string) bool {
	if dir == "" {
		return false
	}
	_, err := os.Lstat(filepath.Join(dir, "etc", "os-release"))
	return err == nil
}

// stableID derives a 20-character [a-z0-9] ID from a built-in template's
// name, so it is the same on every install.
func stableID(name string) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	sum := sha256.Sum256([]byte("airlock-template/" + name))
	id := make([]byte, 20)
	for i := range id {
		id[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return string(id)
}
