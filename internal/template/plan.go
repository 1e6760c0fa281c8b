package template

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// TreeRequest is one build of a rootfs tree for the build API: a source
// template's tree plus shell steps run in a build sandbox.
type TreeRequest struct {
	TemplateID string // the tree goes under templates/<TemplateID>/
	BuildID    string
	// Key is the content key of the whole build (source tree, steps and
	// their inputs): a finished tree with the same key is reused as it is.
	// "" always builds.
	Key     string
	From    *store.Template // a ready template
	Steps   []string        // run in order by the build sandbox, as root
	Lend    []Lend
	Runtime string
	// CPUCount and MemoryMB bound the build sandbox (0: From's).
	CPUCount, MemoryMB int
	Step               func(i int) // before step i (0-based)
	Output             io.Writer   // the steps' output lines
}

// keyLocks serialises builds of one tree key: a second build of a key waits
// for the first and then reuses its tree.
var keyLocks sync.Map // tree path -> *sync.Mutex

// BuildTree builds req's tree, or finds one built before with its key, and
// returns its path. On failure nothing is left on disk.
func (m *Manager) BuildTree(ctx context.Context, req TreeRequest) (dir string, cached bool, err error) {
	if req.From == nil || !isDir(req.From.RootfsDir) {
		return "", false, fmt.Errorf("%w: the source template has no tree", ErrNotFound)
	}
	if !validTreeID(req.TemplateID) || req.BuildID == "" {
		return "", false, fmt.Errorf("template: bad tree request %q/%q", req.TemplateID, req.BuildID)
	}
	recipe := "b-" + shortID(req.BuildID)
	if req.Key != "" {
		recipe = "c-" + shortID(req.Key)
	}
	dir = m.rootfsDir(req.TemplateID, recipe)
	mu, _ := keyLocks.LoadOrStore(dir, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if req.Key != "" && isBuilt(dir) {
		if _, err := os.Lstat(retiredMark(dir)); errors.Is(err, os.ErrNotExist) {
			return dir, true, nil
		}
		// A retired tree still in use is not reused: build beside it.
		dir = m.rootfsDir(req.TemplateID, "b-"+shortID(req.BuildID))
	}
	if err := os.MkdirAll(m.templatesDir(), 0o755); err != nil {
		return "", false, fmt.Errorf("create templates dir: %w", err)
	}
	// Shared: builds run side by side; a starting server's sweep of
	// leftovers (exclusive) waits for them.
	unlock, err := lockFileShared(filepath.Join(m.templatesDir(), ".lock"))
	if err != nil {
		return "", false, err
	}
	defer unlock()

	from := *req.From
	if req.CPUCount > 0 {
		from.CPUCount = req.CPUCount
	}
	if req.MemoryMB > 0 {
		from.MemoryMB = req.MemoryMB
	}
	rec := &store.Template{ID: req.TemplateID, Aliases: []string{req.TemplateID}, RootfsDir: dir}
	fill := func(ctx context.Context, tmp string, rep *reporter) error {
		return m.fillSteps(ctx, &from, tmp, rep, StepRequest{
			Steps: req.Steps, Runtime: req.Runtime, Lend: req.Lend,
			CPUCount: from.CPUCount, MemoryMB: from.MemoryMB, DiskMB: from.DiskSizeMB,
			Output: req.Output,
		}, buildHolderFor(shortID(req.BuildID)), req.Step)
	}
	if err := m.build(ctx, rec, io.Discard, fill); err != nil {
		_ = os.Remove(filepath.Dir(dir)) // only if empty: a new template's dir
		return "", false, err
	}
	return dir, false, nil
}

// PruneTrees retires the trees of a template that keep does not name
// (those of its tagged builds); sandboxes on them keep them until they end.
func (m *Manager) PruneTrees(templateID string, keep []string) {
	if !validTreeID(templateID) {
		return
	}
	for _, p := range rootfsTrees(filepath.Join(m.templatesDir(), templateID), "") {
		if containsPath(keep, p) {
			continue
		}
		if gone, err := m.retire(p); err != nil {
			m.log.Warn("retire untagged template tree", "dir", p, "err", err)
		} else if gone {
			m.log.Info("removed the tree of an untagged build", "dir", p)
		}
	}
}

func containsPath(list []string, p string) bool {
	for _, q := range list {
		if filepath.Clean(q) == filepath.Clean(p) {
			return true
		}
	}
	return false
}

// validTreeID accepts what may name a directory under templates/.
func validTreeID(id string) bool {
	return id != "" && id == filepath.Base(id) && !strings.HasPrefix(id, ".") && namePattern.MatchString(id)
}

func shortID(id string) string {
	id = strings.ReplaceAll(id, "-", "")
	if len(id) > 16 {
		id = id[:16]
	}
	return id
}

// SplitRef splits a template reference into its name and tag
// ("name:tag"); a reference without a tag has tag "".
func SplitRef(ref string) (name, tag string) {
	if i := strings.LastIndexByte(ref, ':'); i >= 0 {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// DefaultTag is the tag of a template's newest build, and what a
// reference without a tag means.
const DefaultTag = "default"

// withBuild is t as its build b has it: the tree and settings of b.
func withBuild(t *store.Template, b *store.TemplateBuild) *store.Template {
	c := *t
	c.BuildID = b.ID
	c.RootfsDir = b.RootfsDir
	c.StartCmd, c.ReadyCmd = b.StartCmd, b.ReadyCmd
	c.User, c.Workdir, c.Envs = b.User, b.Workdir, b.Envs
	if b.CPUCount > 0 {
		c.CPUCount = b.CPUCount
	}
	if b.MemoryMB > 0 {
		c.MemoryMB = b.MemoryMB
	}
	c.BuildStatus = StatusReady
	return &c
}

// resolveTag finds the build a template's tag names.
func (m *Manager) resolveTag(ctx context.Context, t *store.Template, tag string) (*store.Template, error) {
	bs, ok := m.st.(store.TemplateBuilds)
	if !ok {
		return nil, fmt.Errorf("%w: %s:%s (this store has no tags)", ErrNotFound, t.ID, tag)
	}
	tg, err := bs.GetTemplateTag(ctx, t.ID, tag)
	if errors.Is(err, store.ErrNotFound) {
		if tag == DefaultTag && t.BuildStatus == StatusReady {
			return t, nil // built-in and CLI-built templates have no tags
		}
		return nil, fmt.Errorf("%w: tag %q of template %q", ErrNotFound, tag, t.ID)
	}
	if err != nil {
		return nil, fmt.Errorf("get tag %q of template %q: %w", tag, t.ID, err)
	}
	b, err := bs.GetTemplateBuild(ctx, tg.BuildID)
	if err != nil {
		return nil, fmt.Errorf("build %s of template %s:%s: %w", tg.BuildID, t.ID, tag, err)
	}
	if b.Status != store.BuildReady || b.RootfsDir == "" {
		return nil, fmt.Errorf("%w: %s:%s is %s, not ready", ErrNotFound, t.ID, tag, b.Status)
	}
	return withBuild(t, b), nil
}
