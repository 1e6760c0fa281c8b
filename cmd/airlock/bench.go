package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-sandbox/airlock/internal/bench"
)

type benchOptions struct {
	url, apiKey string
	runtimes    []string
	dataDir     string
	addr        string
	bridge      string
	subnet      string
	poolSize    int
	rootfs      string
	template    string
	n, warmup   int
	execN       int
	concurrency []int
	concTotal   int
	idleMax     int
	interval    time.Duration
	quick       bool
	json        bool
	noCode      bool
	codeTpl     string
	codeN       int
	codeColdN   int
}

func newBenchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure sandbox create, command, file and kill latency against same-machine baselines",
		Long: `Benchmark Airlock end to end through its wire protocol. Without --url it
starts its own airlock serve (one per runtime, on --addr/--data-dir/--bridge/
--subnet, which must not collide with another server on this host). Every
scenario runs after a warm-up and is compared with a baseline measured in the
same run: bare runc/runsc run and unshare+chroot of the same template rootfs,
sh -c on the host, a loopback HTTP round-trip or transfer, a local disk copy.
The code interpreter scenarios (runCode('1+1') round-trip, create→first
runCode) compare with an ipykernel on the host, warm and cold started; they
are skipped with --no-code or when the server's code-interpreter-v1 is not
ready.`,
		Example: `  airlock bench --quick
  airlock bench --runtime runc --pool-size 4 --json > bench.json
  airlock bench --url http://127.0.0.1:3000 --api-key $E2B_API_KEY --runtime runc --data-dir /var/lib/airlock`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runBench(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "", "benchmark a running server instead of starting one")
	f.StringVar(&o.apiKey, "api-key", os.Getenv("E2B_API_KEY"), "API key for --url (env E2B_API_KEY)")
	f.StringSliceVar(&o.runtimes, "runtime", []string{"runc", "runsc"}, "runtimes to benchmark (with --url: the server's runtime)")
	f.StringVar(&o.dataDir, "data-dir", "/var/lib/airlock-bench", "data dir of the server (template rootfs for baselines, cgroups for memory)")
	f.StringVar(&o.addr, "addr", "127.0.0.1:3102", "listen address of the server bench starts")
	f.StringVar(&o.bridge, "bridge", "airbench0", "bridge of the server bench starts")
	f.StringVar(&o.subnet, "subnet", "10.221.0.0/16", "subnet of the server bench starts")
	f.IntVar(&o.poolSize, "pool-size", 0, "warm pool size of the server bench starts")
	f.StringVar(&o.rootfs, "rootfs", "", "rootfs for the baselines (default: the template's, from --data-dir)")
	f.StringVar(&o.template, "template", "base", "template to create sandboxes from")
	f.IntVarP(&o.n, "n", "n", 0, "measured iterations per scenario (default 50, --quick 10)")
	f.IntVar(&o.warmup, "warmup", 0, "unmeasured warm-up iterations (default 3, --quick 2)")
	f.IntVar(&o.execN, "exec-n", 0, "command round-trips (default 500, --quick 100)")
	f.IntSliceVar(&o.concurrency, "concurrency", nil, "concurrent create levels (default 10,50; --quick 10)")
	f.IntVar(&o.concTotal, "concurrency-total", 0, "sandboxes per concurrency level (default 2× the level)")
	f.IntVar(&o.idleMax, "idle-max", -1, "idle sandboxes to try for the density scenario; 0 skips it (default 1000, --quick 20)")
	f.DurationVar(&o.interval, "interval", -1, "pause before each serial create (default 0; 500ms with --pool-size, so the pool refills)")
	f.BoolVar(&o.noCode, "no-code", false, "skip the code interpreter scenarios")
	f.StringVar(&o.codeTpl, "code-template", "code-interpreter-v1", "template of the code interpreter scenarios (skipped when not ready)")
	f.IntVar(&o.codeN, "code-n", 0, "runCode round-trips (default 200, --quick 50)")
	f.IntVar(&o.codeColdN, "code-cold-n", 0, "create→first runCode iterations, and host kernel cold starts (default 20, --quick 5)")
	f.BoolVar(&o.quick, "quick", false, "small sizes for CI (a few minutes)")
	f.BoolVar(&o.json, "json", false, "print JSON instead of tables")
	return cmd
}

func runBench(cmd *cobra.Command, o benchOptions) error {
	if os.Geteuid() != 0 {
		return errors.New("airlock bench must run as root (baselines run runc and unshare; it may start airlock serve)")
	}
	opts := bench.Options{
		URL:          o.url,
		APIKey:       o.apiKey,
		Runtimes:     o.runtimes,
		DataDir:      o.dataDir,
		Rootfs:       o.rootfs,
		Template:     o.template,
		N:            o.n,
		Warmup:       o.warmup,
		ExecN:        o.execN,
		Concurrency:  o.concurrency,
		ConcTotal:    o.concTotal,
		IdleMax:      o.idleMax,
		Interval:     o.interval,
		NoCode:       o.noCode,
		CodeTemplate: o.codeTpl,
		CodeN:        o.codeN,
		CodeColdN:    o.codeColdN,
		Progress:     cmd.ErrOrStderr(),
		Server: bench.ServerConfig{
			Addr: o.addr, DataDir: o.dataDir, Bridge: o.bridge, Subnet: o.subnet, PoolSize: o.poolSize,
		},
	}
	if o.idleMax < 0 {
		opts.IdleMax = 1000
		if o.quick {
			opts.IdleMax = 20
		}
	}
	if o.interval < 0 {
		opts.Interval = 0
		if o.poolSize > 0 {
			opts.Interval = 500 * time.Millisecond
		}
	}
	if o.url != "" && o.apiKey == "" {
		return errors.New("--url needs --api-key (or E2B_API_KEY)")
	}
	if o.url != "" && len(o.runtimes) != 1 {
		return errors.New("with --url, name the server's one runtime with --runtime")
	}
	opts.Defaults(o.quick)
	rep, err := bench.Run(cmd.Context(), opts)
	if rep != nil {
		out := cmd.OutOrStdout()
		var werr error
		if o.json {
			werr = rep.WriteJSON(out)
		} else {
			werr = rep.WriteTable(out)
		}
		if werr != nil {
			return werr
		}
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
