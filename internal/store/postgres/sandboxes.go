package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-sandbox/airlock/internal/store"
)

const sandboxColumns = `id, team_id, template_id, alias, state, runtime, metadata, env_vars, secure,
	access_token, traffic_token, allow_internet, auto_pause, cpu_count, memory_mb,
	disk_size_mb, ip, started_at, end_at, paused_at, ended_at, end_reason, updated_at`

// rowScanner is pgx.Row or pgx.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

// jsonMap encodes a map for a JSONB column; nil becomes {} rather than null.
func jsonMap(m map[string]string) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

func sandboxArgs(sb *store.Sandbox) ([]any, error) {
	meta, err := jsonMap(sb.Metadata)
	if err != nil {
		return nil, err
	}
	env, err := jsonMap(sb.EnvVars)
	if err != nil {
		return nil, err
	}
	return []any{
		sb.ID, sb.TeamID, sb.TemplateID, sb.Alias, string(sb.State), sb.Runtime,
		meta, env, sb.Secure, sb.AccessToken, sb.TrafficToken, sb.AllowInternet, sb.AutoPause,
		sb.CPUCount, sb.MemoryMB, sb.DiskSizeMB, sb.IP,
		sb.StartedAt.UTC(), sb.EndAt.UTC(), sb.PausedAt.UTC(), sb.EndedAt.UTC(), sb.EndReason, sb.UpdatedAt.UTC(),
	}, nil
}

func scanSandbox(r rowScanner) (*store.Sandbox, error) {
	var (
		sb    store.Sandbox
		state string
	)
	err := r.Scan(&sb.ID, &sb.TeamID, &sb.TemplateID, &sb.Alias, &state, &sb.Runtime,
		&sb.Metadata, &sb.EnvVars, &sb.Secure,
		&sb.AccessToken, &sb.TrafficToken, &sb.AllowInternet, &sb.AutoPause,
		&sb.CPUCount, &sb.MemoryMB, &sb.DiskSizeMB, &sb.IP,
		&sb.StartedAt, &sb.EndAt, &sb.PausedAt, &sb.EndedAt, &sb.EndReason, &sb.UpdatedAt)
	if err != nil {
		return nil, err
	}
	sb.State = store.SandboxState(state)
	for _, t := range []*time.Time{&sb.StartedAt, &sb.EndAt, &sb.PausedAt, &sb.EndedAt, &sb.UpdatedAt} {
		*t = t.UTC()
	}
	return &sb, nil
}

// params builds a numbered parameter list ($1, $2, …).
type params []any

func (p *params) add(v any) string {
	*p = append(*p, v)
	return "$" + strconv.Itoa(len(*p))
}

func (p *params) list(vs ...any) string {
	marks := make([]string, len(vs))
	for i, v := range vs {
		marks[i] = p.add(v)
	}
	return strings.Join(marks, ", ")
}

// CreateSandbox inserts a new sandbox.
func (s *Store) CreateSandbox(ctx context.Context, sb *store.Sandbox) error {
	args, err := sandboxArgs(sb)
	if err != nil {
		return fmt.Errorf("postgres: create sandbox %q: %w", sb.ID, err)
	}
	var p params
	q := `INSERT INTO sandboxes (` + sandboxColumns + `) VALUES (` + p.list(args...) + `)`
	if _, err := s.pool.Exec(ctx, q, p...); err != nil {
		if isUniqueViolation(err) {
			return fmt.Errorf("postgres: create sandbox %q: %w", sb.ID, store.ErrAlreadyExists)
		}
		return fmt.Errorf("postgres: create sandbox %q: %w", sb.ID, err)
	}
	return nil
}

// GetSandbox returns the sandbox with the given ID.
func (s *Store) GetSandbox(ctx context.Context, id string) (*store.Sandbox, error) {
	sb, err := scanSandbox(s.pool.QueryRow(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get sandbox %q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get sandbox %q: %w", id, err)
	}
	return sb, nil
}

// UpdateSandbox reads the row FOR UPDATE, applies fn and writes it back in
// one transaction; the row lock keeps concurrent updates from being lost.
func (s *Store) UpdateSandbox(ctx context.Context, id string, fn func(*store.Sandbox) error) (*store.Sandbox, error) {
	var (
		out   *store.Sandbox
		fnErr error
	)
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		sb, err := scanSandbox(tx.QueryRow(ctx, `SELECT `+sandboxColumns+` FROM sandboxes WHERE id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if fnErr = fn(sb); fnErr != nil {
			return fnErr
		}
		if sb.ID != id {
			return fmt.Errorf("the ID cannot change (to %q)", sb.ID)
		}
		args, err := sandboxArgs(sb)
		if err != nil {
			return err
		}
		var p params
		cols := strings.Split(sandboxColumns, ",")
		sets := make([]string, len(cols))
		for i, c := range cols {
			sets[i] = strings.TrimSpace(c) + " = " + p.add(args[i])
		}
		if _, err := tx.Exec(ctx, `UPDATE sandboxes SET `+strings.Join(sets, ", ")+` WHERE id = `+p.add(id), p...); err != nil {
			return err
		}
		out = sb
		return nil
	})
	if fnErr != nil {
		return nil, fnErr
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: update sandbox %q: %w", id, err)
	}
	return out, nil
}

// ListSandboxes returns one page of sandboxes in (StartedAt, ID) order.
func (s *Store) ListSandboxes(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, *store.Cursor, error) {
	var (
		where []string
		p     params
	)
	if f.TeamID != "" {
		where = append(where, `team_id = `+p.add(f.TeamID))
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, st := range f.States {
			states[i] = string(st)
		}
		where = append(where, `state = ANY(`+p.add(states)+`)`)
	}
	if len(f.Metadata) > 0 {
		// Containment of the whole filter object is the AND of its pairs.
		m, err := jsonMap(f.Metadata)
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: list sandboxes: %w", err)
		}
		where = append(where, `metadata @> `+p.add(m)+`::jsonb`)
	}
	if f.TemplateID != "" {
		mark := p.add(f.TemplateID)
		where = append(where, `(template_id = `+mark+` OR alias = `+mark+`)`)
	}
	if !f.StartedAfter.IsZero() {
		where = append(where, `started_at >= `+p.add(f.StartedAfter.UTC()))
	}
	cmp, dir := ">", "ASC"
	if !f.Ascending {
		cmp, dir = "<", "DESC"
	}
	if f.After != nil {
		where = append(where, `(started_at, id) `+cmp+` (`+p.add(f.After.StartedAt.UTC())+`, `+p.add(f.After.ID)+`)`)
	}
	q := `SELECT ` + sandboxColumns + ` FROM sandboxes`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY started_at ` + dir + `, id ` + dir
	if f.Limit > 0 {
		// One extra row tells whether another page follows.
		q += ` LIMIT ` + p.add(f.Limit+1)
	}

	rows, err := s.pool.Query(ctx, q, p...)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres: list sandboxes: %w", err)
	}
	defer rows.Close()
	var out []*store.Sandbox
	for rows.Next() {
		sb, err := scanSandbox(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("postgres: list sandboxes: %w", err)
		}
		out = append(out, sb)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("postgres: list sandboxes: %w", err)
	}
	if f.Limit <= 0 || len(out) <= f.Limit {
		return out, nil, nil
	}
	out = out[:f.Limit]
	last := out[len(out)-1]
	return out, &store.Cursor{StartedAt: last.StartedAt, ID: last.ID}, nil
}
