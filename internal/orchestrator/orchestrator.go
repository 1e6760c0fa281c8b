// Package orchestrator owns the sandbox lifecycle: it turns API requests into
// runtime and network operations, records every state change in the store
// before acknowledging it, enforces timeouts, and adopts or cleans up
// sandboxes after a restart.
package orchestrator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/internal/envdclient"
	"github.com/airlock-sandbox/airlock/internal/errdefs"
	"github.com/airlock-sandbox/airlock/internal/network"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/internal/tenancy"
	"github.com/airlock-sandbox/airlock/sdk/envdapi"
	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// EnvdVersion is the E2B envd version Airlock's envd is compatible with; SDKs
// gate features on it.
const EnvdVersion = wire.EnvdVersion

// EnvdPort is where envd listens inside every sandbox.
const EnvdPort = wire.EnvdPort

// Paths inside the sandbox.
const (
	envdMountPath = "/.airlock/envd"
)

// Network is the part of the network manager the orchestrator uses.
type Network interface {
	Attach(ctx context.Context, id string, p network.Policy) (*network.Endpoint, error)
	Detach(ctx context.Context, id string) error
	SetPolicy(ctx context.Context, id string, p network.Policy) error
	// CheckPolicy refuses a policy the host's rules do not allow (e.g. an
	// allowOut into a private range), before any work is done.
	CheckPolicy(p network.Policy) error
	List(ctx context.Context) ([]network.Endpoint, error)
}

// Templates resolves template references (ID or alias) to ready templates.
type Templates interface {
	Resolve(ctx context.Context, ref string) (*store.Template, error)
}

// TemplateLeaser is what a Templates does when it keeps the trees sandboxes
// run on until they are gone (template.Manager does): a sandbox leases its
// rootfs before its container starts and releases it once torn down, and
// recovery drops the leases of sandboxes that did not survive a restart.
type TemplateLeaser interface {
	Lease(rootfs, sandboxID string) error
	Release(sandboxID string) error
	ReconcileLeases(live func(sandboxID string) bool) error
}

// Store is the part of the store the orchestrator uses: sandbox records,
// their events, and template spawn counts.
type Store interface {
	store.Sandboxes
	store.Events
	TouchTemplate(ctx context.Context, id string, at time.Time) error
}

// Config wires the orchestrator's dependencies.
type Config struct {
	Store Store
	// Driver is the default runtime; MoreDrivers are the others a template
	// or a create request may name (one per runtime name).
	Driver      runtime.Driver
	MoreDrivers []runtime.Driver
	Network     Network
	Templates   Templates
	Log         *slog.Logger

	// EnvdBinary is a static binary on the host that is bind-mounted into
	// every sandbox and started as its init with EnvdArgs.
	EnvdBinary string
	EnvdArgs   []string

	DefaultCPU      int           // default 2
	DefaultMemoryMB int           // default 1024
	PidsMax         int64         // default 1024
	MaxTimeout      time.Duration // default 24h
	ReapInterval    time.Duration // default 250ms
	ReadyTimeout    time.Duration // how long envd may take to come up; default 30s
	DefaultUser     string        // default "user"
	EnvdPort        int           // default EnvdPort; tests point it elsewhere
	// StartCmdPorts maps template start commands to the port they serve;
	// Create waits for that port's /health. Default: Airlock's interpreter
	// on InterpreterPort. A port ≤ 0 means do not wait.
	StartCmdPorts map[string]int

	// PoolSize is how many booted, unclaimed sandboxes to keep per pooled
	// template (0 disables the warm pool); PoolTemplates names them
	// (default "base").
	PoolSize      int
	PoolTemplates []string

	// Limits bounds each team's running sandboxes, memory and create rate;
	// nil admits everything.
	Limits *tenancy.Limiter
	// PausedRetention is how long a paused sandbox is kept before it is
	// killed; 0 keeps it until killed.
	PausedRetention time.Duration
}

// Orchestrator manages sandboxes. Create one with New and call Start.
type Orchestrator struct {
	cfg     Config
	drivers map[string]runtime.Driver // by runtime name
	reaps   uint64                    // reaper ticks, for work done every so many
	log     *slog.Logger
	envd    *envdclient.Client
	pool    *pool // nil when disabled

	mu      sync.Mutex
	live    map[string]*entry // running and paused sandboxes
	metrics metricsHistory
	locks   map[string]*sync.Mutex
	pending map[string]map[string]tenancy.Usage // team → admission ticket → usage of creates in flight

	stop chan struct{}
	wg   sync.WaitGroup

	// diskSeen is each running sandbox's disk use at the last reaper tick
	// while the host's disk was low (reaper goroutine only).
	diskSeen map[string]uint64
}

// entry is the in-memory view of a live sandbox, kept for the gateway's hot path.
type entry struct {
	ip           netip.Addr
	state        store.SandboxState
	endAt        time.Time
	autoPause    bool
	trafficToken string
	accessToken  string
	team         string
	memoryMB     int
	pausedAt     time.Time
	// stopped is closed when the sandbox stops being reachable (killed or
	// paused), so the gateway can cut requests in flight to it at once
	// instead of leaving them waiting on a dead address.
	stopped chan struct{}
}

// setStateLocked records a live sandbox's new state, closing or renewing
// its stopped channel as it leaves or enters the running state.
func (e *entry) setStateLocked(state store.SandboxState) {
	was := e.state == store.StateRunning
	e.state = state
	switch now := state == store.StateRunning; {
	case was && !now:
		close(e.stopped)
	case !was && now:
		e.stopped = make(chan struct{})
	}
}

// untrackLocked forgets a sandbox, cutting requests in flight to it.
func (o *Orchestrator) untrackLocked(id string) {
	if e, ok := o.live[id]; ok {
		if e.state == store.StateRunning {
			close(e.stopped)
		}
		delete(o.live, id)
	}
}

// New validates the configuration and builds an orchestrator.
func New(cfg Config) (*Orchestrator, error) {
	if cfg.Store == nil || cfg.Driver == nil || cfg.Network == nil || cfg.Templates == nil {
		return nil, errors.New("orchestrator: store, driver, network and templates are required")
	}
	if cfg.EnvdBinary == "" {
		return nil, errors.New("orchestrator: envd binary is required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.DefaultCPU <= 0 {
		cfg.DefaultCPU = 2
	}
	if cfg.DefaultMemoryMB <= 0 {
		cfg.DefaultMemoryMB = 1024
	}
	if cfg.PidsMax <= 0 {
		cfg.PidsMax = 1024
	}
	if cfg.MaxTimeout <= 0 {
		cfg.MaxTimeout = 24 * time.Hour
	}
	if cfg.ReapInterval <= 0 {
		cfg.ReapInterval = 250 * time.Millisecond
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 30 * time.Second
	}
	if cfg.EnvdPort == 0 {
		cfg.EnvdPort = EnvdPort
	}
	if cfg.DefaultUser == "" {
		cfg.DefaultUser = "user"
	}
	if cfg.StartCmdPorts == nil {
		cfg.StartCmdPorts = defaultStartCmdPorts()
	}
	drivers := map[string]runtime.Driver{}
	for _, d := range append([]runtime.Driver{cfg.Driver}, cfg.MoreDrivers...) {
		if _, dup := drivers[d.Name()]; dup {
			return nil, fmt.Errorf("orchestrator: two drivers for runtime %q", d.Name())
		}
		drivers[d.Name()] = d
	}
	o := &Orchestrator{
		drivers: drivers,
		cfg:     cfg,
		log:     cfg.Log.With("component", "orchestrator"),
		envd:    envdclient.New(cfg.EnvdPort),
		live:    map[string]*entry{},
		locks:   map[string]*sync.Mutex{},
		pending: map[string]map[string]tenancy.Usage{},
		stop:    make(chan struct{}),
	}
	o.pool = newPool(o, cfg.PoolSize, cfg.PoolTemplates)
	return o, nil
}

// Start recovers sandboxes left from a previous run and starts the reaper.
func (o *Orchestrator) Start(ctx context.Context) error {
	if err := o.recover(ctx); err != nil {
		return fmt.Errorf("recover sandboxes: %w", err)
	}
	o.wg.Add(2)
	go o.reapLoop()
	go o.metricsLoop()
	o.pool.start(ctx)
	return nil
}

// Close stops the reaper and removes the warm pool's unclaimed sandboxes.
// Other sandboxes keep running; the next Start adopts them.
func (o *Orchestrator) Close() {
	o.pool.close()
	close(o.stop)
	o.wg.Wait()
	o.envd.Close()
}

// lock serialises lifecycle operations on one sandbox.
func (o *Orchestrator) lock(id string) func() {
	o.mu.Lock()
	l, ok := o.locks[id]
	if !ok {
		l = &sync.Mutex{}
		o.locks[id] = l
	}
	o.mu.Unlock()
	l.Lock()
	return l.Unlock
}

// CreateRequest is a validated request for a new sandbox.
type CreateRequest struct {
	Template      string
	Timeout       time.Duration
	Metadata      map[string]string
	EnvVars       map[string]string
	Secure        bool
	AllowInternet bool
	AutoPause     bool
	Network       network.Policy // AllowOut/DenyOut; AllowInternet is taken from the field above
	PublicTraffic bool           // false ⇒ a traffic access token is issued
	Team          string         // the team that owns the sandbox ("" = store.DefaultTeamID)
	Runtime       string         // "" = the template's, else the server's default
}

// Create makes a new running sandbox and returns its record once envd
// answers, so the caller's very next envd request succeeds. A request the
// warm pool can serve is served from it.
func (o *Orchestrator) Create(ctx context.Context, req CreateRequest) (*store.Sandbox, error) {
	tm := timingsFrom(ctx)
	tm.start()
	if req.Timeout <= 0 {
		return nil, fmt.Errorf("%w: timeout must be positive", ErrInvalid)
	}
	if req.Timeout > o.cfg.MaxTimeout {
		return nil, fmt.Errorf("%w: timeout exceeds the maximum of %d seconds", ErrInvalid, int(o.cfg.MaxTimeout.Seconds()))
	}
	tpl, err := o.cfg.Templates.Resolve(ctx, req.Template)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: %q", ErrTemplateNotFound, req.Template)
		}
		return nil, fmt.Errorf("resolve template %q: %w", req.Template, err)
	}
	if err := o.cfg.Network.CheckPolicy(policyFor(req.AllowInternet, req.Network)); err != nil {
		return nil, err
	}
	if req.Team == "" {
		req.Team = store.DefaultTeamID
	}
	// Another team's private template does not exist for this one.
	if tpl.TeamID != "" && tpl.TeamID != req.Team && !tpl.Public {
		return nil, fmt.Errorf("%w: %q", ErrTemplateNotFound, req.Template)
	}
	usual, err := o.runtimeFor("", tpl)
	if err != nil {
		return nil, err
	}
	if req.Runtime, err = o.runtimeFor(req.Runtime, tpl); err != nil {
		return nil, err
	}
	release, err := o.admit(req.Team, cpuOr(tpl.MemoryMB, o.cfg.DefaultMemoryMB), true)
	if err != nil {
		return nil, err
	}
	defer release()
	tm.mark("resolve")
	// The pool boots the template's usual runtime; another goes cold.
	if req.Runtime == usual {
		if sb, ok := o.pool.claim(ctx, req, tpl); ok {
			o.logTimings(sb.ID, tm)
			return sb, nil
		}
	}

	now := time.Now().UTC()
	sb := o.newRecord(newID(), req, tpl, now)
	unlock := o.lock(sb.ID)
	defer unlock()

	if err := o.cfg.Store.CreateSandbox(ctx, sb); err != nil {
		return nil, fmt.Errorf("record sandbox: %w", err)
	}
	o.event(ctx, sb.ID, "info", "creating sandbox from template "+tpl.ID)
	tm.mark("store")

	// Use a context detached from the request for the create itself: a
	// client that hangs up mid-create must not leave half-built resources.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.ReadyTimeout+30*time.Second)
	defer cancel()
	ip, err := o.boot(cctx, sb, tpl, policyFor(req.AllowInternet, req.Network))
	if err != nil {
		o.teardown(cctx, sb.ID)
		o.finish(cctx, sb.ID, "create failed: "+err.Error())
		return nil, err
	}
	if err := o.envd.Init(cctx, ip, o.envdConfig(sb, tpl)); err != nil {
		o.teardown(cctx, sb.ID)
		o.finish(cctx, sb.ID, "create failed: configure envd: "+err.Error())
		return nil, fmt.Errorf("configure envd: %w", err)
	}
	tm.mark("envd_init")
	if err := o.runStartCmd(cctx, sb, ip, tpl); err != nil {
		o.teardown(cctx, sb.ID)
		o.finish(cctx, sb.ID, "create failed: "+err.Error())
		return nil, err
	}
	tm.mark("start_cmd")
	updated, err := o.transition(cctx, sb.ID, store.StateRunning, "", func(s *store.Sandbox) { s.IP = ip.String() })
	if err != nil {
		o.teardown(cctx, sb.ID)
		o.finish(cctx, sb.ID, "create failed: "+err.Error())
		return nil, fmt.Errorf("record running sandbox: %w", err)
	}
	if err := o.cfg.Store.TouchTemplate(cctx, tpl.ID, now); err != nil {
		o.log.Warn("touch template", "template", tpl.ID, "err", err)
	}
	o.event(ctx, sb.ID, "info", "sandbox running")
	tm.mark("record")
	o.logTimings(sb.ID, tm)
	return updated, nil
}

func (o *Orchestrator) logTimings(id string, tm *Timings) {
	if tm != nil {
		o.log.Debug("sandbox created", append([]any{"sandbox", id}, tm.attrs()...)...)
	}
}

// newRecord builds the store record of a sandbox created at now.
func (o *Orchestrator) newRecord(id string, req CreateRequest, tpl *store.Template, now time.Time) *store.Sandbox {
	sb := &store.Sandbox{
		ID:            id,
		TeamID:        req.Team,
		TemplateID:    tpl.ID,
		Alias:         aliasFor(tpl, req.Template),
		State:         store.StateCreating,
		Runtime:       req.Runtime,
		Metadata:      nonNil(req.Metadata),
		EnvVars:       nonNil(req.EnvVars),
		Secure:        req.Secure,
		AllowInternet: req.AllowInternet,
		AutoPause:     req.AutoPause,
		CPUCount:      cpuOr(tpl.CPUCount, o.cfg.DefaultCPU),
		MemoryMB:      cpuOr(tpl.MemoryMB, o.cfg.DefaultMemoryMB),
		DiskSizeMB:    tpl.DiskSizeMB,
		StartedAt:     now,
		EndAt:         now.Add(req.Timeout),
		UpdatedAt:     now,
	}
	if req.Secure {
		sb.AccessToken = randomHex(32)
	}
	if !req.PublicTraffic {
		sb.TrafficToken = randomHex(32)
	}
	return sb
}

// boot attaches the network, starts the container and waits for envd; the
// caller configures envd (at once, or when a pooled sandbox is claimed).
func (o *Orchestrator) boot(ctx context.Context, sb *store.Sandbox, tpl *store.Template, pol network.Policy) (netip.Addr, error) {
	tm := timingsFrom(ctx)
	ep, err := o.cfg.Network.Attach(ctx, sb.ID, pol)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("attach network: %w", err)
	}
	tm.mark("netns")
	if l, ok := o.cfg.Templates.(TemplateLeaser); ok {
		// Released by teardown, which every failed create runs too.
		if err := l.Lease(tpl.RootfsDir, sb.ID); err != nil {
			return netip.Addr{}, fmt.Errorf("lease template rootfs: %w", err)
		}
	}
	spec := runtime.Spec{
		ID:        sb.ID,
		RootfsDir: tpl.RootfsDir,
		Args:      append([]string{envdMountPath}, o.cfg.EnvdArgs...),
		Env:       []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
		Hostname:  "e2b",
		NetNSPath: ep.NetNSPath,
		Mounts:    []runtime.Mount{{Source: o.cfg.EnvdBinary, Destination: envdMountPath, ReadOnly: true}},
		Resources: runtime.Resources{
			CPUCount: sb.CPUCount,
			MemoryMB: sb.MemoryMB,
			PidsMax:  o.cfg.PidsMax,
			DiskMB:   sb.DiskSizeMB,
		},
		Labels: map[string]string{"airlock.sandbox": sb.ID, "airlock.template": sb.TemplateID},
	}
	// envd says when it listens through a pipe handed to it as a
	// descriptor, instead of being polled.
	ready, readyW, err := os.Pipe()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("ready pipe: %w", err)
	}
	defer ready.Close()
	spec.ReadyFile = readyW
	spec.Args = append(spec.Args, "--ready-fd="+strconv.Itoa(runtime.ReadyFD))
	dctx := ctx
	if tm != nil {
		dctx = runtime.WithPhaseMarker(ctx, tm) // the driver splits off "rootfs"
	}
	drv, err := o.driver(sb.Runtime)
	if err != nil {
		readyW.Close()
		return netip.Addr{}, err
	}
	_, err = drv.Create(dctx, spec)
	readyW.Close() // the sandbox holds its own copy now
	if err != nil {
		return netip.Addr{}, fmt.Errorf("start container: %w", err)
	}
	tm.mark("runtime")
	if err := o.envd.WaitSignalled(ctx, ready, ep.IP, o.cfg.ReadyTimeout); err != nil {
		return netip.Addr{}, fmt.Errorf("envd did not become ready: %w", err)
	}
	tm.mark("envd_ready")
	return ep.IP, nil
}

// envdConfig is envd's configuration for sb, with its template's default
// user and workdir (tpl nil: the server's).
func (o *Orchestrator) envdConfig(sb *store.Sandbox, tpl *store.Template) envdapi.Init {
	env := make(map[string]string, len(sb.EnvVars)+3)
	if tpl != nil {
		for k, v := range tpl.Envs { // the template's ENV steps, under the sandbox's own
			env[k] = v
		}
	}
	for k, v := range sb.EnvVars {
		env[k] = v
	}
	env["E2B_SANDBOX"] = "true"
	env["E2B_SANDBOX_ID"] = sb.ID
	env["E2B_TEMPLATE_ID"] = sb.TemplateID
	now := time.Now().UTC()
	cfg := envdapi.Init{
		EnvVars:     env,
		AccessToken: sb.AccessToken,
		DefaultUser: o.userOf(tpl),
		Timestamp:   &now,
	}
	if tpl != nil {
		cfg.DefaultWorkdir = tpl.Workdir
	}
	return cfg
}

// teardown removes the container and network of a sandbox; it is safe to call
// on partially created sandboxes and logs instead of failing.
func (o *Orchestrator) teardown(ctx context.Context, id string) {
	// Every driver is asked: only the one whose sandbox it is acts, and a
	// half-created sandbox's record may not say which yet.
	for _, d := range o.drivers {
		if err := d.Kill(ctx, id); err != nil && !errors.Is(err, runtime.ErrNotFound) {
			o.log.Error("kill container", "sandbox", id, "runtime", d.Name(), "err", err)
		}
	}
	if err := o.cfg.Network.Detach(ctx, id); err != nil {
		o.log.Error("detach network", "sandbox", id, "err", err)
	}
	if l, ok := o.cfg.Templates.(TemplateLeaser); ok {
		if err := l.Release(id); err != nil {
			o.log.Error("release template rootfs", "sandbox", id, "err", err)
		}
	}
	o.mu.Lock()
	o.untrackLocked(id)
	// The sandbox is over: later calls find it killed in the store, so its
	// lock can go (a waiter still holding the old one sees the same).
	delete(o.locks, id)
	o.mu.Unlock()
}

// finish records a sandbox as killed with a reason.
func (o *Orchestrator) finish(ctx context.Context, id, reason string) {
	if _, err := o.transition(ctx, id, store.StateKilled, "sandbox killed: "+reason, func(s *store.Sandbox) { s.EndReason = reason }); err != nil {
		o.log.Error("record killed sandbox", "sandbox", id, "err", err)
	}
}

func (o *Orchestrator) track(sb *store.Sandbox, ip netip.Addr) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.trackLocked(sb, ip)
}

func (o *Orchestrator) trackLocked(sb *store.Sandbox, ip netip.Addr) {
	o.untrackLocked(sb.ID)
	o.live[sb.ID] = &entry{
		ip: ip, state: sb.State, endAt: sb.EndAt, autoPause: sb.AutoPause,
		trafficToken: sb.TrafficToken, accessToken: sb.AccessToken,
		team: sb.TeamID, memoryMB: sb.MemoryMB, pausedAt: sb.PausedAt,
		stopped: make(chan struct{}),
	}
}

// Kill stops a sandbox and removes everything it used.
func (o *Orchestrator) Kill(ctx context.Context, id string) error {
	return o.kill(ctx, id, "killed by request")
}

func (o *Orchestrator) kill(ctx context.Context, id, reason string) error {
	return o.killIf(ctx, id, reason, nil)
}

// killIf kills the sandbox if still (when set) holds for its record under
// the sandbox's lock: the reaper decides from a snapshot that a concurrent
// connect or resume may have made stale.
func (o *Orchestrator) killIf(ctx context.Context, id, reason string, still func(*store.Sandbox) bool) error {
	unlock := o.lock(id)
	defer unlock()
	sb, err := o.cfg.Store.GetSandbox(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return err
	}
	// "creating" is only seen here for an unclaimed warm-pool member (a
	// create holds the lock until its sandbox runs): not the caller's.
	if sb.State == store.StateKilled || sb.State == store.StateCreating {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if still != nil && !still(sb) {
		return nil
	}
	ctx = context.WithoutCancel(ctx)
	// Record the end first, then drop the route: nobody may see the sandbox
	// unreachable yet still listed as running. Resources that teardown fails
	// to free are found as orphans on the next start.
	o.finish(ctx, id, reason)
	o.mu.Lock()
	o.untrackLocked(id)
	o.mu.Unlock()
	o.teardown(ctx, id)
	return nil
}

// Get returns a live (running or paused) sandbox.
func (o *Orchestrator) Get(ctx context.Context, id string) (*store.Sandbox, error) {
	sb, err := o.cfg.Store.GetSandbox(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return nil, err
	}
	if sb.State == store.StateKilled || sb.State == store.StateCreating {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return sb, nil
}

// List returns live sandboxes matching the filter. Killed sandboxes are never
// listed; an empty state filter means running and paused.
func (o *Orchestrator) List(ctx context.Context, f store.SandboxFilter) ([]*store.Sandbox, *store.Cursor, error) {
	if len(f.States) == 0 {
		f.States = []store.SandboxState{store.StateRunning, store.StatePaused}
	}
	return o.cfg.Store.ListSandboxes(ctx, f)
}

// SetTimeout sets the expiry to now+d; it may shorten the lifetime.
func (o *Orchestrator) SetTimeout(ctx context.Context, id string, d time.Duration) error {
	if d < 0 {
		d = 0
	}
	if d > o.cfg.MaxTimeout {
		return fmt.Errorf("%w: timeout exceeds the maximum of %d seconds", ErrInvalid, int(o.cfg.MaxTimeout.Seconds()))
	}
	_, err := o.extend(ctx, id, time.Now().UTC().Add(d), false)
	return err
}

// Refresh extends the expiry to now+d, never shortening it.
func (o *Orchestrator) Refresh(ctx context.Context, id string, d time.Duration) error {
	_, err := o.extend(ctx, id, time.Now().UTC().Add(d), true)
	return err
}

func (o *Orchestrator) extend(ctx context.Context, id string, endAt time.Time, onlyLater bool) (*store.Sandbox, error) {
	unlock := o.lock(id)
	defer unlock()
	sb, err := o.cfg.Store.UpdateSandbox(ctx, id, func(s *store.Sandbox) error {
		if s.State != store.StateRunning && s.State != store.StatePaused {
			return fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		if onlyLater && !endAt.After(s.EndAt) {
			return nil
		}
		s.EndAt = endAt
		s.UpdatedAt = time.Now().UTC()
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return nil, err
	}
	o.mu.Lock()
	if e, ok := o.live[id]; ok {
		e.endAt = sb.EndAt
	}
	o.mu.Unlock()
	return sb, nil
}

// Connect extends a running sandbox's lifetime (never shortening it) or
// resumes a paused one. resumed reports which happened.
func (o *Orchestrator) Connect(ctx context.Context, id string, d time.Duration) (sb *store.Sandbox, resumed bool, err error) {
	if d > o.cfg.MaxTimeout {
		return nil, false, fmt.Errorf("%w: timeout exceeds the maximum of %d seconds", ErrInvalid, int(o.cfg.MaxTimeout.Seconds()))
	}
	cur, err := o.Get(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if cur.State == store.StatePaused {
		if err := o.resume(ctx, id); err != nil {
			return nil, false, err
		}
		resumed = true
	}
	sb, err = o.extend(ctx, id, time.Now().UTC().Add(d), true)
	return sb, resumed, err
}

// Pause freezes a running sandbox in memory.
func (o *Orchestrator) Pause(ctx context.Context, id string) error {
	unlock := o.lock(id)
	defer unlock()
	sb, err := o.Get(ctx, id)
	if err != nil {
		return err
	}
	p, err := o.pauser(sb.Runtime, "pause")
	if err != nil {
		return err
	}
	if sb.State != store.StateRunning {
		return fmt.Errorf("%w: sandbox %s is already paused", ErrConflict, id)
	}
	if err := p.Pause(ctx, id); err != nil {
		return fmt.Errorf("pause %s: %w", id, err)
	}
	_, err = o.transition(ctx, id, store.StatePaused, "sandbox paused", nil)
	return err
}

func (o *Orchestrator) resume(ctx context.Context, id string) error {
	unlock := o.lock(id)
	defer unlock()
	sb, err := o.Get(ctx, id)
	if err != nil {
		return err
	}
	if sb.State != store.StatePaused {
		return nil
	}
	p, err := o.pauser(sb.Runtime, "resume")
	if err != nil {
		return err
	}
	// A resumed sandbox runs again, so it counts against its team's limits.
	release, err := o.admit(sb.TeamID, sb.MemoryMB, false)
	if err != nil {
		return err
	}
	defer release()
	if err := p.Resume(ctx, id); err != nil {
		return fmt.Errorf("resume %s: %w", id, err)
	}
	// Resync envd's clock and config, as E2B does after a resume.
	if ip, err := netip.ParseAddr(sb.IP); err == nil {
		tpl, _ := o.cfg.Templates.Resolve(ctx, sb.TemplateID) // its defaults, if it still exists
		if err := o.envd.Init(ctx, ip, o.envdConfig(sb, tpl)); err != nil {
			o.log.Warn("re-init envd after resume", "sandbox", id, "err", err)
		}
	}
	_, err = o.transition(ctx, id, store.StateRunning, "sandbox resumed", nil)
	return err
}

// Route is what the gateway needs to forward a request to a sandbox.
type Route struct {
	IP           netip.Addr
	Running      bool
	TrafficToken string
	AccessToken  string
	// Stopped is closed once a running sandbox is killed or paused (nil
	// when it is not running).
	Stopped <-chan struct{}
}

// Route looks up a live sandbox without touching the store.
func (o *Orchestrator) Route(id string) (Route, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.live[id]
	if !ok {
		return Route{}, false
	}
	rt := Route{IP: e.ip, Running: e.state == store.StateRunning, TrafficToken: e.trafficToken, AccessToken: e.accessToken}
	if rt.Running {
		rt.Stopped = e.stopped
	}
	return rt, true
}

// Stats is a sandbox's resource usage, as its driver measures it.
type Stats = runtime.Stats

// Stats samples a live sandbox's resource usage.
func (o *Orchestrator) Stats(ctx context.Context, id string) (*store.Sandbox, runtime.Stats, error) {
	sb, err := o.Get(ctx, id)
	if err != nil {
		return nil, runtime.Stats{}, err
	}
	drv, err := o.driver(sb.Runtime)
	if err != nil {
		return nil, runtime.Stats{}, err
	}
	st, err := drv.Stats(ctx, id)
	if err != nil {
		return nil, runtime.Stats{}, fmt.Errorf("stats %s: %w", id, err)
	}
	// The host sees a gVisor sandbox's writes only once the sentry flushes
	// them to its file store; the guest's own `df /` is current. Take the
	// larger, so a guest cannot hide what the host already counts.
	if r, ok := o.Route(id); ok && r.Running {
		if m, err := o.envd.Metrics(ctx, r.IP, r.AccessToken); err == nil && m.DiskUsed > 0 && uint64(m.DiskUsed) > st.DiskUsed {
			st.DiskUsed = uint64(m.DiskUsed)
			if sb.DiskSizeMB > 0 {
				st.DiskUsed = min(st.DiskUsed, uint64(sb.DiskSizeMB)<<20)
			}
		}
	}
	return sb, st, nil
}

// Owner returns the team of a recorded sandbox, killed ones included (their
// logs stay readable). A sandbox still being created (or an unclaimed
// warm-pool member) is nobody's yet.
func (o *Orchestrator) Owner(ctx context.Context, id string) (string, error) {
	sb, err := o.cfg.Store.GetSandbox(ctx, id)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return "", err
	}
	if sb.State == store.StateCreating {
		return "", fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return sb.TeamID, nil
}

// admit reserves room for one more running sandbox of team (with memMB of
// memory) under the team's limits, counting creates still in flight; the
// reservation lasts until release, by which time a successful sandbox is in
// o.live and counts from there.
func (o *Orchestrator) admit(team string, memMB int, create bool) (release func(), err error) {
	if o.cfg.Limits == nil {
		return func() {}, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	var cur tenancy.Usage
	for _, e := range o.live {
		if e.team == team && e.state != store.StatePaused {
			cur.Sandboxes++
			cur.MemoryMB += e.memoryMB
		}
	}
	for _, u := range o.pending[team] {
		cur.Sandboxes += u.Sandboxes
		cur.MemoryMB += u.MemoryMB
	}
	add := tenancy.Usage{Sandboxes: 1, MemoryMB: memMB}
	if err := o.cfg.Limits.Admit(team, cur, add, create); err != nil {
		return nil, err
	}
	ticket := randomHex(8)
	if o.pending[team] == nil {
		o.pending[team] = map[string]tenancy.Usage{}
	}
	o.pending[team][ticket] = add
	return func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		delete(o.pending[team], ticket)
		if len(o.pending[team]) == 0 {
			delete(o.pending, team)
		}
	}, nil
}

// Events returns a sandbox's lifecycle log.
func (o *Orchestrator) Events(ctx context.Context, id string, since time.Time, limit int) ([]store.Event, error) {
	if _, err := o.cfg.Store.GetSandbox(ctx, id); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
		}
		return nil, err
	}
	return o.cfg.Store.ListEvents(ctx, id, since, limit)
}

func (o *Orchestrator) event(ctx context.Context, id, level, msg string) {
	err := o.cfg.Store.AppendEvent(context.WithoutCancel(ctx), store.Event{SandboxID: id, Time: time.Now().UTC(), Level: level, Message: msg})
	if err != nil {
		o.log.Warn("append event", "sandbox", id, "err", err)
	}
}

// runtimeFor picks a sandbox's runtime: the one asked for, else the
// template's, else the server's default; one this server lacks is a 400.
func (o *Orchestrator) runtimeFor(asked string, tpl *store.Template) (string, error) {
	name := asked
	if name == "" {
		name = tpl.Runtime
	}
	if name == "" {
		return o.cfg.Driver.Name(), nil
	}
	if _, ok := o.drivers[name]; !ok {
		return "", fmt.Errorf("%w: runtime %q is not available on this server (available: %s)", ErrInvalid, name, strings.Join(o.Runtimes(), ", "))
	}
	return name, nil
}

// Runtimes lists the runtimes this server can run sandboxes on, the default first.
func (o *Orchestrator) Runtimes() []string {
	out := []string{o.cfg.Driver.Name()}
	for _, d := range o.cfg.MoreDrivers {
		out = append(out, d.Name())
	}
	return out
}

// driver is the driver of a recorded sandbox's runtime ("" for records
// older than per-sandbox runtimes: the default).
func (o *Orchestrator) driver(name string) (runtime.Driver, error) {
	if name == "" {
		return o.cfg.Driver, nil
	}
	d, ok := o.drivers[name]
	if !ok {
		return nil, fmt.Errorf("runtime %q of this sandbox is not enabled on this server: %w", name, errdefs.ErrUnavailable)
	}
	return d, nil
}

// pauser is the runtime's pause capability, or a typed error saying it has none.
func (o *Orchestrator) pauser(name, verb string) (runtime.Pauser, error) {
	d, err := o.driver(name)
	if err != nil {
		return nil, err
	}
	p, ok := d.(runtime.Pauser)
	if !ok {
		return nil, fmt.Errorf("%s with runtime %s: %w", verb, d.Name(), runtime.ErrNotSupported)
	}
	return p, nil
}

// policyFor turns the create-time switch into a network policy.
func policyFor(allowInternet bool, p network.Policy) network.Policy {
	p.AllowInternet = allowInternet
	return p
}

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

// newID returns a 20-character sandbox ID of [a-z0-9]: no '-', because
// host-based routing splits "{port}-{id}" on it.
func newID() string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	for i := range b {
		b[i] = idAlphabet[int(b[i])%len(idAlphabet)]
	}
	b[0] = 'i'
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func cpuOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

func aliasFor(t *store.Template, ref string) string {
	for _, a := range t.Aliases {
		if a == ref {
			return a
		}
	}
	if len(t.Aliases) > 0 {
		return t.Aliases[0]
	}
	return ""
}
