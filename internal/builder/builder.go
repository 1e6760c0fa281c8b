// Package builder runs E2B's template build API: it registers builds,
// queues them (a few at a time), compiles their steps for a build sandbox,
// keeps their logs, and records the finished tree with its tags.
package builder

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
	"github.com/airlock-sandbox/airlock/internal/ociimage"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/template"
)

// Store is what the builder keeps in the store.
type Store interface {
	store.Templates
	store.TemplateBuilds
}

// Trees builds and finds template trees (template.Manager does).
type Trees interface {
	Resolve(ctx context.Context, ref string) (*store.Template, error)
	BuildTree(ctx context.Context, req template.TreeRequest) (string, bool, error)
	PruneTrees(templateID string, keep []string)
}

// Config wires a Service.
type Config struct {
	Store   Store
	Trees   Trees
	DataDir string // uploads under DataDir/build-files, logs under DataDir/build-logs
	// Helper is the static binary lent to build sandboxes for their steps
	// (envd, whose build-step command runs them).
	Helper string
	// Images maps image references to templates that stand for them
	// (e2bdev/base is Airlock's base).
	Images map[string]string
	// Pull fetches every other image; nil: builds from them fail.
	Pull ImagePuller
	// Concurrency is how many builds run at once (default 2); the rest
	// wait in order.
	Concurrency int
	// ReadyTimeout bounds a build's start and ready commands (default 2 min).
	ReadyTimeout time.Duration
	// MaxUpload bounds one COPY upload (default 4 GiB).
	MaxUpload int64
	Log       *slog.Logger
}

// ImagePuller fetches and flattens images (ociimage.Store does).
type ImagePuller interface {
	Pull(ctx context.Context, ref string, auth *ociimage.Auth, progress ociimage.Progress) (*ociimage.Image, error)
}

// DefaultImages are the E2B images this server builds from its own
// templates instead of pulling them.
var DefaultImages = map[string]string{
	"e2bdev/base":                    template.BaseAlias,
	"e2bdev/base:latest":             template.BaseAlias,
	"e2bdev/code-interpreter":        template.CodeInterpreterAlias,
	"e2bdev/code-interpreter:latest": template.CodeInterpreterAlias,
}

// Failure is why a build failed and which step E2B blames: "base",
// "finalize" or a 1-based step index.
type Failure struct {
	Step    string
	Message string
}

func (f *Failure) Error() string { return f.Message }

// Service runs builds.
type Service struct {
	cfg    Config
	log    *slog.Logger
	queue  chan *job
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	pending  map[string]*pending // requested, not yet started
	logs     map[string]*buildLog
	inFlight map[string]int // template ID -> builds requested or running
}

type pending struct {
	tags []string
}

type job struct {
	build *store.TemplateBuild
	spec  *Spec
	tags  []string
}

// New starts the workers; Close stops them.
func New(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 2 * time.Minute
	}
	if cfg.MaxUpload <= 0 {
		cfg.MaxUpload = 4 << 30
	}
	if cfg.Images == nil {
		cfg.Images = DefaultImages
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Service{
		cfg: cfg, log: cfg.Log.With("component", "builder"),
		queue: make(chan *job, 1024), ctx: ctx, cancel: cancel,
		pending: map[string]*pending{}, logs: map[string]*buildLog{}, inFlight: map[string]int{},
	}
	for range cfg.Concurrency {
		s.wg.Add(1)
		go s.worker()
	}
	return s
}

// Close cancels running builds and waits for the workers.
func (s *Service) Close() {
	s.cancel()
	s.wg.Wait()
}

// Recover fails the builds a previous run of the server left unfinished,
// and unregisters templates that had nothing but such a build.
func (s *Service) Recover(ctx context.Context) error {
	list, err := s.cfg.Store.ListTemplates(ctx)
	if err != nil {
		return err
	}
	for _, t := range list {
		builds, err := s.cfg.Store.ListTemplateBuilds(ctx, t.ID)
		if err != nil {
			return err
		}
		for _, b := range builds {
			if b.Status == store.BuildWaiting || b.Status == store.BuildBuilding {
				s.fail(ctx, b, &Failure{Step: "base", Message: "the server restarted during the build"})
			}
		}
	}
	return nil
}

// Names and tags: a name is an alias with an optional ":tag".
var (
	aliasPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	tagPattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// parseName splits and checks "alias[:tag]".
func parseName(name string) (alias, tag string, err error) {
	if len(name) > maxNameLen {
		return "", "", errdefs.Newf(errdefs.ErrInvalid, "template name is over %d characters", maxNameLen)
	}
	alias, tag, hasTag := strings.Cut(name, ":")
	if !aliasPattern.MatchString(alias) {
		return "", "", errdefs.Newf(errdefs.ErrInvalid, "invalid template name %q: use lowercase letters, digits, '.', '_' and '-' (at most 63), optionally followed by :tag", name)
	}
	if hasTag && !tagPattern.MatchString(tag) {
		return "", "", errdefs.Newf(errdefs.ErrInvalid, "invalid tag %q in %q: use letters, digits, '.', '_' and '-' (at most 128)", tag, name)
	}
	return alias, tag, nil
}

// Request is a new build's registration (E2B's TemplateBuildRequestV3).
type Request struct {
	Team     string
	Name     string // alias[:tag]
	Tags     []string
	CPUCount int
	MemoryMB int
}

// Requested is what Request registered.
type Requested struct {
	Template *store.Template
	Build    *store.TemplateBuild
	Alias    string
	Tags     []string
}

// Limits of a build's sandbox and of the sandboxes it makes.
const (
	maxCPU      = 8
	maxMemoryMB = 16 << 10
)

// Request registers a build of the template named req.Name (created for
// req.Team if new) to be started with Start.
func (s *Service) Request(ctx context.Context, req Request) (*Requested, error) {
	alias, tag, err := parseName(req.Name)
	if err != nil {
		return nil, err
	}
	tags, err := normTags(alias, append(slices.DeleteFunc([]string{tag}, func(t string) bool { return t == "" }), req.Tags...))
	if err != nil {
		return nil, err
	}
	if req.CPUCount == 0 {
		req.CPUCount = template.DefaultCPUCount
	}
	if req.MemoryMB == 0 {
		req.MemoryMB = template.DefaultMemoryMB
	}
	if req.CPUCount < 1 || req.CPUCount > maxCPU {
		return nil, errdefs.Newf(errdefs.ErrInvalid, "cpuCount must be 1 to %d, not %d", maxCPU, req.CPUCount)
	}
	if req.MemoryMB < 128 || req.MemoryMB > maxMemoryMB {
		return nil, errdefs.Newf(errdefs.ErrInvalid, "memoryMB must be 128 to %d, not %d", maxMemoryMB, req.MemoryMB)
	}
	s.mu.Lock()
	defer s.mu.Unlock() // one registration at a time: an alias goes to one team
	now := time.Now().UTC()
	t, err := s.cfg.Store.GetTemplate(ctx, alias)
	switch {
	case err == nil:
		if t.TeamID == "" {
			return nil, errdefs.Newf(errdefs.ErrConflict, "template name %q is a built-in template's", alias)
		}
		if t.TeamID != req.Team {
			return nil, errdefs.Newf(errdefs.ErrConflict, "template name %q is taken by another team", alias)
		}
		if t.ID == alias && !slices.Contains(t.Aliases, alias) {
			return nil, errdefs.Newf(errdefs.ErrConflict, "%q is a template ID, not a name", alias)
		}
	case errors.Is(err, store.ErrNotFound):
		t = &store.Template{
			ID: newID(), TeamID: req.Team, Aliases: []string{alias},
			BuildStatus: store.BuildWaiting, CPUCount: req.CPUCount, MemoryMB: req.MemoryMB,
			DiskSizeMB: template.DefaultDiskSizeMB, CreatedAt: now, UpdatedAt: now,
		}
		if err := s.cfg.Store.PutTemplate(ctx, t); err != nil {
			if errors.Is(err, store.ErrAlreadyExists) {
				return nil, errdefs.Newf(errdefs.ErrConflict, "template name %q is taken", alias)
			}
			return nil, err
		}
	default:
		return nil, err
	}
	b := &store.TemplateBuild{
		ID: newUUID(), TemplateID: t.ID, TeamID: req.Team, Status: store.BuildWaiting,
		CPUCount: req.CPUCount, MemoryMB: req.MemoryMB, CreatedAt: now, UpdatedAt: now,
	}
	if err := s.cfg.Store.PutTemplateBuild(ctx, b); err != nil {
		return nil, err
	}
	s.pending[b.ID] = &pending{tags: tags}
	s.inFlight[t.ID]++
	s.logs[b.ID] = s.openLog(b.ID)
	return &Requested{Template: t, Build: b, Alias: alias, Tags: tags}, nil
}

// normTags checks tags given as "tag" or "alias:tag" and returns the tag
// parts, each once.
func normTags(alias string, in []string) ([]string, error) {
	var out []string
	for _, t := range in {
		name, tag, ok := strings.Cut(t, ":")
		if ok {
			if name != alias || !tagPattern.MatchString(tag) {
				return nil, errdefs.Newf(errdefs.ErrInvalid, "invalid tag %q: give a tag, or %s:tag", t, alias)
			}
		} else {
			tag = name
		}
		if !tagPattern.MatchString(tag) {
			return nil, errdefs.Newf(errdefs.ErrInvalid, "invalid tag %q: use letters, digits, '.', '_' and '-' (at most 128)", t)
		}
		if !slices.Contains(out, tag) {
			out = append(out, tag)
		}
	}
	return out, nil
}

// build finds a build of the team's template.
func (s *Service) build(ctx context.Context, team, templateID, buildID string) (*store.TemplateBuild, error) {
	b, err := s.cfg.Store.GetTemplateBuild(ctx, buildID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (b.TeamID != team || b.TemplateID != templateID)) {
		return nil, errdefs.Newf(errdefs.ErrNotFound, "build %s of template %s not found", buildID, templateID)
	}
	return b, err
}

// Start queues a requested build with its spec.
func (s *Service) Start(ctx context.Context, team, templateID, buildID string, sp *Spec) error {
	b, err := s.build(ctx, team, templateID, buildID)
	if err != nil {
		return err
	}
	if err := sp.validate(); err != nil {
		return err
	}
	s.mu.Lock()
	p, ok := s.pending[buildID]
	delete(s.pending, buildID)
	s.mu.Unlock()
	if !ok {
		return errdefs.Newf(errdefs.ErrConflict, "build %s was already started", buildID)
	}
	j := &job{build: b, spec: sp, tags: p.tags}
	b.Status, b.UpdatedAt = store.BuildBuilding, time.Now().UTC()
	if err := s.cfg.Store.PutTemplateBuild(ctx, b); err != nil {
		return err
	}
	s.logf(b.ID, "info", "", "Build %s queued", b.ID)
	select {
	case s.queue <- j:
		return nil
	default:
		s.fail(ctx, b, &Failure{Step: "base", Message: "the build queue is full; try again later"})
		return errdefs.Newf(errdefs.ErrLimitExceeded, "the build queue is full")
	}
}

func (s *Service) worker() {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case j := <-s.queue:
			s.run(j)
		}
	}
}

// run builds one job and records what came of it.
func (s *Service) run(j *job) {
	ctx := s.ctx
	b := j.build
	start := time.Now()
	s.logf(b.ID, "info", "base", "Building template %s (build %s)", b.TemplateID, b.ID)
	out, err := s.runBuild(ctx, j)
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			f = &Failure{Step: "base", Message: err.Error()}
		}
		if ctx.Err() != nil {
			f.Message = "the build was cancelled: the server is shutting down"
		}
		s.logf(b.ID, "error", f.Step, "Build failed: %s", f.Message)
		s.fail(context.WithoutCancel(ctx), b, f)
		return
	}
	if err := s.finish(context.WithoutCancel(ctx), j, out); err != nil {
		s.logf(b.ID, "error", "finalize", "Build failed: %v", err)
		s.fail(context.WithoutCancel(ctx), b, &Failure{Step: "finalize", Message: err.Error()})
		return
	}
	s.logf(b.ID, "info", "finalize", "Build finished in %s", time.Since(start).Round(100*time.Millisecond))
	s.closeLog(b.ID)
}

// result is a finished build's tree and settings.
type result struct {
	rootfs   string
	final    env
	startCmd string
	readyCmd string
}

func (s *Service) runBuild(ctx context.Context, j *job) (*result, error) {
	b, sp := j.build, j.spec
	s.logf(b.ID, "info", "base", "FROM %s", baseName(sp))
	from, image, release, err := s.base(ctx, b, sp)
	if err != nil {
		return nil, err
	}
	defer release() // the image's tree is read until the build ends
	baseEnv := env{user: from.User, workdir: from.Workdir}
	if baseEnv.user == "" {
		baseEnv.user = defaultUser(from.RootfsDir)
	}
	if baseEnv.workdir == "" {
		baseEnv.workdir = homeOf(baseEnv.user)
	}
	for k, v := range from.Envs {
		baseEnv.vars = append(baseEnv.vars, k+"="+v)
	}
	slices.Sort(baseEnv.vars)
	files := s.filesDir(b.TeamID)
	prog, f := compile(sp, baseEnv, from.ID+"/"+from.RootfsDir, s.cfg.ReadyTimeout, func(hash string) bool {
		_, err := os.Stat(filepath.Join(files, hash))
		return err == nil
	})
	if f != nil {
		return nil, f
	}
	if image {
		// An image's tree becomes a sandbox's in the build sandbox.
		prog.steps = append([]string{ProvisionStep()}, prog.steps...)
		prog.origin = append([]string{"base"}, prog.origin...)
	}
	res := &result{final: prog.final, startCmd: sp.StartCmd, readyCmd: sp.ReadyCmd}
	if len(prog.steps) == 0 && from.TeamID == "" {
		// Nothing to change on a built-in tree: use it as it is.
		res.rootfs = from.RootfsDir
		return res, nil
	}
	lend := []template.Lend{{Source: s.cfg.Helper, Dest: helperPath}}
	if err := os.MkdirAll(files, 0o700); err != nil {
		return nil, err
	}
	lend = append(lend, template.Lend{Source: files, Dest: filesDir})
	out := newStepOutput(func(line string) { s.logf(b.ID, "info", "", "%s", line) })
	cur := -1
	dir, cached, err := s.cfg.Trees.BuildTree(ctx, template.TreeRequest{
		TemplateID: b.TemplateID, BuildID: b.ID, Key: prog.key, From: from,
		Steps: prog.steps, Lend: lend, Runtime: from.Runtime,
		CPUCount: b.CPUCount, MemoryMB: b.MemoryMB,
		Step: func(i int) {
			out.Flush()
			cur = i
			out.reset()
			s.logf(b.ID, "info", prog.origin[i], "%s", describe(sp, prog.origin[i]))
		},
		Output: out,
	})
	out.Flush()
	if err != nil {
		var se *template.StepError
		if errors.As(err, &se) && se.Index >= 0 && se.Index < len(prog.steps) {
			return nil, stepFailure(sp, prog.origin[se.Index], se.ExitCode, out.tail())
		}
		step := "base"
		if cur >= 0 && cur < len(prog.origin) {
			step = prog.origin[cur]
		}
		return nil, &Failure{Step: step, Message: err.Error()}
	}
	if cached {
		s.logf(b.ID, "info", "", "CACHED: an identical build's tree is reused")
	}
	res.rootfs = dir
	return res, nil
}

// base resolves what a build starts from: a template, or an image pulled
// and flattened (image true: its tree is yet to be provisioned).
func (s *Service) base(ctx context.Context, b *store.TemplateBuild, sp *Spec) (t *store.Template, image bool, release func(), err error) {
	ref := sp.FromTemplate
	if ref == "" {
		img := sp.FromImage
		if img == "" {
			img = "e2bdev/base"
		}
		var ok bool
		if ref, ok = s.cfg.Images[img]; !ok {
			t, im, err := s.pull(ctx, b, img, sp.FromImageRegistry)
			if err != nil {
				return nil, false, nil, err
			}
			return t, true, im.Release, nil
		}
	}
	t, err = s.cfg.Trees.Resolve(ctx, ref)
	if err == nil && t.TeamID != "" && t.TeamID != b.TeamID && !t.Public {
		err = store.ErrNotFound
	}
	if err != nil {
		return nil, false, nil, &Failure{Step: "base", Message: fmt.Sprintf("base template %q not found or not ready", ref)}
	}
	return t, false, func() {}, nil
}

// pull fetches an image and describes its tree as a template to build on.
func (s *Service) pull(ctx context.Context, b *store.TemplateBuild, ref string, creds *RegistryCreds) (*store.Template, *ociimage.Image, error) {
	if s.cfg.Pull == nil {
		return nil, nil, &Failure{Step: "base", Message: fmt.Sprintf("image %q: this server pulls no images; build from a template (fromTemplate) or from e2bdev/base", ref)}
	}
	im, err := s.cfg.Pull.Pull(ctx, ref, creds.auth(), func(msg string) { s.logf(b.ID, "info", "base", "%s", msg) })
	if err != nil {
		msg := err.Error()
		switch {
		case errors.Is(err, ociimage.ErrNotFound):
			msg = fmt.Sprintf("image %q not found", ref)
		case errors.Is(err, ociimage.ErrUnauthorized):
			msg = fmt.Sprintf("image %q: the registry refused access (give credentials with fromImage(image, {username, password}))", ref)
		}
		return nil, nil, &Failure{Step: "base", Message: msg}
	}
	return ImageBase(ref, im), im, nil
}

// ImageBase describes a flattened image's tree as a template to build on:
// E2B's user "user" (which provisioning adds) in its home, with the
// image's ENV.
func ImageBase(ref string, im *ociimage.Image) *store.Template {
	envs := map[string]string{}
	for _, kv := range im.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && envKeyPattern.MatchString(k) {
			envs[k] = v
		}
	}
	return &store.Template{
		ID: "image", Aliases: []string{ref}, RootfsDir: im.Rootfs,
		User: sandboxUser, Workdir: homeOf(sandboxUser), Envs: envs,
		CPUCount: template.DefaultCPUCount, MemoryMB: template.DefaultMemoryMB, DiskSizeMB: template.DefaultDiskSizeMB,
		BuildStatus: template.StatusReady,
	}
}

// auth is the registry credentials E2B's variants carry, as basic
// credentials: AWS's key pair as they are (no ECR token exchange), GCP's
// service account JSON as _json_key.
func (c *RegistryCreds) auth() *ociimage.Auth {
	if c == nil {
		return nil
	}
	switch c.Type {
	case "aws":
		return &ociimage.Auth{Username: c.AWSAccessKeyID, Password: c.AWSSecretAccessKey}
	case "gcp":
		return &ociimage.Auth{Username: "_json_key", Password: c.ServiceAccountJSON}
	}
	return &ociimage.Auth{Username: c.Username, Password: c.Password}
}

func baseName(sp *Spec) string {
	switch {
	case sp.FromTemplate != "":
		return "template " + sp.FromTemplate
	case sp.FromImage != "":
		return sp.FromImage
	}
	return "e2bdev/base"
}

// describe names a step in the log, as a Dockerfile line.
func describe(sp *Spec, origin string) string {
	if origin == "finalize" {
		return "Running the start command and waiting for the ready command"
	}
	var i int
	fmt.Sscan(origin, &i)
	if i < 1 || i > len(sp.Steps) {
		return "Step " + origin
	}
	st := sp.Steps[i-1]
	return fmt.Sprintf("[%d/%d] %s %s", i, len(sp.Steps), st.Type, strings.Join(st.Args, " "))
}

// stepFailure is E2B's message for a failed step: the command, its exit
// code and its last output.
func stepFailure(sp *Spec, origin string, code int, tail []string) *Failure {
	what := "the start and ready commands"
	if origin != "finalize" {
		var i int
		fmt.Sscan(origin, &i)
		if i >= 1 && i <= len(sp.Steps) {
			st := sp.Steps[i-1]
			switch st.Type {
			case "RUN":
				what = "command '" + st.Args[0] + "'"
			default:
				what = st.Type + " " + strings.Join(st.Args, " ")
			}
		}
	}
	// The helper's own complaint (a bad user, a missing workdir) is its
	// last line.
	for _, l := range slices.Backward(tail) {
		if msg, ok := strings.CutPrefix(l, "airlock-build: "); ok {
			if strings.HasPrefix(msg, "invalid username") {
				return &Failure{Step: origin, Message: fmt.Sprintf("failed to run %s: command failed: unauthenticated: %s", what, msg)}
			}
			return &Failure{Step: origin, Message: fmt.Sprintf("failed to run %s: %s", what, msg)}
		}
	}
	msg := fmt.Sprintf("failed to run %s: exit status %d", what, code)
	if len(tail) > 0 {
		msg += ": " + strings.Join(tail, "\n")
	}
	return &Failure{Step: origin, Message: msg}
}

// finish records a successful build: the build, its tags (and "default"),
// and the template's fields when "default" moved; then it retires the
// trees no tag names any more.
func (s *Service) finish(ctx context.Context, j *job, res *result) error {
	b := j.build
	now := time.Now().UTC()
	b.Status, b.RootfsDir, b.UpdatedAt = store.BuildReady, res.rootfs, now
	b.StartCmd, b.ReadyCmd = res.startCmd, res.readyCmd
	b.User, b.Workdir, b.Envs = res.final.user, res.final.workdir, res.final.envMap()
	if err := s.cfg.Store.PutTemplateBuild(ctx, b); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A failure is counted out of inFlight by fail.
	t, err := s.cfg.Store.GetTemplate(ctx, b.TemplateID)
	if errors.Is(err, store.ErrNotFound) {
		s.cfg.Trees.PruneTrees(b.TemplateID, nil) // its tree has no template now
		return errors.New("the template was deleted during its build")
	}
	if err != nil {
		return err
	}
	tags := append(slices.Clone(j.tags), template.DefaultTag)
	for _, tag := range tags {
		if err := s.cfg.Store.PutTemplateTag(ctx, &store.TemplateTag{TemplateID: b.TemplateID, Tag: tag, BuildID: b.ID, CreatedAt: now}); err != nil {
			return err
		}
	}
	t.BuildID, t.RootfsDir, t.BuildStatus = b.ID, b.RootfsDir, template.StatusReady
	t.StartCmd, t.ReadyCmd, t.User, t.Workdir, t.Envs = b.StartCmd, b.ReadyCmd, b.User, b.Workdir, b.Envs
	t.CPUCount, t.MemoryMB, t.UpdatedAt = b.CPUCount, b.MemoryMB, now
	if err := s.cfg.Store.PutTemplate(ctx, t); err != nil {
		return err
	}
	s.inFlight[b.TemplateID]--
	s.pruneLocked(ctx, b.TemplateID)
	return nil
}

// pruneLocked retires a template's trees that no tag names (s.mu held).
func (s *Service) pruneLocked(ctx context.Context, templateID string) {
	tags, err := s.cfg.Store.ListTemplateTags(ctx, templateID)
	if err != nil {
		s.log.Warn("list tags to prune trees", "template", templateID, "err", err)
		return
	}
	var keep []string
	if t, err := s.cfg.Store.GetTemplate(ctx, templateID); err == nil && t.RootfsDir != "" {
		keep = append(keep, t.RootfsDir)
	}
	for _, tg := range tags {
		if b, err := s.cfg.Store.GetTemplateBuild(ctx, tg.BuildID); err == nil && b.RootfsDir != "" {
			keep = append(keep, b.RootfsDir)
		} else if err != nil {
			return // unsure what is used: keep everything
		}
	}
	if s.inFlight[templateID] > 0 {
		return // a running build's cached tree may be about to be tagged
	}
	s.cfg.Trees.PruneTrees(templateID, keep)
}

// fail records a failed build; a template with nothing but failed builds
// is unregistered, so its name is free again.
func (s *Service) fail(ctx context.Context, b *store.TemplateBuild, f *Failure) {
	b.Status, b.Reason, b.ReasonStep, b.UpdatedAt = store.BuildError, f.Message, f.Step, time.Now().UTC()
	if err := s.cfg.Store.PutTemplateBuild(ctx, b); err != nil {
		s.log.Error("record failed build", "build", b.ID, "err", err)
	}
	s.closeLog(b.ID)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight[b.TemplateID] > 0 {
		s.inFlight[b.TemplateID]--
	}
	if s.inFlight[b.TemplateID] > 0 {
		return
	}
	delete(s.inFlight, b.TemplateID)
	t, err := s.cfg.Store.GetTemplate(ctx, b.TemplateID)
	if err == nil && t.BuildStatus != template.StatusReady && t.TeamID != "" {
		if err := s.cfg.Store.DeleteTemplate(ctx, t.ID); err != nil {
			s.log.Error("unregister a template whose builds all failed", "template", t.ID, "err", err)
		}
	}
}

// sandboxUser is E2B's user, whom commands run as by default.
const sandboxUser = "user"

// defaultUser is who a base's steps run as: E2B's "user" where the tree
// has one, else root.
func defaultUser(rootfs string) string {
	p := filepath.Join(rootfs, "etc", "passwd")
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() || st.Size() > 4<<20 {
		return "root"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "root"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, sandboxUser+":") {
			return sandboxUser
		}
	}
	return "root"
}

// stepOutput collects a step's output lines for the log, keeping the last
// ones for a failure's message.
type stepOutput struct {
	mu   sync.Mutex
	buf  []byte
	last []string
	emit func(string)
}

func newStepOutput(emit func(string)) *stepOutput { return &stepOutput{emit: emit} }

const tailLines = 20

func (o *stepOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = append(o.buf, p...)
	for {
		i := strings.IndexByte(string(o.buf), '\n')
		if i < 0 {
			break
		}
		o.line(string(o.buf[:i]))
		o.buf = o.buf[i+1:]
	}
	if len(o.buf) > 64<<10 { // a very long line: pass it on in pieces
		o.line(string(o.buf))
		o.buf = o.buf[:0]
	}
	return len(p), nil
}

func (o *stepOutput) line(l string) {
	l = strings.TrimRight(l, "\r")
	o.last = append(o.last, l)
	if len(o.last) > tailLines {
		o.last = o.last[len(o.last)-tailLines:]
	}
	o.emit(l)
}

// Flush passes on a last line without its newline.
func (o *stepOutput) Flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.buf) > 0 {
		o.line(string(o.buf))
		o.buf = o.buf[:0]
	}
}

func (o *stepOutput) reset() {
	o.mu.Lock()
	o.last = nil
	o.mu.Unlock()
}

func (o *stepOutput) tail() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(o.last), func(s string) bool { return strings.TrimSpace(s) == "" })
}

var _ io.Writer = (*stepOutput)(nil)

func newID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
