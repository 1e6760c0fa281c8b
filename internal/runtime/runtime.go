// Package runtime defines the seam between what a sandbox is and how it is
// isolated: a small required Driver interface plus optional capabilities.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

// Sentinel errors; callers test with errors.Is.
var (
	// ErrNotFound means the driver has no sandbox with that ID.
	ErrNotFound = fmt.Errorf("runtime: sandbox %w", errdefs.ErrNotFound)
	// ErrNotSupported means the driver lacks an optional capability.
	ErrNotSupported = fmt.Errorf("runtime: operation %w by this runtime", errdefs.ErrNotSupported)
	// ErrHostDiskLow means the host's disk is below the reserve the
	// operator keeps for the server itself, so no new sandbox disk is made.
	ErrHostDiskLow = fmt.Errorf("runtime: the host's disk is below its reserve: %w", errdefs.ErrUnavailable)
	// ErrAlreadyExists means a sandbox with that ID already exists.
	ErrAlreadyExists = errors.New("runtime: sandbox already exists")
)

// Mount is a bind mount from the host into the sandbox.
type Mount struct {
	Source      string // host path
	Destination string // path inside the sandbox
	ReadOnly    bool
}

// Resources are the cgroup limits applied to a sandbox.
type Resources struct {
	CPUCount int   // whole CPUs (CFS quota = CPUCount * period)
	MemoryMB int   // hard memory limit (no swap beyond it)
	PidsMax  int64 // maximum number of tasks
	DiskMB   int   // hard size of the writable layer; 0 = unlimited
}

// Spec describes a sandbox to create.
type Spec struct {
	ID        string   // sandbox ID, ^[a-z0-9]+$
	RootfsDir string   // template rootfs, used read-only as the overlay lower layer
	Args      []string // init process argv (envd)
	Env       []string // init process environment, KEY=VALUE
	Hostname  string
	NetNSPath string // existing network namespace to join; "" = the driver's own empty netns
	Mounts    []Mount
	Resources Resources
	Labels    map[string]string // free-form, persisted with the bundle so List can return them
	// ReadyFile, when set, is handed to the init process as file descriptor
	// 3 (ReadyFD), so that it can signal readiness by writing to it instead
	// of being polled. Drivers that cannot pass descriptors ignore it; the
	// caller keeps a fallback (the init's end of the pipe then just closes).
	ReadyFile *os.File
	// Stdio, when set, is the init process's stdout and stderr (default
	// /dev/null). Only for sandboxes whose output the caller reads to
	// the end (template builds): a file would let the sandbox fill it.
	Stdio *os.File
	// ExportLayer keeps every change the sandbox makes to its root in a
	// host directory that a LayerExporter names (runsc: no overlay in
	// the sentry's memory; the disk image still bounds it).
	ExportLayer bool
}

// ReadyFD is the descriptor number under which the init process finds
// Spec.ReadyFile.
const ReadyFD = 3

// State of a sandbox as the runtime sees it.
type State string

const (
	StateCreated State = "created"
	StateRunning State = "running"
	StatePaused  State = "paused"
	StateStopped State = "stopped"
)

// Info is what a driver can rediscover about a sandbox from the host.
type Info struct {
	ID      string
	PID     int // host PID of the init process; 0 if not running
	State   State
	Created time.Time
	Labels  map[string]string
}

// Stats is a point-in-time resource usage sample.
type Stats struct {
	CPUUsageNanos uint64 // cumulative CPU time
	MemoryBytes   uint64 // current usage
	MemoryLimit   uint64
	MemoryCache   uint64
	Pids          uint64
	DiskUsed      uint64 // bytes used of the sandbox's own disk; 0 when it has none
	DiskTotal     uint64
}

// Driver is the required interface every runtime implements.
type Driver interface {
	// Name is the runtime's name as selected by --runtime (e.g. "runc", "runsc").
	Name() string
	// Create prepares the rootfs, bundle and cgroup and starts the init
	// process. On error nothing is left behind.
	Create(ctx context.Context, spec Spec) (Info, error)
	// Kill stops every process of the sandbox and removes everything Create
	// made (mounts, cgroups, bundle). Killing an unknown ID returns ErrNotFound.
	Kill(ctx context.Context, id string) error
	// Info reports one sandbox; ErrNotFound if it does not exist.
	Info(ctx context.Context, id string) (Info, error)
	// List reports every sandbox this driver owns on the host, so that a
	// restarted server can adopt or clean them up.
	List(ctx context.Context) ([]Info, error)
	// Stats samples resource usage.
	Stats(ctx context.Context, id string) (Stats, error)
}

// PhaseMarker is told when a phase of a Create ends, so that the caller's
// per-phase timings can split the driver's work (e.g. "rootfs" from the
// runtime start that follows it).
type PhaseMarker interface {
	MarkPhase(name string)
}

type phaseKey struct{}

// WithPhaseMarker returns a context that carries m to a driver's Create.
func WithPhaseMarker(ctx context.Context, m PhaseMarker) context.Context {
	return context.WithValue(ctx, phaseKey{}, m)
}

// MarkPhase tells the context's PhaseMarker, if any, that phase name ended.
func MarkPhase(ctx context.Context, name string) {
	if m, ok := ctx.Value(phaseKey{}).(PhaseMarker); ok {
		m.MarkPhase(name)
	}
}

// LogRotator is a driver that keeps logs of its own per sandbox (the
// runtime's): RotateLogs trims each past its cap to its newest part. The
// caller runs it now and then.
type LogRotator interface {
	RotateLogs(ctx context.Context) error
}

// HostDisk is a driver whose sandboxes' disks draw on one host filesystem
// (thin-provisioned): it says when that filesystem is below the free space
// kept for the server, so the caller can stop the sandboxes that fill it.
type HostDisk interface {
	HostDiskLow() (bool, error)
}

// LayerExporter is the optional capability to name the host directory
// holding a sandbox's changes to its root (an overlay upper layer: new and
// changed files, whiteouts for deleted ones), for sandboxes created with
// Spec.ExportLayer. Files there belong to host ids idBase + the sandbox's
// ids (idBase is 0 without user namespaces). The sandbox should be paused
// while it is read.
type LayerExporter interface {
	LayerDir(ctx context.Context, id string) (dir string, idBase uint32, err error)
}

// Pauser freezes a sandbox in memory and thaws it again.
type Pauser interface {
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
}

// Checkpointer saves a sandbox to disk and restores it, possibly more than
// once from the same image (which is a fork).
type Checkpointer interface {
	Checkpoint(ctx context.Context, id, imageDir string) error
	Restore(ctx context.Context, spec Spec, imageDir string) (Info, error)
}
