package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-sandbox/airlock/internal/store"
)

const teamColumns = `id, name, created_at`

func scanTeam(r rowScanner) (*store.Team, error) {
	var tm store.Team
	if err := r.Scan(&tm.ID, &tm.Name, &tm.CreatedAt); err != nil {
		return nil, err
	}
	tm.CreatedAt = tm.CreatedAt.UTC()
	return &tm, nil
}

// CreateTeam stores a new team; a clash on ID or name is ErrAlreadyExists.
func (s *Store) CreateTeam(ctx context.Context, tm *store.Team) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO teams (`+teamColumns+`) VALUES ($1, $2, $3)`,
		tm.ID, tm.Name, tm.CreatedAt.UTC())
	if isUniqueViolation(err) {
		return fmt.Errorf("postgres: create team %q: %w", tm.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create team %q: %w", tm.ID, err)
	}
	return nil
}

// GetTeam finds a team by ID, or failing that by name.
func (s *Store) GetTeam(ctx context.Context, idOrName string) (*store.Team, error) {
	tm, err := scanTeam(s.pool.QueryRow(ctx, `SELECT `+teamColumns+` FROM teams
		WHERE id = $1 OR name = $1 ORDER BY id = $1 DESC LIMIT 1`, idOrName))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: get team %q: %w", idOrName, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get team %q: %w", idOrName, err)
	}
	return tm, nil
}

// ListTeams returns every team, oldest first; the default team, created
// at the zero time, comes first.
func (s *Store) ListTeams(ctx context.Context) ([]*store.Team, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+teamColumns+` FROM teams ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list teams: %w", err)
	}
	defer rows.Close()
	var out []*store.Team
	for rows.Next() {
		tm, err := scanTeam(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list teams: %w", err)
		}
		out = append(out, tm)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list teams: %w", err)
	}
	return out, nil
}
