package envd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/envdapi"
)

// cpuSampleWindow is how long /metrics watches /proc/stat for CPU usage.
const cpuSampleWindow = 100 * time.Millisecond

// cgroupRoot is the sandbox's own cgroup (envd runs in a cgroup namespace).
const cgroupRoot = "/sys/fs/cgroup"

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	m, err := collectMetrics()
	if err != nil {
		s.log.Warn("collect metrics", "err", err)
		writeJSONError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, m)
}

// collectMetrics samples the sandbox for GET /metrics.
func collectMetrics() (*envdapi.Metrics, error) {
	pct, err := cpuUsedPct(cpuSampleWindow)
	if err != nil {
		return nil, err
	}
	mem, err := memory()
	if err != nil {
		return nil, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/", &st); err != nil {
		return nil, fmt.Errorf("statfs /: %w", err)
	}
	bs := uint64(st.Bsize)
	return &envdapi.Metrics{
		Ts:          time.Now().Unix(),
		CpuCount:    cpuCount(),
		CpuUsedPct:  pct,
		MemTotal:    int64(mem.total),
		MemUsed:     int64(mem.used),
		MemCache:    int64(mem.cache),
		MemTotalMib: int64(mem.total >> 20),
		MemUsedMib:  int64(mem.used >> 20),
		DiskTotal:   int64(st.Blocks * bs),
		DiskUsed:    int64((st.Blocks - st.Bfree) * bs),
	}, nil
}

// memUsage is memory in bytes: the limit, what is used, and the page cache.
type memUsage struct{ total, used, cache uint64 }

// cpuCount is the CPUs usable by the sandbox: the affinity mask, capped by
// a cgroup CPU quota when one is set.
func cpuCount() int {
	n := runtime.NumCPU()
	b, err := os.ReadFile(cgroupRoot + "/cpu.max")
	if err != nil {
		return n
	}
	f := strings.Fields(string(b))
	if len(f) != 2 || f[0] == "max" {
		return n
	}
	quota, err1 := strconv.ParseFloat(f[0], 64)
	period, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || period <= 0 {
		return n
	}
	return max(1, min(n, int(math.Ceil(quota/period))))
}

// cpuTimes returns busy and total jiffies from the aggregate /proc/stat line.
func cpuTimes() (busy, total uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, fmt.Errorf("read /proc/stat: %w", err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("unexpected /proc/stat format")
	}
	var idle uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("parse /proc/stat: %w", err)
		}
		if i >= 8 { // guest time is already counted in user/nice
			break
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return total - idle, total, nil
}

func cpuUsedPct(window time.Duration) (float64, error) {
	b1, t1, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	time.Sleep(window)
	b2, t2, err := cpuTimes()
	if err != nil {
		return 0, err
	}
	if t2 <= t1 {
		return 0, nil
	}
	pct := float64(b2-b1) / float64(t2-t1) * 100
	return math.Round(pct*100) / 100, nil
}

// memory prefers the sandbox cgroup's limit and usage; without a limit
// (e.g. on a host) it falls back to /proc/meminfo.
func memory() (memUsage, error) {
	var m memUsage
	if limit, ok := readCgroupUint("memory.max"); ok {
		if cur, ok := readCgroupUint("memory.current"); ok {
			stat := readKeyValues(cgroupRoot+"/memory.stat", 1)
			file := stat["file"]
			m.total, m.cache = limit, file
			if cur > file {
				m.used = cur - file
			}
			return m, nil
		}
	}
	info := readKeyValues("/proc/meminfo", 1024) // values are in kB
	total, ok := info["MemTotal"]
	if !ok {
		return m, errors.New("no MemTotal in /proc/meminfo")
	}
	m.total, m.cache = total, info["Cached"]+info["SReclaimable"]
	if avail, ok := info["MemAvailable"]; ok && avail <= total {
		m.used = total - avail
	}
	return m, nil
}

func readCgroupUint(name string) (uint64, bool) {
	b, err := os.ReadFile(cgroupRoot + "/" + name)
	if err != nil {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil // "max" means no limit
}

// readKeyValues parses "key value" or "key: value kB" lines, scaling values.
func readKeyValues(path string, scale uint64) map[string]uint64 {
	out := map[string]uint64{}
	f, err := os.Open(path)
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		if n, err := strconv.ParseUint(fields[1], 10, 64); err == nil {
			out[strings.TrimSuffix(fields[0], ":")] = n * scale
		}
	}
	return out
}
