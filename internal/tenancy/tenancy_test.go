package tenancy

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/store/sqlite"
)

func TestEnsureTeam(t *testing.T) {
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	def, err := EnsureTeam(ctx, st, "default")
	if err != nil || def.ID != store.DefaultTeamID {
		t.Fatalf("default team: %+v, %v", def, err)
	}
	a, err := EnsureTeam(ctx, st, "acme")
	if err != nil {
		t.Fatal(err)
	}
	again, err := EnsureTeam(ctx, st, "acme")
	if err != nil || again.ID != a.ID {
		t.Fatalf("second EnsureTeam: %+v, %v; want %s", again, err, a.ID)
	}
	for _, bad := range []string{"", "Acme", "a/b", "../x", strings.Repeat("a", 64), " a", a.ID} {
		if _, err := EnsureTeam(ctx, st, bad); !errors.Is(err, ErrInvalidTeam) {
			t.Errorf("EnsureTeam(%q): %v", bad, err)
		}
	}
}

func TestLimiter(t *testing.T) {
	var none *Limiter
	if err := none.Admit("t", Usage{Sandboxes: 1e6}, Usage{Sandboxes: 1}, true); err != nil {
		t.Errorf("nil limiter refused: %v", err)
	}
	l := NewLimiter(Limits{MaxSandboxes: 2, MaxMemoryMB: 1000, CreatesPerSecond: 0.0001, CreateBurst: 3})
	cases := []struct {
		cur, add Usage
		create   bool
		ok       bool
	}{
		{Usage{1, 100}, Usage{1, 100}, false, true},
		{Usage{2, 100}, Usage{1, 100}, false, false},
		{Usage{0, 900}, Usage{1, 101}, false, false},
		{Usage{0, 0}, Usage{1, 1}, true, true},
		{Usage{0, 0}, Usage{1, 1}, true, true},
		{Usage{0, 0}, Usage{1, 1}, true, true},
		{Usage{0, 0}, Usage{1, 1}, true, false}, // burst of 3 used up
		{Usage{0, 0}, Usage{1, 1}, false, true}, // a resume is not a create
	}
	for i, c := range cases {
		err := l.Admit("t", c.cur, c.add, c.create)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrLimitExceeded)) {
			t.Errorf("case %d: %v, want ok=%v", i, err, c.ok)
		}
	}
	if err := l.Admit("other", Usage{}, Usage{1, 1}, true); err != nil {
		t.Errorf("another team's bucket is shared: %v", err)
	}
}

// Team names: whatever EnsureTeam accepts is a short lower-case label.
func FuzzTeamName(f *testing.F) {
	for _, s := range []string{"default", "acme", "a.b-c_d", "A", "../x", "t0123456789abcdef", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !nameRe.MatchString(name) || idLike.MatchString(name) {
			return
		}
		if len(name) > 63 || strings.ContainsAny(name, "/ \t\n\x00:") || strings.ToLower(name) != name || strings.HasPrefix(name, ".") {
			t.Fatalf("accepted team name %q", name)
		}
	})
}
