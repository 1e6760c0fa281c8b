package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// templateSelect reads a template with its aliases in their given order.
const templateSelect = `SELECT t.id, t.team_id,
	COALESCE((SELECT array_agg(a.alias ORDER BY a.position) FROM template_aliases AS a WHERE a.template_id = t.id), '{}'),
	t.rootfs_dir, t.build_status, t.envd_version, t.cpu_count, t.memory_mb, t.disk_size_mb,
	t.start_cmd, t.runtime, t.public, t.spawn_count, t.last_spawn_at, t.created_at, t.updated_at,
	t.ready_cmd, t.user_name, t.workdir, t.envs, t.build_id
	FROM templates AS t`

func scanTemplate(r rowScanner) (*store.Template, error) {
	var tp store.Template
	err := r.Scan(&tp.ID, &tp.TeamID, &tp.Aliases, &tp.RootfsDir, &tp.BuildStatus, &tp.EnvdVersion,
		&tp.CPUCount, &tp.MemoryMB, &tp.DiskSizeMB, &tp.StartCmd, &tp.Runtime, &tp.Public, &tp.SpawnCount,
		&tp.LastSpawnAt, &tp.CreatedAt, &tp.UpdatedAt, &tp.ReadyCmd, &tp.User, &tp.Workdir, &tp.Envs, &tp.BuildID)
	if err != nil {
		return nil, err
	}
	if tp.Envs == nil {
		tp.Envs = map[string]string{}
	}
	tp.LastSpawnAt, tp.CreatedAt, tp.UpdatedAt = tp.LastSpawnAt.UTC(), tp.CreatedAt.UTC(), tp.UpdatedAt.UTC()
	return &tp, nil
}

// PutTemplate inserts the template or replaces every field of an existing
// one, aliases included. An alias held by another template is
// ErrAlreadyExists and nothing is written.
func (s *Store) PutTemplate(ctx context.Context, tp *store.Template) error {
	envs, err := jsonMap(tp.Envs)
	if err != nil {
		return fmt.Errorf("postgres: put template %q: %w", tp.ID, err)
	}
	err = s.inTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO templates (id, team_id, rootfs_dir, build_status, envd_version,
			cpu_count, memory_mb, disk_size_mb, start_cmd, runtime, public, spawn_count, last_spawn_at, created_at, updated_at,
			ready_cmd, user_name, workdir, envs, build_id)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
			ON CONFLICT (id) DO UPDATE SET team_id = excluded.team_id, rootfs_dir = excluded.rootfs_dir,
			build_status = excluded.build_status, envd_version = excluded.envd_version,
			cpu_count = excluded.cpu_count, memory_mb = excluded.memory_mb,
			disk_size_mb = excluded.disk_size_mb, start_cmd = excluded.start_cmd, runtime = excluded.runtime, public = excluded.public,
			spawn_count = excluded.spawn_count, last_spawn_at = excluded.last_spawn_at,
			created_at = excluded.created_at, updated_at = excluded.updated_at,
			ready_cmd = excluded.ready_cmd, user_name = excluded.user_name, workdir = excluded.workdir,
			envs = excluded.envs, build_id = excluded.build_id`,
			tp.ID, tp.TeamID, tp.RootfsDir, tp.BuildStatus, tp.EnvdVersion, tp.CPUCount, tp.MemoryMB,
			tp.DiskSizeMB, tp.StartCmd, tp.Runtime, tp.Public, tp.SpawnCount, tp.LastSpawnAt.UTC(), tp.CreatedAt.UTC(), tp.UpdatedAt.UTC(),
			tp.ReadyCmd, tp.User, tp.Workdir, envs, tp.BuildID)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM template_aliases WHERE template_id = $1`, tp.ID); err != nil {
			return err
		}
		for i, alias := range tp.Aliases {
			_, err := tx.Exec(ctx, `INSERT INTO template_aliases (alias, template_id, position) VALUES ($1, $2, $3)`,
				alias, tp.ID, i)
			if isUniqueViolation(err) {
				return fmt.Errorf("alias %q: %w", alias, store.ErrAlreadyExists)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: put template %q: %w", tp.ID, err)
	}
	return nil
}

// GetTemplate finds a template by ID, or failing that by alias.
func (s *Store) GetTemplate(ctx context.Context, idOrAlias string) (*store.Template, error) {
	tp, err := scanTemplate(s.pool.QueryRow(ctx, templateSelect+`
		WHERE t.id = $1 OR t.id = (SELECT template_id FROM template_aliases WHERE alias = $1)
		ORDER BY t.id = $1 DESC LIMIT 1`, idOrAlias))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get template %q: %w", idOrAlias, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get template %q: %w", idOrAlias, err)
	}
	return tp, nil
}

// ListTemplates returns every template, oldest first.
func (s *Store) ListTemplates(ctx context.Context) ([]*store.Template, error) {
	rows, err := s.pool.Query(ctx, templateSelect+` ORDER BY t.created_at, t.id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list templates: %w", err)
	}
	defer rows.Close()
	var out []*store.Template
	for rows.Next() {
		tp, err := scanTemplate(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list templates: %w", err)
		}
		out = append(out, tp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list templates: %w", err)
	}
	return out, nil
}

// DeleteTemplate removes a template and its aliases.
func (s *Store) DeleteTemplate(ctx context.Context, id string) error {
	return s.execOne(ctx, "delete template", id, `DELETE FROM templates WHERE id = $1`, id)
}

// TouchTemplate counts one spawn; LastSpawnAt only moves forward.
func (s *Store) TouchTemplate(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "touch template", id, `UPDATE templates SET spawn_count = spawn_count + 1,
		last_spawn_at = GREATEST(last_spawn_at, $1) WHERE id = $2`, at.UTC(), id)
}
