package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/airlock-sandbox/airlock/internal/store"
)

const apiKeyColumns = `id, team_id, admin, name, hash, mask, created_at, last_used, revoked`

func scanAPIKey(r rowScanner) (*store.APIKey, error) {
	var k store.APIKey
	if err := r.Scan(&k.ID, &k.TeamID, &k.Admin, &k.Name, &k.Hash, &k.Mask, &k.CreatedAt, &k.LastUsed, &k.Revoked); err != nil {
		return nil, err
	}
	k.CreatedAt, k.LastUsed = k.CreatedAt.UTC(), k.LastUsed.UTC()
	return &k, nil
}

// CreateAPIKey stores a new key; a clash on ID or hash is ErrAlreadyExists.
func (s *Store) CreateAPIKey(ctx context.Context, k *store.APIKey) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO api_keys (`+apiKeyColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		k.ID, k.TeamID, k.Admin, k.Name, k.Hash, k.Mask, k.CreatedAt.UTC(), k.LastUsed.UTC(), k.Revoked)
	if isUniqueViolation(err) {
		return fmt.Errorf("postgres: create API key %q: %w", k.ID, store.ErrAlreadyExists)
	}
	if err != nil {
		return fmt.Errorf("postgres: create API key %q: %w", k.ID, err)
	}
	return nil
}

// GetAPIKeyByHash returns the unrevoked key with the given hash.
func (s *Store) GetAPIKeyByHash(ctx context.Context, hash string) (*store.APIKey, error) {
	k, err := scanAPIKey(s.pool.QueryRow(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE hash = $1 AND NOT revoked`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		// The hash is a secret's digest: keep it out of the message.
		return nil, fmt.Errorf("postgres: get API key by hash: %w", store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: get API key by hash: %w", err)
	}
	return k, nil
}

// ListAPIKeys returns every key, revoked ones too, oldest first.
func (s *Store) ListAPIKeys(ctx context.Context) ([]*store.APIKey, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+apiKeyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: list API keys: %w", err)
	}
	defer rows.Close()
	var out []*store.APIKey
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, fmt.Errorf("postgres: list API keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list API keys: %w", err)
	}
	return out, nil
}

// RevokeAPIKey marks a key revoked; it stays listed.
func (s *Store) RevokeAPIKey(ctx context.Context, id string) error {
	return s.execOne(ctx, "revoke API key", id, `UPDATE api_keys SET revoked = true WHERE id = $1`, id)
}

// TouchAPIKey records a use; LastUsed only moves forward.
func (s *Store) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	return s.execOne(ctx, "touch API key", id,
		`UPDATE api_keys SET last_used = GREATEST(last_used, $1) WHERE id = $2`, at.UTC(), id)
}
