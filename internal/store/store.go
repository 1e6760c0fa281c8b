// Package store persists sandboxes, templates, API keys and events behind one
// interface that several databases implement.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

// Sentinel errors; implementations wrap them with %w.
var (
	ErrNotFound      = fmt.Errorf("store: %w", errdefs.ErrNotFound)
	ErrAlreadyExists = errors.New("store: already exists")
)

// SandboxState is the lifecycle state recorded for a sandbox.
type SandboxState string

const (
	StateCreating SandboxState = "creating"
	StateRunning  SandboxState = "running"
	StatePaused   SandboxState = "paused"
	StateKilled   SandboxState = "killed"
)

// DefaultTeamID is the team of keys created without one, and of everything
// that existed before Airlock had teams. Every store has it from the start.
const DefaultTeamID = "default"

// Team owns API keys, sandboxes and templates; a key sees only its team's.
type Team struct {
	ID        string
	Name      string // unique
	CreatedAt time.Time
}

// Sandbox is the durable record of one sandbox.
type Sandbox struct {
	ID            string
	TeamID        string
	TemplateID    string
	Alias         string // template name the sandbox was created from
	State         SandboxState
	Runtime       string // driver name
	Metadata      map[string]string
	EnvVars       map[string]string
	Secure        bool
	AccessToken   string // envdAccessToken; "" when not secure
	TrafficToken  string // "" unless public traffic is disallowed
	AllowInternet bool
	AutoPause     bool
	CPUCount      int
	MemoryMB      int
	DiskSizeMB    int
	IP            string // address on the host bridge
	StartedAt     time.Time
	EndAt         time.Time // expiry
	PausedAt      time.Time // when it was last paused; zero unless paused
	EndedAt       time.Time // zero until killed
	EndReason     string    // why it was killed ("killed", "timeout", "lost on restart", …)
	UpdatedAt     time.Time
}

// Template is a rootfs that sandboxes are created from.
type Template struct {
	ID string
	// TeamID owns the template; "" marks a built-in template, which every
	// team may use and none may delete.
	TeamID      string
	Aliases     []string // names the template is found by (e.g. "base")
	RootfsDir   string
	BuildStatus string // "building", "ready", "error"
	EnvdVersion string
	CPUCount    int
	MemoryMB    int
	DiskSizeMB  int
	// StartCmd is run by envd (through bash -l -c) when a sandbox is created
	// from the template, e.g. the code interpreter; "" for none.
	StartCmd string
	// Runtime is the isolation runtime its sandboxes use unless a create
	// names one; "" for the server's default.
	Runtime string
	// ReadyCmd is polled (bash -l -c, as User) after StartCmd until it
	// exits 0; a create returns only then. "" for none.
	ReadyCmd string
	// User and Workdir are the defaults of its sandboxes' commands ("" for
	// the server's); Envs are env vars every sandbox gets under its own.
	User        string
	Workdir     string
	Envs        map[string]string
	BuildID     string // the build its fields come from; "" for built-in and CLI-built templates
	Public      bool
	SpawnCount  int64
	LastSpawnAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Build states of a TemplateBuild (E2B's TemplateBuildStatus).
const (
	BuildWaiting  = "waiting"
	BuildBuilding = "building"
	BuildReady    = "ready"
	BuildError    = "error"
)

// TemplateBuild is one build of a template through the build API: its
// state and, once ready, the tree and settings sandboxes of its tags get.
type TemplateBuild struct {
	ID         string
	TemplateID string
	TeamID     string
	Status     string // BuildWaiting, BuildBuilding, BuildReady, BuildError
	Reason     string // why it failed; "" unless BuildError
	ReasonStep string // E2B's step of the failure: "base", "finalize" or a 1-based step index
	CPUCount   int
	MemoryMB   int
	RootfsDir  string // "" until ready
	StartCmd   string
	ReadyCmd   string
	User       string
	Workdir    string
	Envs       map[string]string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// TemplateTag names one build of a template (E2B's name:tag).
type TemplateTag struct {
	TemplateID string
	Tag        string
	BuildID    string
	CreatedAt  time.Time
}

// APIKey is a team API key; only its SHA-256 hash is stored.
type APIKey struct {
	ID        string
	TeamID    string
	Admin     bool // may use the operator-only routes
	Name      string
	Hash      string // hex SHA-256 of the full key
	Mask      string // e.g. "e2b_1a2b…9f0e", safe to show
	CreatedAt time.Time
	LastUsed  time.Time
	Revoked   bool
}

// A sandbox's lifecycle log keeps its newest MaxEventsPerSandbox events
// (E2B's logs route returns at most 1000). Stores trim it on every
// EventTrimEvery-th append (by event ID), so it may briefly hold up to
// EventTrimEvery more: a tenant pausing and resuming in a loop cannot grow
// the store without bound.
const (
	MaxEventsPerSandbox = 1000
	EventTrimEvery      = 32
)

// Event is one line of a sandbox's lifecycle log.
type Event struct {
	ID        int64
	SandboxID string
	Time      time.Time
	Level     string // debug, info, warn, error
	Message   string
}

// Cursor is a keyset pagination position over (StartedAt, ID).
type Cursor struct {
	StartedAt time.Time
	ID        string
}

// SandboxFilter selects sandboxes for listing. Zero values match everything.
type SandboxFilter struct {
	TeamID       string // "" matches every team
	States       []SandboxState
	Metadata     map[string]string // all pairs must match
	TemplateID   string            // matches the template ID or alias
	StartedAfter time.Time         // inclusive
	Ascending    bool              // order by StartedAt, then ID; default newest first
	Limit        int               // 0 = no limit
	After        *Cursor           // continue after this position
}

// Sandboxes persists sandbox records.
type Sandboxes interface {
	CreateSandbox(ctx context.Context, s *Sandbox) error // ErrAlreadyExists
	GetSandbox(ctx context.Context, id string) (*Sandbox, error)
	// UpdateSandbox atomically reads the sandbox, applies fn and writes it
	// back; if fn returns an error nothing is written and that error is returned.
	UpdateSandbox(ctx context.Context, id string, fn func(*Sandbox) error) (*Sandbox, error)
	// ListSandboxes returns at most f.Limit sandboxes and the cursor of the
	// next page (nil on the last page).
	ListSandboxes(ctx context.Context, f SandboxFilter) ([]*Sandbox, *Cursor, error)
}

// Templates persists template records.
type Templates interface {
	PutTemplate(ctx context.Context, t *Template) error // insert or replace
	// GetTemplate finds a template by ID or by any of its aliases.
	GetTemplate(ctx context.Context, idOrAlias string) (*Template, error)
	ListTemplates(ctx context.Context) ([]*Template, error)
	DeleteTemplate(ctx context.Context, id string) error
	// TouchTemplate records one spawn.
	TouchTemplate(ctx context.Context, id string, at time.Time) error
}

// TemplateBuilds persists template builds and the tags that name them.
type TemplateBuilds interface {
	PutTemplateBuild(ctx context.Context, b *TemplateBuild) error // insert or replace
	GetTemplateBuild(ctx context.Context, id string) (*TemplateBuild, error)
	// ListTemplateBuilds returns a template's builds, oldest first.
	ListTemplateBuilds(ctx context.Context, templateID string) ([]*TemplateBuild, error)
	// PutTemplateTag points a template's tag at a build, replacing where it
	// pointed before.
	PutTemplateTag(ctx context.Context, t *TemplateTag) error
	GetTemplateTag(ctx context.Context, templateID, tag string) (*TemplateTag, error)
	DeleteTemplateTag(ctx context.Context, templateID, tag string) error // ErrNotFound
	// ListTemplateTags returns a template's tags, oldest first.
	ListTemplateTags(ctx context.Context, templateID string) ([]*TemplateTag, error)
	// DeleteTemplateBuilds removes a template's builds and tags.
	DeleteTemplateBuilds(ctx context.Context, templateID string) error
}

// Teams persists teams.
type Teams interface {
	CreateTeam(ctx context.Context, t *Team) error // ErrAlreadyExists on an ID or name clash
	// GetTeam finds a team by ID or by name.
	GetTeam(ctx context.Context, idOrName string) (*Team, error)
	ListTeams(ctx context.Context) ([]*Team, error) // oldest first
}

// APIKeys persists API keys (their hashes).
type APIKeys interface {
	CreateAPIKey(ctx context.Context, k *APIKey) error
	GetAPIKeyByHash(ctx context.Context, hash string) (*APIKey, error) // revoked keys: ErrNotFound
	ListAPIKeys(ctx context.Context) ([]*APIKey, error)
	RevokeAPIKey(ctx context.Context, id string) error
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
}

// Events persists sandboxes' lifecycle logs.
type Events interface {
	AppendEvent(ctx context.Context, e Event) error
	// ListEvents returns events of a sandbox at or after since, oldest first.
	ListEvents(ctx context.Context, sandboxID string, since time.Time, limit int) ([]Event, error)
}

// Store is every domain in one database; each consumer takes only the
// domains it uses. Every method is safe for concurrent use.
type Store interface {
	Sandboxes
	Templates
	TemplateBuilds
	Teams
	APIKeys
	Events
	Close() error
}
