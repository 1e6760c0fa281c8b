package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-sandbox/airlock/internal/store"
)

const buildSelect = `SELECT id, template_id, team_id, status, reason, reason_step, cpu_count, memory_mb,
	rootfs_dir, start_cmd, ready_cmd, user_name, workdir, envs, created_at, updated_at FROM template_builds`

func scanBuild(r rowScanner) (*store.TemplateBuild, error) {
	var b store.TemplateBuild
	err := r.Scan(&b.ID, &b.TemplateID, &b.TeamID, &b.Status, &b.Reason, &b.ReasonStep, &b.CPUCount, &b.MemoryMB,
		&b.RootfsDir, &b.StartCmd, &b.ReadyCmd, &b.User, &b.Workdir, &b.Envs, &b.CreatedAt, &b.UpdatedAt)
	if err != nil {
		return nil, err
	}
	if b.Envs == nil {
		b.Envs = map[string]string{}
	}
	b.CreatedAt, b.UpdatedAt = b.CreatedAt.UTC(), b.UpdatedAt.UTC()
	return &b, nil
}

// PutTemplateBuild inserts the build or replaces every field of it.
func (s *Store) PutTemplateBuild(ctx context.Context, b *store.TemplateBuild) error {
	envs, err := jsonMap(b.Envs)
	if err != nil {
		return fmt.Errorf("postgres: put build %q: %w", b.ID, err)
	}
	_, err = s.pool.Exec(ctx, `INSERT INTO template_builds (id, template_id, team_id, status, reason, reason_step,
		cpu_count, memory_mb, rootfs_dir, start_cmd, ready_cmd, user_name, workdir, envs, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
		ON CONFLICT (id) DO UPDATE SET template_id = excluded.template_id, team_id = excluded.team_id,
		status = excluded.status, reason = excluded.reason, reason_step = excluded.reason_step,
		cpu_count = excluded.cpu_count, memory_mb = excluded.memory_mb, rootfs_dir = excluded.rootfs_dir,
		start_cmd = excluded.start_cmd, ready_cmd = excluded.ready_cmd, user_name = excluded.user_name,
		workdir = excluded.workdir, envs = excluded.envs, created_at = excluded.created_at, updated_at = excluded.updated_at`,
		b.ID, b.TemplateID, b.TeamID, b.Status, b.Reason, b.ReasonStep, b.CPUCount, b.MemoryMB, b.RootfsDir,
		b.StartCmd, b.ReadyCmd, b.User, b.Workdir, envs, b.CreatedAt.UTC(), b.UpdatedAt.UTC())
	if err != nil {
		return fmt.Errorf("postgres: put build %q: %w", b.ID, err)
	}
	return nil
}

// GetTemplateBuild finds a build by ID.
func (s *Store) GetTemplateBuild(ctx context.Context, id string) (*store.TemplateBuild, error) {
	b, err := scanBuild(s.pool.QueryRow(ctx, buildSelect+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get build %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get build %q: %w", id, err)
	}
	return b, nil
}

// ListTemplateBuilds returns a template's builds, oldest first.
func (s *Store) ListTemplateBuilds(ctx context.Context, templateID string) ([]*store.TemplateBuild, error) {
	rows, err := s.pool.Query(ctx, buildSelect+` WHERE template_id = $1 ORDER BY created_at, id`, templateID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list builds: %w", err)
	}
	defer rows.Close()
	var out []*store.TemplateBuild
	for rows.Next() {
		b, err := scanBuild(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list builds: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list builds: %w", err)
	}
	return out, nil
}

// PutTemplateTag points a tag at a build.
func (s *Store) PutTemplateTag(ctx context.Context, t *store.TemplateTag) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO template_tags (template_id, tag, build_id, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (template_id, tag) DO UPDATE SET build_id = excluded.build_id,
		created_at = excluded.created_at`, t.TemplateID, t.Tag, t.BuildID, t.CreatedAt.UTC())
	if err != nil {
		return fmt.Errorf("postgres: put tag %q: %w", t.Tag, err)
	}
	return nil
}

func scanTag(r rowScanner) (*store.TemplateTag, error) {
	var t store.TemplateTag
	if err := r.Scan(&t.TemplateID, &t.Tag, &t.BuildID, &t.CreatedAt); err != nil {
		return nil, err
	}
	t.CreatedAt = t.CreatedAt.UTC()
	return &t, nil
}

// GetTemplateTag finds a template's tag.
func (s *Store) GetTemplateTag(ctx context.Context, templateID, tag string) (*store.TemplateTag, error) {
	t, err := scanTag(s.pool.QueryRow(ctx, `SELECT template_id, tag, build_id, created_at FROM template_tags
		WHERE template_id = $1 AND tag = $2`, templateID, tag))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get tag %q: %w", tag, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get tag %q: %w", tag, err)
	}
	return t, nil
}

// DeleteTemplateTag removes a template's tag.
func (s *Store) DeleteTemplateTag(ctx context.Context, templateID, tag string) error {
	return s.execOne(ctx, "delete tag", tag, `DELETE FROM template_tags WHERE template_id = $1 AND tag = $2`, templateID, tag)
}

// ListTemplateTags returns a template's tags, oldest first.
func (s *Store) ListTemplateTags(ctx context.Context, templateID string) ([]*store.TemplateTag, error) {
	rows, err := s.pool.Query(ctx, `SELECT template_id, tag, build_id, created_at FROM template_tags
		WHERE template_id = $1 ORDER BY created_at, tag`, templateID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list tags: %w", err)
	}
	defer rows.Close()
	var out []*store.TemplateTag
	for rows.Next() {
		t, err := scanTag(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list tags: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list tags: %w", err)
	}
	return out, nil
}

// DeleteTemplateBuilds removes a template's builds and tags.
func (s *Store) DeleteTemplateBuilds(ctx context.Context, templateID string) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM template_tags WHERE template_id = $1`, templateID); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `DELETE FROM template_builds WHERE template_id = $1`, templateID)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete builds: %w", err)
	}
	return nil
}
