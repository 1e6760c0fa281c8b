package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one `airlock bench` run measured.
type Report struct {
	Started  time.Time       `json:"started"`
	Machine  Machine         `json:"machine"`
	Runtimes []RuntimeReport `json:"runtimes"`
}

// Machine identifies where the figures come from.
type Machine struct {
	Hostname string `json:"hostname"`
	CPU      string `json:"cpu"`
	Cores    int    `json:"cores"`
	MemoryMB int    `json:"memory_mb"`
	Kernel   string `json:"kernel"`
	GoArch   string `json:"goarch"`
}

// RuntimeReport holds the results for one isolation runtime.
type RuntimeReport struct {
	Runtime  string      `json:"runtime"`
	PoolSize int         `json:"pool_size"`
	Results  []Result    `json:"results"`
	Idle     *IdleResult `json:"idle,omitempty"`
	Errors   []string    `json:"errors,omitempty"`
	Notes    []string    `json:"notes,omitempty"` // scenarios skipped and why
}

// Result is one scenario's latency distribution and its baselines.
type Result struct {
	Scenario   string             `json:"scenario"`
	Latency    Summary            `json:"latency"`
	Throughput float64            `json:"throughput_per_s,omitempty"` // operations per second, concurrent scenarios
	Baselines  []Baseline         `json:"baselines,omitempty"`
	Phases     map[string]Summary `json:"phases,omitempty"` // server-side create breakdown
}

// Baseline is a floor measured in the same run; Ratio is scenario p50 / baseline p50.
type Baseline struct {
	Name    string  `json:"name"`
	Latency Summary `json:"latency"`
	Ratio   float64 `json:"ratio_p50"`
}

// IdleResult is the idle-density scenario.
type IdleResult struct {
	Created       int           `json:"created"`
	StopReason    string        `json:"stop_reason"`
	FirstP50      time.Duration `json:"first_create_p50_ns"` // create→first command, first sandboxes
	LastP50       time.Duration `json:"last_create_p50_ns"`  // the same, last sandboxes
	PSSPerBoxKB   int64         `json:"pss_per_sandbox_kb"`  // processes in the sandbox's cgroup
	RSSPerBoxKB   int64         `json:"rss_per_sandbox_kb"`
	CgroupPerBox  int64         `json:"cgroup_memory_per_sandbox_kb"` // memory.current
	HostPerBoxKB  int64         `json:"host_memory_per_sandbox_kb"`   // MemAvailable drop / sandboxes
	MemAvailAtEnd int64         `json:"mem_available_at_end_mb"`
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the human-readable tables.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "Machine: %s, %d cores, %d MiB RAM, kernel %s\n", r.Machine.CPU, r.Machine.Cores, r.Machine.MemoryMB, r.Machine.Kernel)
	for _, rt := range r.Runtimes {
		fmt.Fprintf(w, "\nRuntime %s (pool size %d)\n", rt.Runtime, rt.PoolSize)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "scenario\tn\tmin\tp50\tp90\tp99\tops/s\tvs baseline (p50 ratio)\t")
		for _, res := range rt.Results {
			tput := ""
			if res.Throughput > 0 {
				tput = fmt.Sprintf("%.1f", res.Throughput)
			}
			var bl []string
			for _, b := range res.Baselines {
				bl = append(bl, fmt.Sprintf("%.1f× %s (%s)", b.Ratio, b.Name, fmtDur(b.Latency.P50)))
			}
			s := res.Latency
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", res.Scenario, s.N, fmtDur(s.Min), fmtDur(s.P50), fmtDur(s.P90), fmtDur(s.P99), tput, strings.Join(bl, "; "))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		for _, res := range rt.Results {
			if len(res.Phases) == 0 {
				continue
			}
			fmt.Fprintf(w, "  server phases of %s (p50): %s\n", res.Scenario, fmtPhases(res.Phases))
		}
		if id := rt.Idle; id != nil {
			fmt.Fprintf(w, "  idle: %d sandboxes (%s); create→cmd p50 first %s, last %s; per sandbox: PSS %s, RSS %s, cgroup %s, host MemAvailable drop %s; MemAvailable at end %d MiB\n",
				id.Created, id.StopReason, fmtDur(id.FirstP50), fmtDur(id.LastP50),
				fmtKB(id.PSSPerBoxKB), fmtKB(id.RSSPerBoxKB), fmtKB(id.CgroupPerBox), fmtKB(id.HostPerBoxKB), id.MemAvailAtEnd)
		}
		for _, n := range rt.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		for _, e := range rt.Errors {
			fmt.Fprintf(w, "  error: %s\n", e)
		}
	}
	return nil
}

// phaseOrder lists the create phases in the order they happen.
var phaseOrder = []string{"api", "resolve", "store", "pool", "netns", "rootfs", "runtime", "envd_ready", "envd_init", "record", "total"}

func fmtPhases(p map[string]Summary) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	rank := func(k string) int {
		for i, o := range phaseOrder {
			if o == k {
				return i
			}
		}
		return len(phaseOrder)
	}
	sort.Slice(keys, func(i, j int) bool {
		if rank(keys[i]) != rank(keys[j]) {
			return rank(keys[i]) < rank(keys[j])
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + fmtDur(p[k].P50)
	}
	return strings.Join(parts, " ")
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

func fmtKB(kb int64) string {
	if kb <= 0 {
		return "-"
	}
	if kb < 1024 {
		return fmt.Sprintf("%d KiB", kb)
	}
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
}

// DescribeMachine reads the host's CPU, memory and kernel.
func DescribeMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GoArch: runtime.GOARCH}
	m.Hostname, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := meminfo("MemTotal"); err == nil {
		m.MemoryMB = int(kb / 1024)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}
