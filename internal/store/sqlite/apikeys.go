package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

const apiKeyColumns = `id, team_id, admin, name, hash, mask, created_at, last_used, revoked`

func scanAPIKey(r rowScanner) (*store.APIKey, error) {
	var (
		k                 store.APIKey
		created, lastUsed string
	)
	if err := r.Scan(&k.ID, &k.TeamID, &k.Admin, &k.Name, &k.Hash, &k.Mask, &created, &lastUsed, &k.Revoked); err != nil {
		return nil, err
	}
	var d decoder
	k.CreatedAt, k.LastUsed = d.time(created), d.time(lastUsed)
	if d.err != nil {
		return nil, fmt.Errorf("API key %q: %w", k.ID, d.err)
	}
	return &k, nil
}

// CreateAPIKey stores a new key; a clash on ID or hash is ErrAlreadyExists.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	var e encoder
	args := []any{k.ID, k.TeamID, k.Admin, k.Name, k.Hash, k.Mask, e.time(k.CreatedAt), e.time(k.LastUsed), k.Revoked}
	if e.err != nil {
		return fmt.Errorf("sqlite: create API key %q: %w", k.ID, e.err)
	}
	_, err := s.write.ExecContext(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (`+placeholders(len(args))+`)`, args...)
	if isUniqueViolation(err) {
		return fmt.Errorf("sqlite: create API key %q: %w", k.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("sqlite: create API key %q: %w", k.ID, err)
	}
	return nil
}

// GetAPIKeyByHash returns the unrevoked key with the given hash.
func (s *Store) GetAPIKeyByHash(ctx context.Context, hash string) (*store.APIKey, error) {
	k, err := scanAPIKey(s.read.QueryRowContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = ? AND revoked = 0`, hash))
	if errors.Is(err, sql.ErrNoRows) {
		// The hash is a secret's digest: keep it out of the message.
		return nil, fmt.Errorf("sqlite: get API key by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: get API key by hash: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns every key, revoked ones too, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list API keys: %w", err)
	}
	defer rows.Close()
	var out []*store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list API keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list API keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks a key revoked; it stays listed.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	return s.execOne(ctx, "revoke API key", id, `UPDATE api_keys SET revoked = 1 WHERE id = ?`, id)
}

// TouchAPIKey records a use; LastUsed only moves forward.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	var e encoder
	ts := e.time(at)
	if e.err != nil {
		return fmt.Errorf("sqlite: touch API key %q: %w", id, e.err)
	}
	return s.execOne(ctx, "touch API key", id, `UPDATE api_keys SET last_used = max(last_used, ?) WHERE id = ?`, ts, id)
}
