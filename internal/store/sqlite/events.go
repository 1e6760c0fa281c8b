package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// AppendEvent adds one event; the store assigns its ID.
func (s *Store) AppendEvent(ctx context.Context, ev store.Event) error {
	var e encoder
	ts := e.time(ev.Time)
	if e.err != nil {
		return fmt.Errorf("sqlite: append event for %q: %w", ev.SandboxID, e.err)
	}
	res, err := s.write.ExecContext(ctx, `INSERT INTO events (sandbox_id, time, level, message) VALUES (?, ?, ?, ?)`,
		ev.SandboxID, ts, ev.Level, ev.Message)
	if err != nil {
		return fmt.Errorf("sqlite: append event for %q: %w", ev.SandboxID, err)
	}
	if id, err := res.LastInsertId(); err == nil && id%store.EventTrimEvery == 0 {
		_, err := s.write.ExecContext(ctx, `DELETE FROM events WHERE id IN (SELECT id FROM events
			WHERE sandbox_id = ? ORDER BY time DESC, id DESC LIMIT -1 OFFSET ?)`, ev.SandboxID, store.MaxEventsPerSandbox)
		if err != nil {
			return fmt.Errorf("sqlite: trim events of %q: %w", ev.SandboxID, err)
		}
	}
	return nil
}

// ListEvents returns up to limit (0: all) events of a sandbox at or after
// since, oldest first, ties in append order.
func (s *Store) ListEvents(ctx context.Context, sandboxID string, since time.Time, limit int) ([]store.Event, error) {
	var e encoder
	ts := e.time(since)
	if e.err != nil {
		return nil, fmt.Errorf("sqlite: list events of %q: %w", sandboxID, e.err)
	}
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.read.QueryContext(ctx, `SELECT id, sandbox_id, time, level, message FROM events
		WHERE sandbox_id = ? AND time >= ? ORDER BY time, id LIMIT ?`, sandboxID, ts, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list events of %q: %w", sandboxID, err)
	}
	defer rows.Close()
	var out []store.Event
	for rows.Next() {
		var (
			ev store.Event
			t  string
			d  decoder
		)
		if err := rows.Scan(&ev.ID, &ev.SandboxID, &t, &ev.Level, &ev.Message); err != nil {
			return nil, fmt.Errorf("sqlite: list events of %q: %w", sandboxID, err)
		}
		if ev.Time = d.time(t); d.err != nil {
			return nil, fmt.Errorf("sqlite: list events of %q: %w", sandboxID, d.err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list events of %q: %w", sandboxID, err)
	}
	return out, nil
}
