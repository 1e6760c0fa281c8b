package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/airlock-sandbox/airlock/internal/store"
)

const teamColumns = `id, name, created_at`

func scanTeam(r rowScanner) (*store.Team, error) {
	var (
		tm      store.Team
		created string
	)
	if err := r.Scan(&tm.ID, &tm.Name, &created); err != nil {
		return nil, err
	}
	var d decoder
	if tm.CreatedAt = d.time(created); d.err != nil {
		return nil, fmt.Errorf("team %q: %w", tm.ID, d.err)
	}
	return &tm, nil
}

// CreateTeam stores a new team; a clash on ID or name is ErrAlreadyExists.
func (s *Store) CreateTeam(ctx context.Context, tm *store.Team) error {
	var e encoder
	created := e.time(tm.CreatedAt)
	if e.err != nil {
		return fmt.Errorf("sqlite: create team %q: %w", tm.ID, e.err)
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO teams (`+teamColumns+`) VALUES (?, ?, ?)`, tm.ID, tm.Name, created)
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create team %q: %w", tm.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create team %q: %w", tm.ID, err)
	}
	return nil
}

// GetTeam finds a team by ID, or failing that by name.
func (s *Store) GetTeam(ctx context.Context, idOrName string) (*store.Team, error) {
	tm, err := scanTeam(s.read.QueryRowContext(ctx, `SELECT `+teamColumns+` FROM teams
		WHERE id = ? OR name = ? ORDER BY id = ? DESC LIMIT 1`, idOrName, idOrName, idOrName))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: get team %q: %w", idOrName, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get team %q: %w", idOrName, err)
	}
	return tm, nil
}

// ListTeams returns every team, oldest first; the default team, created
// at the zero time, comes first.
func (s *Store) ListTeams(ctx context.Context) ([]*store.Team, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+teamColumns+` FROM teams ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list teams: %w", err)
	}
	defer rows.Close()
	var out []*store.Team
	for rows.Next() {
		tm, err := scanTeam(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list teams: %w", err)
		}
		out = append(out, tm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list teams: %w", err)
	}
	return out, nil
}
