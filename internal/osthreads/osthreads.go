// Package osthreads starts spare OS threads for a Go process that must
// outlive its sandbox's exhausted pids limit: the Go runtime aborts when it
// cannot create a thread it needs (a fork bomb in the sandbox takes every
// pid), but it keeps idle threads and reuses them, so threads made early
// are there when no new one can be.
package osthreads

import (
	"os"
	"sync"
	"syscall"
	"time"
)

// Reserve makes the runtime hold at least n OS threads, by blocking n
// goroutines in a syscall at once; the threads stay idle afterwards.
func Reserve(n int) {
	var wg sync.WaitGroup
	ts := syscall.NsecToTimespec(int64(50 * time.Millisecond))
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A blocking syscall holds its thread; the runtime starts
			// another for the goroutines that still run.
			_ = syscall.Nanosleep(&ts, nil)
		}()
	}
	wg.Wait()
}

// Count is how many threads the process has (0 if unknown).
func Count() int {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0
	}
	return len(ents)
}
