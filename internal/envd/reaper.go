package envd

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// reaper owns every child of the envd process. envd is PID 1 of the sandbox
// (or a child subreaper in tests), so orphans are re-parented to it and must
// be reaped; a single wait4(-1) loop does that and hands the exit status of
// processes envd started itself to whoever registered for that pid. Nothing
// else in envd may wait for children (no os/exec Wait), or it would race
// with this loop.
type reaper struct {
	once    sync.Once
	mu      sync.Mutex // held while forking and while reaping: a pid is registered before it can be reaped
	waiters map[int]chan syscall.WaitStatus
}

// procReaper is process-wide because wait4(-1) is.
var procReaper = &reaper{waiters: map[int]chan syscall.WaitStatus{}}

func (r *reaper) start() {
	r.once.Do(func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGCHLD)
		go func() {
			for range sigs {
				r.reapAll()
			}
		}()
		// Children may have exited before the handler was installed.
		r.reapAll()
	})
}

// reapAll collects every exited child without blocking. Signals coalesce, so
// one SIGCHLD may stand for many children.
func (r *reaper) reapAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return // ECHILD: no children; 0: none exited yet
		}
		if !ws.Exited() && !ws.Signaled() {
			continue // stop/continue notifications are not exits
		}
		if ch, ok := r.waiters[pid]; ok {
			delete(r.waiters, pid)
			ch <- ws // buffered, never blocks
		}
		// Otherwise an orphan re-parented to us: reaping it was the point.
	}
}

// forkExec starts a child and registers it before the reaper can see it exit.
// The returned channel receives the child's exit status exactly once.
func (r *reaper) forkExec(argv0 string, argv []string, attr *syscall.ProcAttr) (int, <-chan syscall.WaitStatus, error) {
	r.start()
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := syscall.ForkExec(argv0, argv, attr)
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiters[pid] = ch
	return pid, ch, nil
}
