package builder

import (
	"context"
	"errors"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/template"
)

// ownTemplate finds the team's template by alias or ID; others' do not
// exist for it.
func (s *Service) ownTemplate(ctx context.Context, team, ref string) (*store.Template, error) {
	t, err := s.cfg.Store.GetTemplate(ctx, ref)
	if errors.Is(err, store.ErrNotFound) || (err == nil && t.TeamID != team) {
		return nil, errdefs.Newf(errdefs.ErrNotFound, "template %q not found", ref)
	}
	return t, err
}

// AssignTags points tags (each "tag" or "alias:tag") at the build that
// target ("alias" or "alias:tag") names.
func (s *Service) AssignTags(ctx context.Context, team, target string, tags []string) (string, []string, error) {
	alias, tag, err := parseName(target)
	if err != nil {
		return "", nil, err
	}
	if tag == "" {
		tag = template.DefaultTag
	}
	if len(tags) == 0 {
		return "", nil, errdefs.Newf(errdefs.ErrInvalid, "no tags to assign")
	}
	norm, err := normTags(alias, tags)
	if err != nil {
		return "", nil, err
	}
	t, err := s.ownTemplate(ctx, team, alias)
	if err != nil {
		return "", nil, err
	}
	tg, err := s.cfg.Store.GetTemplateTag(ctx, t.ID, tag)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil, errdefs.Newf(errdefs.ErrNotFound, "template %q has no tag %q", alias, tag)
	}
	if err != nil {
		return "", nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now().UTC()
	for _, n := range norm {
		if err := s.cfg.Store.PutTemplateTag(ctx, &store.TemplateTag{TemplateID: t.ID, Tag: n, BuildID: tg.BuildID, CreatedAt: now}); err != nil {
			return "", nil, err
		}
		if n == template.DefaultTag {
			if err := s.setDefault(ctx, t, tg.BuildID); err != nil {
				return "", nil, err
			}
		}
	}
	s.pruneLocked(ctx, t.ID)
	return tg.BuildID, norm, nil
}

// setDefault makes build the one a template's plain name gives.
func (s *Service) setDefault(ctx context.Context, t *store.Template, buildID string) error {
	b, err := s.cfg.Store.GetTemplateBuild(ctx, buildID)
	if err != nil {
		return err
	}
	t.BuildID, t.RootfsDir, t.BuildStatus = b.ID, b.RootfsDir, template.StatusReady
	t.StartCmd, t.ReadyCmd, t.User, t.Workdir, t.Envs = b.StartCmd, b.ReadyCmd, b.User, b.Workdir, b.Envs
	t.CPUCount, t.MemoryMB, t.UpdatedAt = b.CPUCount, b.MemoryMB, time.Now().UTC()
	return s.cfg.Store.PutTemplate(ctx, t)
}

// RemoveTags removes tags of the template named name. The default tag
// stays: it is what the plain name means.
func (s *Service) RemoveTags(ctx context.Context, team, name string, tags []string) error {
	alias, tag, err := parseName(name)
	if err != nil {
		return err
	}
	if tag != "" {
		tags = append(tags, tag)
	}
	if len(tags) == 0 {
		return errdefs.Newf(errdefs.ErrInvalid, "no tags to remove")
	}
	norm, err := normTags(alias, tags)
	if err != nil {
		return err
	}
	t, err := s.ownTemplate(ctx, team, alias)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range norm {
		if n == template.DefaultTag {
			return errdefs.Newf(errdefs.ErrInvalid, "the %q tag cannot be removed: it is what %q means; delete the template instead", n, alias)
		}
		if _, err := s.cfg.Store.GetTemplateTag(ctx, t.ID, n); errors.Is(err, store.ErrNotFound) {
			return errdefs.Newf(errdefs.ErrNotFound, "template %q has no tag %q", alias, n)
		}
	}
	for _, n := range norm {
		if err := s.cfg.Store.DeleteTemplateTag(ctx, t.ID, n); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	s.pruneLocked(ctx, t.ID)
	return nil
}

// Tags lists a template's tags.
func (s *Service) Tags(ctx context.Context, team, ref string) ([]*store.TemplateTag, error) {
	t, err := s.ownTemplate(ctx, team, ref)
	if err != nil {
		return nil, err
	}
	return s.cfg.Store.ListTemplateTags(ctx, t.ID)
}

// DefaultTag names a template's newest successful build.
const DefaultTag = template.DefaultTag
