// Package tenancy holds what makes one team's use of Airlock bounded and
// separate from another's: teams, per-team quotas and create rate limits.
package tenancy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
	"github.com/airlock-sandbox/airlock/internal/store"
)

// ErrLimitExceeded means a team is at one of its limits (HTTP 429).
var ErrLimitExceeded = errdefs.ErrLimitExceeded

// ErrInvalidTeam means a team name is malformed.
var ErrInvalidTeam = fmt.Errorf("%w: team name", errdefs.ErrInvalid)

// Limits bound each team; a zero field means no limit.
type Limits struct {
	MaxSandboxes     int     // running sandboxes at once
	MaxMemoryMB      int     // memory of all running sandboxes together
	CreatesPerSecond float64 // sustained sandbox creates per second
	CreateBurst      int     // creates allowed at once above the rate (default: the rate, at least 1)
}

// Usage is what a team holds now, or what a request asks for.
type Usage struct {
	Sandboxes int
	MemoryMB  int
}

// Limiter applies the same Limits to every team.
type Limiter struct {
	limits Limits

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

// NewLimiter returns a limiter; a nil *Limiter admits everything.
func NewLimiter(l Limits) *Limiter {
	if l.CreateBurst <= 0 {
		l.CreateBurst = max(1, int(l.CreatesPerSecond))
	}
	return &Limiter{limits: l, buckets: map[string]*rate.Limiter{}}
}

// Limits returns the configured limits.
func (l *Limiter) Limits() Limits {
	if l == nil {
		return Limits{}
	}
	return l.limits
}

// Admit decides whether team, holding cur, may add add. create says that
// the request is a new sandbox (rate limited) rather than a resume.
func (l *Limiter) Admit(team string, cur, add Usage, create bool) error {
	if l == nil {
		return nil
	}
	lim := l.limits
	if lim.MaxSandboxes > 0 && cur.Sandboxes+add.Sandboxes > lim.MaxSandboxes {
		return fmt.Errorf("%w: you have reached the maximum number of concurrent sandboxes (%d) for team %s", ErrLimitExceeded, lim.MaxSandboxes, team)
	}
	if lim.MaxMemoryMB > 0 && cur.MemoryMB+add.MemoryMB > lim.MaxMemoryMB {
		return fmt.Errorf("%w: team %s would use %d MiB of memory, more than its limit of %d MiB", ErrLimitExceeded, team, cur.MemoryMB+add.MemoryMB, lim.MaxMemoryMB)
	}
	if create && lim.CreatesPerSecond > 0 && !l.bucket(team).Allow() {
		return fmt.Errorf("%w: rate limit of %g sandbox creates per second for team %s", ErrLimitExceeded, lim.CreatesPerSecond, team)
	}
	return nil
}

func (l *Limiter) bucket(team string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[team]
	if !ok {
		b = rate.NewLimiter(rate.Limit(l.limits.CreatesPerSecond), l.limits.CreateBurst)
		l.buckets[team] = b
	}
	return b
}

// nameRe is what a team name may be: it shows up in CLI output and logs.
var nameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// idLike is the shape of generated team IDs; a name of that shape could
// be mistaken for another team's ID.
var idLike = regexp.MustCompile(`^t[0-9a-f]{16}$`)

// EnsureTeam returns the team with this name, creating it if needed.
func EnsureTeam(ctx context.Context, st store.Teams, name string) (*store.Team, error) {
	if !nameRe.MatchString(name) || idLike.MatchString(name) {
		return nil, fmt.Errorf("%w %q: use 1-63 lower-case letters, digits, '.', '_' or '-'", ErrInvalidTeam, name)
	}
	t, err := st.GetTeam(ctx, name)
	if err == nil {
		return t, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("look up team %s: %w", name, err)
	}
	id := make([]byte, 8)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	t = &store.Team{ID: "t" + hex.EncodeToString(id), Name: name, CreatedAt: time.Now().UTC()}
	if err := st.CreateTeam(ctx, t); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) { // created meanwhile
			return st.GetTeam(ctx, name)
		}
		return nil, fmt.Errorf("create team %s: %w", name, err)
	}
	return t, nil
}
