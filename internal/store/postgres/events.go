package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// AppendEvent adds one event; the store assigns its ID.
func (s *Store) AppendEvent(ctx context.Context, ev store.Event) error {
	var id int64
	err := s.pool.QueryRow(ctx, `INSERT INTO events (sandbox_id, time, level, message) VALUES ($1, $2, $3, $4) RETURNING id`,
		ev.SandboxID, ev.Time.UTC(), ev.Level, ev.Message).Scan(&id)
	if err != nil {
		return fmt.Errorf("postgres: append event for %q: %w", ev.SandboxID, err)
	}
	if id%store.EventTrimEvery == 0 {
		_, err := s.pool.Exec(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM events
			WHERE sandbox_id = $1 ORDER BY time DESC, id DESC OFFSET $2)`, ev.SandboxID, store.MaxEventsPerSandbox)
		if err != nil {
			return fmt.Errorf("postgres: trim events of %q: %w", ev.SandboxID, err)
		}
	}
	return nil
}

// ListEvents returns up to limit (0: all) events of a sandbox at or after
// since, oldest first, ties in append order.
func (s *Store) ListEvents(ctx context.Context, sandboxID string, since time.Time, limit int) ([]store.Event, error) {
	var lim *int // NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	rows, err := s.pool.Query(ctx, `SELECT id, sandbox_id, time, level, message FROM events
		WHERE sandbox_id = $1 AND time >= $2 ORDER BY time, id LIMIT $3`, sandboxID, since.UTC(), lim)
	if err != nil {
		return nil, fmt.Errorf("postgres: list events of %q: %w", sandboxID, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var ev store.Event
		if err := rows.Scan(&ev.ID, &ev.SandboxID, &ev.Time, &ev.Level, &ev.Message); err != nil {
			return nil, fmt.Errorf("postgres: list events of %q: %w", sandboxID, err)
		}
		ev.Time = ev.Time.UTC()
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list events of %q: %w", sandboxID, err)
	}
	return out, nil
}
