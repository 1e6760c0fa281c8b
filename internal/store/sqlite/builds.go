package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/airlock-sandbox/airlock/internal/store"
)

const buildSelect = `SELECT id, template_id, team_id, status, reason, reason_step, cpu_count, memory_mb,
	rootfs_dir, start_cmd, ready_cmd, user_name, workdir, envs, created_at, updated_at FROM template_builds`

func scanBuild(r rowScanner) (*store.TemplateBuild, error) {
	var (
		b                  store.TemplateBuild
		envs, created, upd string
	)
	err := r.Scan(&b.ID, &b.TemplateID, &b.TeamID, &b.Status, &b.Reason, &b.ReasonStep, &b.CPUCount, &b.MemoryMB,
		&b.RootfsDir, &b.StartCmd, &b.ReadyCmd, &b.User, &b.Workdir, &envs, &created, &upd)
	if err != nil {
		return nil, err
	}
	var d decoder
	b.Envs = d.strMap(envs)
	b.CreatedAt, b.UpdatedAt = d.time(created), d.time(upd)
	if d.err != nil {
		return nil, fmt.Errorf("build %q: %w", b.ID, d.err)
	}
	return &b, nil
}

// PutTemplateBuild inserts the build or replaces every field of it.
func (s *Store) PutTemplateBuild(ctx context.Context, b *store.TemplateBuild) error {
	var e encoder
	args := []any{b.ID, b.TemplateID, b.TeamID, b.Status, b.Reason, b.ReasonStep, b.CPUCount, b.MemoryMB,
		b.RootfsDir, b.StartCmd, b.ReadyCmd, b.User, b.Workdir, e.strMap(b.Envs), e.time(b.CreatedAt), e.time(b.UpdatedAt)}
	if e.err != nil {
		return fmt.Errorf("sqlite: put build %q: %w", b.ID, e.err)
	}
	_, err := s.write.ExecContext(ctx, `INSERT OR REPLACE INTO template_builds (id, template_id, team_id, status,
		reason, reason_step, cpu_count, memory_mb, rootfs_dir, start_cmd, ready_cmd, user_name, workdir, envs,
		created_at, updated_at) VALUES (`+placeholders(len(args))+`)`, args...)
	if err != nil {
		return fmt.Errorf("sqlite: put build %q: %w", b.ID, err)
	}
	return nil
}

// GetTemplateBuild finds a build by ID.
func (s *Store) GetTemplateBuild(ctx context.Context, id string) (*store.TemplateBuild, error) {
	b, err := scanBuild(s.read.QueryRowContext(ctx, buildSelect+` WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get build %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get build %q: %w", id, err)
	}
	return b, nil
}

// ListTemplateBuilds returns a template's builds, oldest first.
func (s *Store) ListTemplateBuilds(ctx context.Context, templateID string) ([]*store.TemplateBuild, error) {
	rows, err := s.read.QueryContext(ctx, buildSelect+` WHERE template_id = ? ORDER BY created_at, id`, templateID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list builds: %w", err)
	}
	defer rows.Close()
	var out []*store.TemplateBuild
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list builds: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list builds: %w", err)
	}
	return out, nil
}

// PutTemplateTag points a tag at a build.
func (s *Store) PutTemplateTag(ctx context.Context, t *store.TemplateTag) error {
	var e encoder
	created := e.time(t.CreatedAt)
	if e.err != nil {
		return fmt.Errorf("sqlite: put tag %q: %w", t.Tag, e.err)
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO template_tags (template_id, tag, build_id, created_at)
		VALUES (?, ?, ?, ?) ON CONFLICT (template_id, tag) DO UPDATE SET build_id = excluded.build_id,
		created_at = excluded.created_at`, t.TemplateID, t.Tag, t.BuildID, created)
	if err != nil {
		return fmt.Errorf("sqlite: put tag %q: %w", t.Tag, err)
	}
	return nil
}

func scanTag(r rowScanner) (*store.TemplateTag, error) {
	var (
		t       store.TemplateTag
		created string
	)
	if err := r.Scan(&t.TemplateID, &t.Tag, &t.BuildID, &created); err != nil {
		return nil, err
	}
	var d decoder
	t.CreatedAt = d.time(created)
	return &t, d.err
}

// GetTemplateTag finds a template's tag.
func (s *Store) GetTemplateTag(ctx context.Context, templateID, tag string) (*store.TemplateTag, error) {
	t, err := scanTag(s.read.QueryRowContext(ctx, `SELECT template_id, tag, build_id, created_at FROM template_tags
		WHERE template_id = ? AND tag = ?`, templateID, tag))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get tag %q: %w", tag, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get tag %q: %w", tag, err)
	}
	return t, nil
}

// DeleteTemplateTag removes a template's tag.
func (s *Store) DeleteTemplateTag(ctx context.Context, templateID, tag string) error {
	return s.execOne(ctx, "delete tag", tag, `DELETE FROM template_tags WHERE template_id = ? AND tag = ?`, templateID, tag)
}

// ListTemplateTags returns a template's tags, oldest first.
func (s *Store) ListTemplateTags(ctx context.Context, templateID string) ([]*store.TemplateTag, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT template_id, tag, build_id, created_at FROM template_tags
		WHERE template_id = ? ORDER BY created_at, tag`, templateID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list tags: %w", err)
	}
	defer rows.Close()
	var out []*store.TemplateTag
	for rows.Next() {
		t, err := scanTag(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list tags: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list tags: %w", err)
	}
	return out, nil
}

// DeleteTemplateBuilds removes a template's builds and tags.
func (s *Store) DeleteTemplateBuilds(ctx context.Context, templateID string) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete builds: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{`DELETE FROM template_tags WHERE template_id = ?`, `DELETE FROM template_builds WHERE template_id = ?`} {
		if _, err := tx.ExecContext(ctx, q, templateID); err != nil {
			return fmt.Errorf("sqlite: delete builds: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete builds: %w", err)
	}
	return nil
}
