package bench

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// Scenario names as they appear in reports.
const (
	ScenarioCreate     = "create→first cmd"
	ScenarioCreatePool = "create→first cmd (pool hit)"
	ScenarioExec       = "cmd round-trip (true)"
	ScenarioKill       = "kill"
)

// poolPhase is present in the server's timing header when a create was
// served from the warm pool.
const poolPhase = "pool_claim"

// sandboxTimeout is generous: the benchmark kills what it creates.
const sandboxTimeout = time.Hour

type runner struct {
	o       Options
	rt      string
	c       *sandbox.Client
	dataDir string
	rr      *RuntimeReport
	rootfs  string
	lb      *loopback

	mu   sync.Mutex
	live map[string]bool // created and not yet killed
}

func (r *runner) prepare(ctx context.Context) error {
	r.live = map[string]bool{}
	lb, err := newLoopback()
	if err != nil {
		return err
	}
	r.lb = lb
	root, err := r.templateRootfs(ctx)
	if err != nil {
		r.rr.Errors = append(r.rr.Errors, "baselines: "+err.Error())
	}
	r.rootfs = root
	return nil
}

func (r *runner) cleanup() {
	if r.lb != nil {
		r.lb.close()
	}
	r.mu.Lock()
	ids := make([]string, 0, len(r.live))
	for id := range r.live {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	r.killAll(context.Background(), ids)
}

// createAndRun is the unit of the create scenarios: a new sandbox whose
// first command (`echo hi` through envd) has completed.
func (r *runner) createAndRun(ctx context.Context) (*sandbox.Sandbox, time.Duration, error) {
	t0 := time.Now()
	sb, err := r.create(ctx, r.o.Template)
	if err != nil {
		return nil, 0, err
	}
	out, err := run(ctx, sb, "/bin/echo", "hi")
	d := time.Since(t0)
	if err != nil {
		return sb, d, err
	}
	if strings.TrimSpace(out) != "hi" {
		return sb, d, fmt.Errorf("echo hi printed %q", out)
	}
	return sb, d, nil
}

func (r *runner) kill(ctx context.Context, id string) error {
	_, err := r.c.Kill(ctx, id)
	r.mu.Lock()
	delete(r.live, id)
	r.mu.Unlock()
	return err
}

func (r *runner) killAll(ctx context.Context, ids []string) {
	work := make(chan string)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				_ = r.kill(ctx, id)
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
}

// createSerial measures create→first command one at a time, then kill,
// against bare runtime and unshare+chroot runs of the same rootfs.
func (r *runner) createSerial(ctx context.Context) error {
	var miss, hit, kills []time.Duration
	phases := map[string][]time.Duration{}
	hitPhases := map[string][]time.Duration{}
	for i := 0; i < r.o.Warmup+r.o.N; i++ {
		if r.o.Interval > 0 {
			time.Sleep(r.o.Interval) // lets a warm pool refill
		}
		sb, d, err := r.createAndRun(ctx)
		if err != nil {
			if sb != nil {
				_ = r.kill(ctx, sb.ID)
			}
			return err
		}
		t0 := time.Now()
		if err := r.kill(ctx, sb.ID); err != nil {
			return err
		}
		kd := time.Since(t0)
		if i < r.o.Warmup {
			continue
		}
		kills = append(kills, kd)
		target, tp := &miss, phases
		if _, ok := sb.CreateTiming[poolPhase]; ok {
			target, tp = &hit, hitPhases
		}
		*target = append(*target, d)
		for k, v := range sb.CreateTiming {
			tp[k] = append(tp[k], v)
		}
	}
	baselines := r.createBaselines(ctx)
	if len(miss) > 0 {
		r.add(Result{Scenario: ScenarioCreate, Latency: Summarize(miss), Phases: summarizeAll(phases)}, baselines)
	}
	if len(hit) > 0 {
		r.add(Result{Scenario: ScenarioCreatePool, Latency: Summarize(hit), Phases: summarizeAll(hitPhases)}, baselines)
	}
	r.add(Result{Scenario: ScenarioKill, Latency: Summarize(kills)}, nil)
	return nil
}

type namedSamples struct {
	name    string
	samples []time.Duration
}

func (r *runner) createBaselines(ctx context.Context) []namedSamples {
	if r.rootfs == "" {
		return nil
	}
	var out []namedSamples
	bare, err := newBareRuntime(r.rt, r.rootfs)
	if err == nil {
		defer bare.close()
		s, err := timeIt(ctx, r.o.Warmup, r.o.N, bare.once)
		if err == nil {
			out = append(out, namedSamples{"bare " + r.rt + " run", s})
		} else {
			r.rr.Errors = append(r.rr.Errors, "baseline bare "+r.rt+": "+err.Error())
		}
	} else {
		r.rr.Errors = append(r.rr.Errors, err.Error())
	}
	s, err := timeIt(ctx, r.o.Warmup, r.o.N, func(ctx context.Context) error { return unshareChroot(ctx, r.rootfs) })
	if err == nil {
		out = append(out, namedSamples{"unshare+chroot", s})
	} else {
		r.rr.Errors = append(r.rr.Errors, "baseline unshare+chroot: "+err.Error())
	}
	return out
}

// add records a result with its baselines' ratios.
func (r *runner) add(res Result, baselines []namedSamples) {
	for _, b := range baselines {
		s := Summarize(b.samples)
		res.Baselines = append(res.Baselines, Baseline{Name: b.name, Latency: s, Ratio: ratio(res.Latency.P50, s.P50)})
	}
	r.rr.Results = append(r.rr.Results, res)
}

func summarizeAll(m map[string][]time.Duration) map[string]Summary {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]Summary, len(m))
	for k, v := range m {
		out[k] = Summarize(v)
	}
	return out
}

// createConcurrent runs create→first command from `level` workers at once
// and reports latency and sustained creates per second.
func (r *runner) createConcurrent(ctx context.Context) error {
	for _, level := range r.o.Concurrency {
		total := r.o.ConcTotal
		if total <= 0 {
			total = 2 * level
		}
		if total < level {
			total = level
		}
		var (
			mu      sync.Mutex
			samples []time.Duration
			ids     []string
			errs    []error
		)
		next := make(chan struct{}, total)
		for i := 0; i < total; i++ {
			next <- struct{}{}
		}
		close(next)
		start := time.Now()
		var wg sync.WaitGroup
		for w := 0; w < level; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range next {
					sb, d, err := r.createAndRun(ctx)
					mu.Lock()
					if sb != nil {
						ids = append(ids, sb.ID)
					}
					if err != nil {
						errs = append(errs, err)
					} else {
						samples = append(samples, d)
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		wall := time.Since(start)
		r.killAll(ctx, ids)
		res := Result{Scenario: fmt.Sprintf("create→first cmd ×%d concurrent", level), Latency: Summarize(samples)}
		if wall > 0 {
			res.Throughput = float64(len(samples)) / wall.Seconds()
		}
		r.add(res, nil)
		if len(errs) > 0 {
			return fmt.Errorf("%d of %d concurrent creates failed, first: %w", len(errs), total, errs[0])
		}
	}
	return nil
}

// execRoundTrip measures `true` in a running sandbox against sh -c on the
// host, a bare loopback HTTP round-trip, and a loopback HTTP request that
// runs /bin/true (the same work without isolation or a gateway hop).
func (r *runner) execRoundTrip(ctx context.Context) error {
	sb, _, err := r.createAndRun(ctx)
	if sb != nil {
		defer r.kill(context.WithoutCancel(ctx), sb.ID)
	}
	if err != nil {
		return err
	}
	s, err := timeIt(ctx, r.o.Warmup*5, r.o.ExecN, func(ctx context.Context) error {
		_, err := run(ctx, sb, "/bin/true")
		return err
	})
	if err != nil {
		return err
	}
	var bl []namedSamples
	if hs, err := timeIt(ctx, r.o.Warmup*5, r.o.ExecN, hostShell); err == nil {
		bl = append(bl, namedSamples{"sh -c true on host", hs})
	}
	if ls, err := timeIt(ctx, r.o.Warmup*5, r.o.ExecN, r.lb.roundTrip); err == nil {
		bl = append(bl, namedSamples{"loopback HTTP", ls})
	}
	if ls, err := timeIt(ctx, r.o.Warmup*5, r.o.ExecN, r.lb.execRoundTrip); err == nil {
		bl = append(bl, namedSamples{"loopback HTTP running /bin/true", ls})
	}
	r.add(Result{Scenario: ScenarioExec, Latency: Summarize(s)}, bl)
	return nil
}

// files measures write+read of each size against a local disk copy and a
// loopback HTTP transfer.
func (r *runner) files(ctx context.Context) error {
	sb, _, err := r.createAndRun(ctx)
	if sb != nil {
		defer r.kill(context.WithoutCancel(ctx), sb.ID)
	}
	if err != nil {
		return err
	}
	diskDir, err := os.MkdirTemp(r.dataDir, "bench-disk-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(diskDir)
	for _, size := range r.o.FileSizes {
		data := make([]byte, size)
		_, _ = rand.Read(data)
		n := r.o.N
		switch {
		case size >= 100<<20:
			n = max(2, n/10)
		case size >= 10<<20:
			n = max(3, n/4)
		}
		path := fmt.Sprintf("/tmp/airlock-bench-%d", size)
		s, err := timeIt(ctx, 1, n, func(ctx context.Context) error {
			if _, err := sb.Files.Write(ctx, path, data, nil); err != nil {
				return err
			}
			got, err := readSize(ctx, sb, path)
			if err != nil {
				return err
			}
			if got != size {
				return fmt.Errorf("read back %d bytes, wrote %d", got, size)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("file %s: %w", fmtSize(size), err)
		}
		var bl []namedSamples
		if ds, err := timeIt(ctx, 1, n, func(context.Context) error { return diskCopy(diskDir, data) }); err == nil {
			bl = append(bl, namedSamples{"local disk", ds})
		}
		if ls, err := timeIt(ctx, 1, n, func(ctx context.Context) error { return r.lb.transfer(ctx, data) }); err == nil {
			bl = append(bl, namedSamples{"loopback HTTP", ls})
		}
		r.add(Result{Scenario: "file write+read " + fmtSize(size), Latency: Summarize(s)}, bl)
		// Free the sandbox's disk before the next size.
		_, _ = run(ctx, sb, "/bin/rm", "-f", path)
	}
	return nil
}

func fmtSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KB", n>>10)
	default:
		return fmt.Sprintf("%d B", n)
	}
}

// idleWindow is how many creates the idle scenario's medians cover.
const idleWindow = 10

// idle creates sandboxes and leaves them idle until a create fails, the
// create→first command median slows to twice the first one, or IdleMax.
func (r *runner) idle(ctx context.Context) error {
	if r.o.IdleMax <= 0 {
		return nil
	}
	availBefore, _ := meminfo("MemAvailable")
	res := &IdleResult{StopReason: fmt.Sprintf("reached --idle-max %d", r.o.IdleMax)}
	var ids []string
	var lat []time.Duration
	defer func() { r.killAll(context.WithoutCancel(ctx), ids) }()
	for len(ids) < r.o.IdleMax {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		sb, d, err := r.createAndRun(ctx)
		if sb != nil {
			ids = append(ids, sb.ID)
		}
		if err != nil {
			res.StopReason = "create failed: " + err.Error()
			break
		}
		lat = append(lat, d)
		if len(lat) == idleWindow {
			res.FirstP50 = median(lat)
		}
		// Judged over three windows, so a burst of load from elsewhere on
		// the host does not end the scenario.
		if len(lat) >= 4*idleWindow {
			res.LastP50 = median(lat[len(lat)-3*idleWindow:])
			if res.LastP50 > 2*res.FirstP50 {
				res.StopReason = "create→first cmd slowed 2×"
				break
			}
		}
		if len(ids)%100 == 0 {
			fmt.Fprintf(r.o.Progress, "[%s] idle: %d sandboxes\n", r.rt, len(ids))
		}
	}
	res.Created = len(lat)
	if res.LastP50 == 0 && len(lat) > 0 {
		res.LastP50 = median(lat[max(0, len(lat)-idleWindow):])
	}
	if res.FirstP50 == 0 {
		res.FirstP50 = median(lat)
	}
	// Let envd and the runtime settle into their idle footprint.
	time.Sleep(2 * time.Second)
	if r.dataDir != "" {
		cgs := sandboxCgroups(r.dataDir)
		if n := int64(len(cgs)); n > 0 {
			pss, rss, cur := cgroupMemory(cgs)
			res.PSSPerBoxKB, res.RSSPerBoxKB, res.CgroupPerBox = pss/n, rss/n, cur/n
		}
	}
	availAfter, _ := meminfo("MemAvailable")
	if res.Created > 0 && availBefore > availAfter {
		res.HostPerBoxKB = (availBefore - availAfter) / int64(res.Created)
	}
	res.MemAvailAtEnd = availAfter / 1024
	r.rr.Idle = res
	if res.Created == 0 {
		return errors.New("no idle sandbox could be created")
	}
	return nil
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
