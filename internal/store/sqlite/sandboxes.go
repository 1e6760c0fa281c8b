package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/airlock-sandbox/airlock/internal/store"
)

const sandboxColumns = `id, team_id, template_id, alias, state, runtime, metadata, env_vars, secure,
	access_token, traffic_token, allow_internet, auto_pause, cpu_count, memory_mb,
	disk_size_mb, ip, started_at, end_at, paused_at, ended_at, end_reason, updated_at`

// sandboxArgs returns the column values of sb in sandboxColumns order.
func sandboxArgs(sb *store.Sandbox) ([]any, error) {
	var e encoder
	args := []any{
		sb.ID, sb.TeamID, sb.TemplateID, sb.Alias, string(sb.State), sb.Runtime,
		e.strMap(sb.Metadata), e.strMap(sb.EnvVars), sb.Secure,
		sb.AccessToken, sb.TrafficToken, sb.AllowInternet, sb.AutoPause,
		sb.CPUCount, sb.MemoryMB, sb.DiskSizeMB, sb.IP,
		e.time(sb.StartedAt), e.time(sb.EndAt), e.time(sb.PausedAt), e.time(sb.EndedAt), sb.EndReason, e.time(sb.UpdatedAt),
	}
	return args, e.err
}

func scanSandbox(r rowScanner) (*store.Sandbox, error) {
	var (
		sb                                     store.Sandbox
		state, meta, env                       string
		started, endAt, paused, ended, updated string
	)
	err := r.Scan(&sb.ID, &sb.TeamID, &sb.TemplateID, &sb.Alias, &state, &sb.Runtime,
		&meta, &env, &sb.Secure,
		&sb.AccessToken, &sb.TrafficToken, &sb.AllowInternet, &sb.AutoPause,
		&sb.CPUCount, &sb.MemoryMB, &sb.DiskSizeMB, &sb.IP,
		&started, &endAt, &paused, &ended, &sb.EndReason, &updated)
	if err != nil {
		return nil, err
	}
	var d decoder
	sb.State = store.SandboxState(state)
	sb.Metadata, sb.EnvVars = d.strMap(meta), d.strMap(env)
	sb.StartedAt, sb.EndAt, sb.UpdatedAt = d.time(started), d.time(endAt), d.time(updated)
	sb.PausedAt, sb.EndedAt = d.time(paused), d.time(ended)
	if d.err != nil {
		return nil, fmt.Errorf("sandbox %q: %w", sb.ID, d.err)
	}
	return &sb, nil
}

// CreateSandbox inserts a new sandbox.
func (s *Store) CreateSandbox(ctx context.Context, sb *store.Sandbox) error {
	args, err := sandboxArgs(sb)
	if err != nil {
		return fmt.Errorf("sqlite: create sandbox %q: %w", sb.ID, err)
	}
	q := `INSERT INTO sandboxes (` + sandboxColumns + `) VALUES (` + placeholders(len(args)) + `)`
	if _, err := s.write.ExecContext(ctx, q, args...); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("sqlite: create sandbox %q: %w", sb.ID, store.ErrAlreadyExists)
		}
		return fmt.Errorf("sqlite: create sandbox %q: %w", sb.ID, err)
	}
	return nil
}

// GetSandbox returns the sandbox with the given ID.
func (s *Store) GetSandbox(ctx context.Context, id string) (*store.Sandbox, error) {
	row := s.read.QueryRowContext(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE id = ?`, id)
	sb, err := scanSandbox(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get sandbox %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get sandbox %q: %w", id, err)
	}
	return sb, nil
}

// UpdateSandbox reads, changes and writes one sandbox in a single
// BEGIN IMMEDIATE transaction. fn runs while the write lock is held, so it
// must be quick and must not call the store.
func (s *Store) UpdateSandbox(ctx context.Context, id string, fn func(*store.Sandbox) error) (*store.Sandbox, error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: update sandbox %q: %w", id, err)
	}
	defer tx.Rollback()

	sb, err := scanSandbox(tx.QueryRowContext(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: update sandbox %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: update sandbox %q: %w", id, err)
	}
	if err := fn(sb); err != nil {
		return nil, err
	}
	if sb.ID != id {
		return nil, fmt.Errorf("sqlite: update sandbox %q: the ID cannot change (to %q)", id, sb.ID)
	}
	args, err := sandboxArgs(sb)
	if err != nil {
		return nil, fmt.Errorf("sqlite: update sandbox %q: %w", id, err)
	}
	cols := strings.Split(sandboxColumns, ",")
	sets := make([]string, len(cols))
	for i, c := range cols {
		sets[i] = strings.TrimSpace(c) + " = ?"
	}
	q := `UPDATE sandboxes SET ` + strings.Join(sets, ", ") + ` WHERE id = ?`
	if _, err := tx.ExecContext(ctx, q, append(args, id)...); err != nil {
		return nil, fmt.Errorf("sqlite: update sandbox %q: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: update sandbox %q: commit: %w", id, err)
	}
	return sb, nil
}

// ListSandboxes returns one page of sandboxes in (StartedAt, ID) order.
func (s *Store) ListSandboxes(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, *store.Cursor, error) {
	var (
		where []string
		args  []any
		e     encoder
	)
	if f.TeamID != "" {
		where = append(where, `team_id = ?`)
		args = append(args, f.TeamID)
	}
	if len(f.States) > 0 {
		where = append(where, `state IN (`+placeholders(len(f.States))+`)`)
		for _, st := range f.States {
			args = append(args, string(st))
		}
	}
	keys := make([]string, 0, len(f.Metadata))
	for k := range f.Metadata {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		// json_each rather than json_extract: keys may hold dots or quotes.
		where = append(where, `EXISTS (SELECT 1 FROM json_each(sandboxes.metadata) AS m
			WHERE m.key = ? AND m.type = 'text' AND m.value = ?)`)
		args = append(args, k, f.Metadata[k])
	}
	if f.TemplateID != "" {
		where = append(where, `(template_id = ? OR alias = ?)`)
		args = append(args, f.TemplateID, f.TemplateID)
	}
	if !f.StartedAfter.IsZero() {
		where = append(where, `started_at >= ?`)
		args = append(args, e.time(f.StartedAfter))
	}
	cmp, dir := ">", "ASC"
	if !f.Ascending {
		cmp, dir = "<", "DESC"
	}
	if f.After != nil {
		where = append(where, `(started_at, id) `+cmp+` (?, ?)`)
		args = append(args, e.time(f.After.StartedAt), f.After.ID)
	}
	if e.err != nil {
		return nil, nil, fmt.Errorf("sqlite: list sandboxes: %w", e.err)
	}

	q := `SELECT ` + sandboxColumns + ` FROM sandboxes`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY started_at ` + dir + `, id ` + dir
	if f.Limit > 0 {
		// One extra row tells whether another page follows.
		q += ` LIMIT ?`
		args = append(args, f.Limit+1)
	}

	rows, err := s.read.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("sqlite: list sandboxes: %w", err)
	}
	defer rows.Close()
	var out []*store.Sandbox
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("sqlite: list sandboxes: %w", err)
		}
		out = append(out, sb)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("sqlite: list sandboxes: %w", err)
	}
	if f.Limit <= 0 || len(out) <= f.Limit {
		return out, nil, nil
	}
	out = out[:f.Limit]
	last := out[len(out)-1]
	return out, &store.Cursor{StartedAt: last.StartedAt, ID: last.ID}, nil
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
