package main

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/internal/agent"
	"github.com/airlock-sandbox/airlock/internal/api"
	"github.com/airlock-sandbox/airlock/internal/apikey"
	"github.com/airlock-sandbox/airlock/internal/builder"
	"github.com/airlock-sandbox/airlock/internal/gateway"
	"github.com/airlock-sandbox/airlock/internal/network"
	"github.com/airlock-sandbox/airlock/internal/ociimage"
	"github.com/airlock-sandbox/airlock/internal/orchestrator"
	"github.com/airlock-sandbox/airlock/internal/procview"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/runtime/oci"
	"github.com/airlock-sandbox/airlock/internal/selfsigned"
	"github.com/airlock-sandbox/airlock/internal/template"
	"github.com/airlock-sandbox/airlock/internal/tenancy"
)

type serveOptions struct {
	addr    string
	dataDir string
	store   string
	runtime string
	// diskReserveMB is host disk the data dir keeps free for the server.
	diskReserveMB int
	// usernsBase is the first host id runc sandboxes' ids map to; 0 turns
	// user namespaces off.
	usernsBase int
	// procView binds LXCFS's /proc files into runc sandboxes.
	procView bool
	domain   string
	bridge   string
	subnet   string
	tlsCert  string
	tlsKey   string
	// selfSigned makes a wildcard certificate for domain (see internal/selfsigned).
	selfSigned bool
	verbose    bool
	pool       int

	allowPrivateEgress bool
	protect            []string
	registry           string
	registryInsecure   []string
	imageCacheMB       int

	limits          tenancy.Limits
	pausedRetention time.Duration
}

func newServeCmd() *cobra.Command {
	var o serveOptions
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Airlock server (control API and sandbox gateway on one listener)",
		Long: `Run the Airlock server. Point the official E2B SDKs at it with
E2B_API_URL=http://HOST:3000 and E2B_SANDBOX_URL=http://HOST:3000.

On first start it builds the default templates (a few minutes) and prints an
API key. Sandboxes keep running across a restart of the server.`,
		Example: `  airlock serve
  airlock serve --addr 127.0.0.1:3000 --data-dir /srv/airlock --runtime runsc`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return serve(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.addr, "addr", envOr("AIRLOCK_ADDR", ":3000"), "listen address (env AIRLOCK_ADDR)")
	f.StringVar(&o.dataDir, "data-dir", envOr("AIRLOCK_DATA_DIR", "/var/lib/airlock"), "data directory (env AIRLOCK_DATA_DIR)")
	f.StringVar(&o.store, "store", envOr("AIRLOCK_STORE", ""), storeFlagHelp)
	f.StringVar(&o.runtime, "runtime", envOr("AIRLOCK_RUNTIME", ""), "default isolation runtime: runsc (gVisor) or runc; default runsc when installed, else runc with a warning. The other one stays available per template and per sandbox (env AIRLOCK_RUNTIME)")
	f.StringVar(&o.domain, "domain", envOr("AIRLOCK_DOMAIN", ""), "public sandbox domain for {port}-{id}.{domain} host routing, as clients dial it (add :PORT if not the scheme's default) (env AIRLOCK_DOMAIN)")
	f.StringVar(&o.bridge, "bridge", envOr("AIRLOCK_BRIDGE", "airlock0"), "host bridge for sandbox networking; one per server on a host (env AIRLOCK_BRIDGE)")
	f.StringVar(&o.subnet, "subnet", envOr("AIRLOCK_SUBNET", "10.213.0.0/16"), "sandbox address range on the bridge (env AIRLOCK_SUBNET)")
	f.StringVar(&o.tlsCert, "tls-cert", envOr("AIRLOCK_TLS_CERT", ""), "serve HTTPS with this certificate (PEM); for {port}-{id}.{domain} routing use a wildcard certificate (env AIRLOCK_TLS_CERT)")
	f.StringVar(&o.tlsKey, "tls-key", envOr("AIRLOCK_TLS_KEY", ""), "private key for --tls-cert (env AIRLOCK_TLS_KEY)")
	f.BoolVar(&o.selfSigned, "self-signed", envBool("AIRLOCK_SELF_SIGNED", false), "serve HTTPS with a wildcard certificate for --domain signed by a local CA kept in the data dir, and print how to trust it; for local use (env AIRLOCK_SELF_SIGNED)")
	f.BoolVar(&o.allowPrivateEgress, "allow-private-egress", envBool("AIRLOCK_ALLOW_PRIVATE_EGRESS", false), "let a sandbox's network.allowOut open private, link-local and host addresses and other sandboxes; off by default (env AIRLOCK_ALLOW_PRIVATE_EGRESS)")
	f.StringSliceVar(&o.protect, "protect", envList("AIRLOCK_PROTECT"), "more IPv4 ranges no sandbox may reach, on top of the private, link-local and host ranges (repeatable; env AIRLOCK_PROTECT, comma-separated)")
	f.StringVar(&o.registry, "registry", envOr("AIRLOCK_REGISTRY", ""), "registry for image references without one in template builds (fromImage), e.g. a mirror; default Docker Hub (env AIRLOCK_REGISTRY)")
	f.StringSliceVar(&o.registryInsecure, "registry-insecure", envList("AIRLOCK_REGISTRY_INSECURE"), "registries (host:port) template builds may reach over plain HTTP and on private addresses; others must be public HTTPS (repeatable; env AIRLOCK_REGISTRY_INSECURE, comma-separated)")
	f.IntVar(&o.imageCacheMB, "image-cache-mb", envInt("AIRLOCK_IMAGE_CACHE_MB", 40<<10), "how much flattened images template builds pulled the data dir keeps; the least recently used go first, never one a build uses (env AIRLOCK_IMAGE_CACHE_MB)")
	f.BoolVar(&o.verbose, "verbose", false, "debug logging")
	f.IntVar(&o.diskReserveMB, "disk-reserve-mb", envInt("AIRLOCK_DISK_RESERVE_MB", oci.DefaultDiskReserveMB), "free space the data dir's filesystem keeps for the server's store and logs: creates fail with 503 below it; negative for none (env AIRLOCK_DISK_RESERVE_MB)")
	f.BoolVar(&o.procView, "runc-proc-view", envBool("AIRLOCK_RUNC_PROC_VIEW", true), "runc sandboxes read their own limits from /proc/meminfo, /proc/cpuinfo, /proc/stat, /proc/uptime (LXCFS, which stays running for them across server restarts); false shows them the host's (env AIRLOCK_RUNC_PROC_VIEW)")
	f.IntVar(&o.usernsBase, "runc-userns-base", envInt("AIRLOCK_RUNC_USERNS_BASE", defaultUsernsBase), "runc sandboxes run in user namespaces mapping their ids 0-65535 to host ids from this one, so sandbox root is an unprivileged host user (and sudo works inside); 0 for none, sandbox root is then host root (env AIRLOCK_RUNC_USERNS_BASE)")
	f.IntVar(&o.pool, "pool-size", envInt("AIRLOCK_POOL_SIZE", 0), "warm pool: booted sandboxes kept ready per default template; 0 disables it (env AIRLOCK_POOL_SIZE)")
	f.IntVar(&o.limits.MaxSandboxes, "team-max-sandboxes", envInt("AIRLOCK_TEAM_MAX_SANDBOXES", 100), "running sandboxes per team at once; 0 for no limit (env AIRLOCK_TEAM_MAX_SANDBOXES)")
	f.IntVar(&o.limits.MaxMemoryMB, "team-max-memory-mb", envInt("AIRLOCK_TEAM_MAX_MEMORY_MB", 0), "memory of a team's running sandboxes together, in MiB; 0 for no limit (env AIRLOCK_TEAM_MAX_MEMORY_MB)")
	f.Float64Var(&o.limits.CreatesPerSecond, "team-creates-per-second", envFloat("AIRLOCK_TEAM_CREATES_PER_SECOND", 10), "sustained sandbox creates per second per team; 0 for no limit (env AIRLOCK_TEAM_CREATES_PER_SECOND)")
	f.IntVar(&o.limits.CreateBurst, "team-create-burst", envInt("AIRLOCK_TEAM_CREATE_BURST", 20), "creates a team may make at once above that rate (env AIRLOCK_TEAM_CREATE_BURST)")
	f.DurationVar(&o.pausedRetention, "paused-retention", envDuration("AIRLOCK_PAUSED_RETENTION", 30*24*time.Hour), "how long a paused sandbox is kept before it is killed; 0 keeps it (env AIRLOCK_PAUSED_RETENTION)")
	return cmd
}

// serve assembles every subsystem in one visible place and runs until ctx
// is cancelled.
func serve(ctx context.Context, o serveOptions, stdout, stderr io.Writer) error {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if o.selfSigned && (o.domain == "" || o.tlsCert != "") {
		return errors.New("--self-signed needs --domain and replaces --tls-cert/--tls-key")
	}
	if os.Geteuid() != 0 {
		return errors.New("airlock serve must run as root (it manages containers, mounts and network namespaces)")
	}
	self, err := selfBinary()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	agentBin, err := agentBinary(o.dataDir, self)
	if err != nil {
		return fmt.Errorf("install the sandbox agent: %w", err)
	}

	st, err := openStore(ctx, o.store, o.dataDir)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()

	keys, err := st.ListAPIKeys(ctx)
	if err != nil {
		return fmt.Errorf("list API keys: %w", err)
	}
	if len(keys) == 0 {
		// The operator's key: team "default", allowed the /admin routes.
		key, _, err := apikey.Create(ctx, st, apikey.Options{Name: "default", Admin: true})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nYour API key (team default, admin; shown once; create more with `airlock keys create --team NAME`):\n\n    E2B_API_KEY=%s\n\n", key)
	}

	// Build API steps run in sandboxes on a build network of their own.
	runner, closeRunner, err := buildRunner(ctx, o.dataDir, o.usernsBase, serveBuildNet, log)
	if err != nil {
		return fmt.Errorf("template build sandboxes: %w", err)
	}
	defer closeRunner()
	templates := template.NewManager(template.Config{DataDir: o.dataDir, Steps: runner}, st, log)
	// Sandboxes lease the template trees they run on (see template.Lease).
	var _ orchestrator.TemplateLeaser = templates
	if err := templates.EnsureDefaults(ctx, stderr); err != nil {
		return fmt.Errorf("prepare default templates: %w", err)
	}

	subnet, err := netip.ParsePrefix(o.subnet)
	if err != nil {
		return fmt.Errorf("--subnet: %w", err)
	}
	netCfg := network.Config{Bridge: o.bridge, Subnet: subnet, AllowProtected: o.allowPrivateEgress}
	for _, s := range o.protect {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--protect: %w", err)
		}
		netCfg.Protected = append(netCfg.Protected, p)
	}
	net_, err := network.New(ctx, netCfg, log)
	if err != nil {
		return fmt.Errorf("set up network: %w", err)
	}
	go net_.Guard(ctx, 2*time.Second)
	driver, more, closeDrivers, err := runtimeDrivers(ctx, o, log)
	if err != nil {
		return err
	}
	defer closeDrivers()
	orch, err := orchestrator.New(orchestrator.Config{
		Store:       st,
		Driver:      driver,
		MoreDrivers: more,
		Network:     net_,
		Templates:   templates,
		Log:         log,
		EnvdBinary:  agentBin,
		EnvdArgs:    []string{"envd"},
		PoolSize:    o.pool,

		Limits:          tenancy.NewLimiter(o.limits),
		PausedRetention: o.pausedRetention,
	})
	if err != nil {
		return err
	}
	if err := orch.Start(ctx); err != nil {
		return err
	}
	defer orch.Close()

	images := ociimage.New(ociimage.Config{
		Dir: filepath.Join(o.dataDir, "images"), DefaultRegistry: o.registry, Insecure: o.registryInsecure,
		MaxCacheBytes: int64(o.imageCacheMB) << 20, Log: log,
	})
	builds := builder.New(builder.Config{
		Store: st, Trees: templates, DataDir: o.dataDir, Helper: agentBin, Pull: images, Log: log,
	})
	defer builds.Close()
	if err := builds.Recover(ctx); err != nil {
		return fmt.Errorf("recover template builds: %w", err)
	}

	var trust selfsigned.Files
	if o.selfSigned {
		if trust, err = selfsigned.Ensure(filepath.Join(o.dataDir, "tls"), domainHost(o.domain), time.Now()); err != nil {
			return fmt.Errorf("self-signed certificate: %w", err)
		}
		o.tlsCert, o.tlsKey = trust.Cert, trust.Key
	}
	gw := gateway.New(routes{orch}, domainHost(o.domain), log)
	apiSrv := api.New(api.Config{Orchestrator: orch, Store: st, Templates: templates, Builds: builds, Log: log,
		Domain: sandboxDomain(o.domain, o.addr, o.tlsCert != "")})
	hs := &http.Server{
		Handler: gw.Split(apiSrv),
		// Slow clients: headers must arrive within 10 s (the API also bounds
		// body reads per route); idle keep-alive connections close after the
		// SDKs' longest keepalive interval. No whole-request read/write
		// timeouts: envd streams and big transfers are long-lived.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       620 * time.Second,
		// The API and gateway answer 431 above 64 KiB themselves, with E2B's
		// error body; this is the hard stop before any handler runs.
		MaxHeaderBytes: 256 << 10,
	}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	errc := make(chan error, 1)
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
		go func() { errc <- hs.ServeTLS(ln, o.tlsCert, o.tlsKey) }()
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	log.Info("airlock listening", "addr", ln.Addr().String(), "runtimes", strings.Join(orch.Runtimes(), ","), "data_dir", o.dataDir, "tls", o.tlsCert != "")
	base := scheme + "://" + dialable(ln.Addr())
	fmt.Fprintf(stdout, "Airlock is ready on %s — E2B_API_URL=%s E2B_SANDBOX_URL=%s\n", ln.Addr(), base, base)
	fmt.Fprint(stdout, publicURLHelp(o, trust))

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down; sandboxes keep running and are adopted on the next start")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown incomplete", "err", err)
	}
	return nil
}

// envFloat returns the numeric environment variable's value or def.
func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(envOr(name, ""), 64); err == nil {
		return v
	}
	return def
}

// envDuration returns the duration environment variable's value or def.
func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(envOr(name, "")); err == nil {
		return v
	}
	return def
}

// envInt returns the integer environment variable's value or def.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(envOr(name, "")); err == nil {
		return v
	}
	return def
}

func envBool(name string, def bool) bool {
	if v, err := strconv.ParseBool(envOr(name, "")); err == nil {
		return v
	}
	return def
}

// envList splits a comma-separated variable; unset or empty is nil.
func envList(name string) []string {
	if v := envOr(name, ""); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

// defaultUsernsBase is 2^30: far above the ids of host users and of the
// usual subordinate ranges (/etc/subuid starts at 100000), below 2^31,
// where some tools take ids for negative.
const defaultUsernsBase = 1 << 30

// runtimeDrivers opens the default runtime's driver (runsc when installed,
// unless --runtime says otherwise) and every other installed one, which
// templates and create requests may name. The returned func releases what
// they share with no sandbox (runc's /proc view).
func runtimeDrivers(ctx context.Context, o serveOptions, log *slog.Logger) (runtime.Driver, []runtime.Driver, func(), error) {
	var view *procview.View
	var runc runtime.Driver
	closeAll := func() {
		if view == nil {
			return
		}
		// Sandboxes the server leaves running (they are adopted on its
		// next start) keep reading the view: it stays while runc has any.
		inUse := func() bool {
			if runc == nil {
				return false
			}
			lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			infos, err := runc.List(lctx)
			return err != nil || len(infos) > 0
		}
		if err := view.Close(inUse); err != nil {
			log.Warn("stop the runc /proc view", "err", err)
		}
	}
	open := func(name string) (runtime.Driver, error) {
		cfg := oci.Config{
			Runtime:       name,
			StateDir:      filepath.Join(o.dataDir, "sandboxes"), // shared: each bundle says whose it is
			RuntimeRoot:   runtimeRoot(o.dataDir, name),
			DiskReserveMB: o.diskReserveMB,
		}
		if name == oci.RuntimeRunc && o.usernsBase > 0 {
			cfg.UserNS = &oci.IDRange{HostID: uint32(o.usernsBase), Size: 65536}
			// Sandbox root (that host gid) resolves paths under the data
			// dir while runc sets up its mounts; nobody else may.
			if err := os.Chown(o.dataDir, -1, o.usernsBase); err != nil {
				return nil, err
			}
			if err := os.Chmod(o.dataDir, 0o710); err != nil {
				return nil, err
			}
		}
		if name == oci.RuntimeRunc && o.procView {
			if _, err := oci.FindBinary(name); err != nil {
				return nil, err // not installed: no view needed
			}
			v, err := procview.Start(ctx, procview.Config{Dir: filepath.Join(filepath.Dir(runtimeRoot(o.dataDir, name)), "lxcfs")}, log)
			switch {
			case errors.Is(err, procview.ErrNoLXCFS):
				log.Warn("LXCFS is not installed: runc sandboxes see the host's memory and CPUs in /proc/meminfo, free and top (scripts/setup.sh installs it)")
			case err != nil:
				return nil, err
			default:
				view = v
				for _, m := range v.Mounts() {
					cfg.ProcView = append(cfg.ProcView, runtime.Mount{Source: m.Source, Destination: m.Destination, ReadOnly: true})
				}
			}
		}
		d, err := oci.New(cfg, log)
		if err == nil && name == oci.RuntimeRunc {
			runc = d
		}
		return d, err
	}
	def := o.runtime
	var driver runtime.Driver
	var err error
	if def == "" {
		def = oci.RuntimeRunsc
		if driver, err = open(def); errors.Is(err, oci.ErrNoBinary) {
			log.Warn("gVisor (runsc) is not installed: sandboxes run on runc, whose isolation is a shared kernel; install runsc (scripts/setup.sh does) for the secure default", "err", err)
			def = oci.RuntimeRunc
			driver, err = open(def)
		}
	} else {
		driver, err = open(def)
	}
	if err != nil {
		closeAll()
		return nil, nil, nil, fmt.Errorf("set up runtime %s: %w", def, err)
	}
	var more []runtime.Driver
	for _, name := range []string{oci.RuntimeRunsc, oci.RuntimeRunc} {
		if name == def {
			continue
		}
		d, err := open(name)
		if errors.Is(err, oci.ErrNoBinary) {
			log.Info("runtime not installed; sandboxes cannot ask for it", "runtime", name)
			continue
		}
		if err != nil {
			closeAll()
			return nil, nil, nil, fmt.Errorf("set up runtime %s: %w", name, err)
		}
		more = append(more, d)
	}
	log.Info("runtimes", "default", def, "others", len(more), "runc_proc_view", view != nil)
	return driver, more, closeAll, nil
}

// runtimeRoot is the OCI runtime's state dir for this data dir: servers with
// different data dirs on one host must never see (and adopt or reap) each
// other's containers.
func runtimeRoot(dataDir, runtime string) string {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join("/run/airlock", hex.EncodeToString(sum[:6]), runtime)
}

// routes adapts the orchestrator to the gateway's resolver.
type routes struct{ o *orchestrator.Orchestrator }

func (r routes) Route(id string) (gateway.Route, bool) {
	rt, ok := r.o.Route(id)
	return gateway.Route{IP: rt.IP, Running: rt.Running, TrafficToken: rt.TrafficToken, AccessToken: rt.AccessToken, Stopped: rt.Stopped}, ok
}

// selfBinary returns this executable's path after checking it is static,
// because it is bind-mounted into sandboxes whose libc may differ.
func selfBinary() (string, error) {
	p, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	return p, checkStatic(p)
}

// agentBinary is what sandboxes run as envd: the small agent this build
// embeds, installed under the data dir, or else airlock itself.
func agentBinary(dataDir, self string) (string, error) {
	p, err := agent.Install(filepath.Join(dataDir, "bin"))
	if errors.Is(err, agent.ErrNotEmbedded) {
		return self, nil
	}
	if err != nil {
		return "", err
	}
	return p, checkStatic(p)
}

func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("inspect %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; build it with CGO_ENABLED=0 (make build) so it can run inside sandboxes", p)
		}
	}
	return nil
}

func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}
