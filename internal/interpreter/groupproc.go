package interpreter

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// groupProc is a kernel process that leads its own process group (Node,
// Bash): it knows when the process is gone and signals the whole group.
type groupProc struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed once the process exited and its output is drained
}

// watch waits for the process, lets onExit record how it ended, kills what
// is left of its group (which also closes the pipes those processes
// inherited, so the readers reach EOF), waits up to drain for the readers,
// closes files and then closes exited.
func (g *groupProc) watch(readers *sync.WaitGroup, drain time.Duration, onExit func(*os.ProcessState), files ...io.Closer) {
	_ = g.cmd.Wait()
	onExit(g.cmd.ProcessState)
	_ = syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL)
	kernelWaitTimeout(readers, drain)
	for _, f := range files {
		f.Close()
	}
	close(g.exited)
}

func (g *groupProc) hasExited() bool {
	select {
	case <-g.exited:
		return true
	default:
		return false
	}
}

func (g *groupProc) signalGroup(sig syscall.Signal) {
	_ = syscall.Kill(-g.cmd.Process.Pid, sig)
}

// killGroup SIGKILLs the process group and waits until all of it is gone.
func (g *groupProc) killGroup() {
	g.signalGroup(syscall.SIGKILL)
	<-g.exited
	kernelWaitGroupGone(g.cmd.Process.Pid)
}

// kernelEnv is the server's environment with extra variables on top.
func kernelEnv(extra map[string]string) []string {
	env := os.Environ()
	for name, value := range extra {
		env = append(env, name+"="+value)
	}
	return env
}

// kernelGroupMembers lists the live processes whose process group is pgid.
func kernelGroupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp ...
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(stat[i+1:]))
		if len(fields) < 3 || fields[0] == "Z" {
			continue
		}
		if g, _ := strconv.Atoi(fields[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

func kernelWaitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// kernelWaitGroupGone waits briefly until every process of group pgid has
// finished exiting (SIGKILLed processes linger for a moment).
func kernelWaitGroupGone(pgid int) {
	deadline := time.Now().Add(2 * time.Second)
	for len(kernelGroupMembers(pgid)) > 0 && time.Now().Before(deadline) {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		time.Sleep(10 * time.Millisecond)
	}
}
