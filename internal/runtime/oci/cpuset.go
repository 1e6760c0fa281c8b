package oci

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuSet is the host CPUs the server may run on, in ascending order.
type cpuSet []int

// hostCPUs reads the server's own affinity: sandboxes get CPUs from it,
// so a server confined to some CPUs confines its sandboxes there too.
func hostCPUs() (cpuSet, error) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		return nil, fmt.Errorf("oci: sched_getaffinity: %w", err)
	}
	var cpus cpuSet
	for i := 0; i < len(mask)*64; i++ {
		if mask.IsSet(i) {
			cpus = append(cpus, i)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("oci: the server may run on no CPU")
	}
	return cpus, nil
}

// pick chooses n of the CPUs for sandbox id ("" when n covers them all).
// The quota alone bounds CPU time, but nproc, os.cpu_count() and thread
// pools count the CPUs a process may run on: a cpuset makes them agree
// with the sandbox's size. The choice is a window at a position hashed
// from the id, so it needs no state to survive a server restart and
// spreads sandboxes evenly on average.
func (c cpuSet) pick(id string, n int) string {
	if n <= 0 || n >= len(c) {
		return ""
	}
	h := fnv.New32a()
	h.Write([]byte(id))
	start := int(h.Sum32() % uint32(len(c)))
	chosen := make([]int, 0, n)
	for i := range n {
		chosen = append(chosen, c[(start+i)%len(c)])
	}
	slices.Sort(chosen)
	parts := make([]string, len(chosen))
	for i, cpu := range chosen {
		parts[i] = strconv.Itoa(cpu)
	}
	return strings.Join(parts, ",")
}
