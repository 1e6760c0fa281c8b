package oci

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

const capSysResource = 24

// hostLimits are the values config.json may ask for without the runtime
// failing: lowering oom_score_adj and raising RLIMIT_NOFILE above the
// current hard limit both need CAP_SYS_RESOURCE, which some hosts (this
// one: a container without it) do not grant even to root.
type hostLimits struct {
	sysResource bool
	oomScoreAdj int    // what the init gets
	nofile      uint64 // RLIMIT_NOFILE for the init
}

func detectHostLimits() hostLimits {
	l := hostLimits{sysResource: hasCap(capSysResource), oomScoreAdj: oomScoreAdj, nofile: 1 << 20}
	if l.sysResource {
		return l
	}
	if b, err := os.ReadFile("/proc/self/oom_score_adj"); err == nil {
		if own, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && own > l.oomScoreAdj {
			l.oomScoreAdj = own
		}
	}
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err == nil && rl.Max < l.nofile {
		l.nofile = rl.Max
	}
	return l
}

// hasCap reports whether this process has capability bit n in CapEff.
func hasCap(n uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<n) != 0
		}
	}
	return false
}
