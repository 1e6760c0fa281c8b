package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// templateSelect reads a template with its aliases, in their given order,
// as a JSON list.
const templateSelect = `SELECT t.id, t.team_id,
	(SELECT json_group_array(a.alias ORDER BY a.position) FROM template_aliases AS a WHERE a.template_id = t.id),
	t.rootfs_dir, t.build_status, t.envd_version, t.cpu_count, t.memory_mb, t.disk_size_mb,
	t.start_cmd, t.runtime, t.public, t.spawn_count, t.last_spawn_at, t.created_at, t.updated_at,
	t.ready_cmd, t.user_name, t.workdir, t.envs, t.build_id
	FROM templates AS t`

func scanTemplate(r rowScanner) (*store.Template, error) {
	var (
		tp                      store.Template
		aliases                 string
		lastSpawn, created, upd string
		envs                    string
	)
	err := r.Scan(&tp.ID, &tp.TeamID, &aliases, &tp.RootfsDir, &tp.BuildStatus, &tp.EnvdVersion,
		&tp.CPUCount, &tp.MemoryMB, &tp.DiskSizeMB, &tp.StartCmd, &tp.Runtime, &tp.Public, &tp.SpawnCount,
		&lastSpawn, &created, &upd, &tp.ReadyCmd, &tp.User, &tp.Workdir, &envs, &tp.BuildID)
	if err != nil {
		return nil, err
	}
	var d decoder
	tp.Aliases = d.strSlice(aliases)
	tp.Envs = d.strMap(envs)
	tp.LastSpawnAt, tp.CreatedAt, tp.UpdatedAt = d.time(lastSpawn), d.time(created), d.time(upd)
	if d.err != nil {
		return nil, fmt.Errorf("template %q: %w", tp.ID, d.err)
	}
	return &tp, nil
}

// PutTemplate inserts the template or replaces every field of an existing
// one, aliases included. An alias held by another template is
// ErrAlreadyExists and nothing is written.
func (s *Store) PutTemplate(ctx context.Context, tp *store.Template) error {
	var e encoder
	args := []any{tp.ID, tp.TeamID, tp.RootfsDir, tp.BuildStatus, tp.EnvdVersion, tp.CPUCount, tp.MemoryMB,
		tp.DiskSizeMB, tp.StartCmd, tp.Runtime, tp.Public, tp.SpawnCount, e.time(tp.LastSpawnAt), e.time(tp.CreatedAt), e.time(tp.UpdatedAt),
		tp.ReadyCmd, tp.User, tp.Workdir, e.strMap(tp.Envs), tp.BuildID}
	if e.err != nil {
		return fmt.Errorf("sqlite: put template %q: %w", tp.ID, e.err)
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: put template %q: %w", tp.ID, err)
	}
	defer tx.Rollback()
	// An upsert, not INSERT OR REPLACE, whose delete would cascade.
	_, err = tx.ExecContext(ctx, `INSERT INTO templates (id, team_id, rootfs_dir, build_status, envd_version,
		cpu_count, memory_mb, disk_size_mb, start_cmd, runtime, public, spawn_count, last_spawn_at, created_at, updated_at,
		ready_cmd, user_name, workdir, envs, build_id)
		VALUES (`+placeholders(len(args))+`)
		ON CONFLICT (id) DO UPDATE SET team_id = excluded.team_id, rootfs_dir = excluded.rootfs_dir,
		build_status = excluded.build_status, envd_version = excluded.envd_version,
		cpu_count = excluded.cpu_count, memory_mb = excluded.memory_mb,
		disk_size_mb = excluded.disk_size_mb, start_cmd = excluded.start_cmd, runtime = excluded.runtime, public = excluded.public,
		spawn_count = excluded.spawn_count, last_spawn_at = excluded.last_spawn_at,
		created_at = excluded.created_at, updated_at = excluded.updated_at,
		ready_cmd = excluded.ready_cmd, user_name = excluded.user_name, workdir = excluded.workdir,
		envs = excluded.envs, build_id = excluded.build_id`, args...)
	if err != nil {
		return fmt.Errorf("sqlite: put template %q: %w", tp.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM template_aliases WHERE template_id = ?`, tp.ID); err != nil {
		return fmt.Errorf("sqlite: put template %q: %w", tp.ID, err)
	}
	for i, alias := range tp.Aliases {
		_, err := tx.ExecContext(ctx, `INSERT INTO template_aliases (alias, template_id, position) VALUES (?, ?, ?)`,
			alias, tp.ID, i)
		if isUniqueViolation(err) {
			return fmt.Errorf("sqlite: put template %q: alias %q: %w", tp.ID, alias, store.ErrAlreadyExists)
		}
		if err != nil {
			return fmt.Errorf("sqlite: put template %q: %w", tp.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: put template %q: commit: %w", tp.ID, err)
	}
	return nil
}

// GetTemplate finds a template by ID, or failing that by alias.
func (s *Store) GetTemplate(ctx context.Context, idOrAlias string) (*store.Template, error) {
	row := s.read.QueryRowContext(ctx, templateSelect+`
		WHERE t.id = ? OR t.id = (SELECT template_id FROM template_aliases WHERE alias = ?)
		ORDER BY t.id = ? DESC LIMIT 1`, idOrAlias, idOrAlias, idOrAlias)
	tp, err := scanTemplate(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get template %q: %w", idOrAlias, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get template %q: %w", idOrAlias, err)
	}
	return tp, nil
}

// ListTemplates returns every template, oldest first.
func (s *Store) ListTemplates(ctx context.Context) ([]*store.Template, error) {
	rows, err := s.read.QueryContext(ctx, templateSelect+` ORDER BY t.created_at, t.id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list templates: %w", err)
	}
	defer rows.Close()
	var out []*store.Template
	for rows.Next() {
		tp, err := scanTemplate(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list templates: %w", err)
		}
		out = append(out, tp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list templates: %w", err)
	}
	return out, nil
}

// DeleteTemplate removes a template and its aliases.
func (s *Store) DeleteTemplate(ctx context.Context, id string) error {
	return s.execOne(ctx, "delete template", id, `DELETE FROM templates WHERE id = ?`, id)
}

// TouchTemplate counts one spawn; LastSpawnAt only moves forward.
func (s *Store) TouchTemplate(ctx context.Context, id string, at time.Time) error {
	var e encoder
	ts := e.time(at)
	if e.err != nil {
		return fmt.Errorf("sqlite: touch template %q: %w", id, e.err)
	}
	return s.execOne(ctx, "touch template", id,
		`UPDATE templates SET spawn_count = spawn_count + 1, last_spawn_at = max(last_spawn_at, ?) WHERE id = ?`, ts, id)
}

// execOne runs a write that must change exactly one row, else ErrNotFound.
func (s *Store) execOne(ctx context.Context, op, id, q string, args ...any) error {
	res, err := s.write.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlite: %s %q: %w", op, id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: %s %q: %w", op, id, err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: %s %q: %w", op, id, store.ErrNotFound)
	}
	return nil
}
