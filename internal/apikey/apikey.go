// Package apikey creates and checks team API keys in E2B's format
// ("e2b_" + 40 hex characters); only their SHA-256 hashes are stored.
package apikey

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// Prefix is what every key starts with; the SDKs check it client-side.
const Prefix = "e2b_"

// ErrInvalid means the key is malformed, unknown or revoked.
var ErrInvalid = errors.New("invalid API key")

var keyRe = regexp.MustCompile(`^e2b_[0-9a-f]{40}$`)

// Hash returns the stored form of a key.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Mask returns a form of the key that is safe to display.
func Mask(key string) string {
	if len(key) < 12 {
		return "…"
	}
	return key[:8] + "…" + key[len(key)-4:]
}

// Options describe a new key.
type Options struct {
	Name   string
	TeamID string // "" is store.DefaultTeamID
	Admin  bool   // may use the operator-only routes
}

// Create generates a new key, stores its hash and returns the key itself,
// which is shown once and never stored.
func Create(ctx context.Context, st store.APIKeys, o Options) (string, *store.APIKey, error) {
	raw := make([]byte, 20)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, err
	}
	key := Prefix + hex.EncodeToString(raw)
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return "", nil, err
	}
	if o.TeamID == "" {
		o.TeamID = store.DefaultTeamID
	}
	rec := &store.APIKey{
		ID:        "k" + hex.EncodeToString(id),
		TeamID:    o.TeamID,
		Admin:     o.Admin,
		Name:      o.Name,
		Hash:      Hash(key),
		Mask:      Mask(key),
		CreatedAt: time.Now().UTC(),
	}
	if err := st.CreateAPIKey(ctx, rec); err != nil {
		return "", nil, fmt.Errorf("store API key: %w", err)
	}
	return key, rec, nil
}

// Check validates a presented key against the store.
func Check(ctx context.Context, st store.APIKeys, key string) (*store.APIKey, error) {
	if !keyRe.MatchString(key) {
		return nil, ErrInvalid
	}
	rec, err := st.GetAPIKeyByHash(ctx, Hash(key))
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, ErrInvalid
		}
		return nil, fmt.Errorf("look up API key: %w", err)
	}
	return rec, nil
}
