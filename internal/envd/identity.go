package envd

import (
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/airlock-sandbox/airlock/sdk/envdapi"
)

// Config is what the orchestrator hands envd through POST /init.
type Config = envdapi.Init

// State holds envd's current configuration; safe for concurrent use.
type State struct {
	mu  sync.RWMutex
	cfg Config
}

// NewState returns a state with envd's built-in defaults (root until /init).
func NewState() *State {
	return &State{cfg: Config{DefaultUser: "root", EnvVars: map[string]string{}}}
}

// Config returns a copy of the current configuration.
func (s *State) Config() Config {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := s.cfg
	c.EnvVars = make(map[string]string, len(s.cfg.EnvVars))
	for k, v := range s.cfg.EnvVars {
		c.EnvVars[k] = v
	}
	return c
}

// Apply merges an /init request into the configuration. Empty fields keep
// their current value, so a resume can re-send only what changed.
func (s *State) Apply(c Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.EnvVars != nil {
		s.cfg.EnvVars = make(map[string]string, len(c.EnvVars))
		for k, v := range c.EnvVars {
			s.cfg.EnvVars[k] = v
		}
	}
	if c.AccessToken != "" {
		s.cfg.AccessToken = c.AccessToken
	}
	if c.DefaultUser != "" {
		s.cfg.DefaultUser = c.DefaultUser
	}
	if c.DefaultWorkdir != "" {
		s.cfg.DefaultWorkdir = c.DefaultWorkdir
	}
}

// TokenOK reports whether the request carries the access token, or whether
// no token is configured (an unsecured sandbox).
func (s *State) TokenOK(h http.Header) bool {
	want := s.Config().AccessToken
	if want == "" {
		return true
	}
	got := h.Get("X-Access-Token")
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// User is a resolved Linux account that processes and file operations run as.
type User struct {
	Name   string
	UID    uint32
	GID    uint32
	Groups []uint32 // supplementary groups
	Home   string
}

// ErrUnknownUser is returned when a requested user does not exist.
var ErrUnknownUser = errors.New("invalid username")

// LookupUser resolves a user name from the sandbox's /etc/passwd.
func LookupUser(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownUser, name)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q: bad uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("user %q: bad gid %q: %w", name, u.Gid, err)
	}
	out := &User{Name: u.Username, UID: uint32(uid), GID: uint32(gid), Home: u.HomeDir}
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil {
				out.Groups = append(out.Groups, uint32(n))
			}
		}
	}
	if out.Home == "" {
		out.Home = "/"
	}
	return out, nil
}

// UserFromHeader resolves the user selected by an `Authorization: Basic
// base64("<user>:")` header, falling back to the sandbox's default user.
func (s *State) UserFromHeader(h http.Header) (*User, error) {
	name := ""
	if auth := h.Get("Authorization"); auth != "" {
		const prefix = "Basic "
		if !strings.HasPrefix(auth, prefix) {
			return nil, fmt.Errorf("%w: unsupported authorization scheme", ErrUnknownUser)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth[len(prefix):]))
		if err != nil {
			return nil, fmt.Errorf("%w: malformed basic auth", ErrUnknownUser)
		}
		name, _, _ = strings.Cut(string(raw), ":")
	}
	return s.UserByName(name)
}

// UserByName resolves name, or the default user when name is empty.
func (s *State) UserByName(name string) (*User, error) {
	if name == "" {
		name = s.Config().DefaultUser
	}
	return LookupUser(name)
}

// ResolvePath expands a client path the way E2B's envd does: "" is the
// default workdir (or home), "~" and "~/x" are under home, other relative
// paths are joined to home, and the result is cleaned to an absolute path.
func (s *State) ResolvePath(u *User, p string) string {
	switch {
	case p == "":
		if wd := s.Config().DefaultWorkdir; wd != "" {
			return filepath.Clean(wd)
		}
		return filepath.Clean(u.Home)
	case p == "~":
		return filepath.Clean(u.Home)
	case strings.HasPrefix(p, "~/"):
		return filepath.Join(u.Home, p[2:])
	case !filepath.IsAbs(p):
		return filepath.Join(u.Home, p)
	default:
		return filepath.Clean(p)
	}
}
