package orchestrator

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/airlock-sandbox/airlock/internal/envdclient"
	"github.com/airlock-sandbox/airlock/internal/store"
	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// StartCmdTag tags the template's start command in envd's process list.
const StartCmdTag = envdclient.StartCmdTag

// InterpreterPort is where code-interpreter-v1's start command serves.
const InterpreterPort = wire.InterpreterPort

// defaultStartCmdPorts: Airlock's own code interpreter, started from the
// bind-mounted binary, serves the E2B code-interpreter port.
func defaultStartCmdPorts() map[string]int {
	return map[string]int{envdMountPath + " interpreter": InterpreterPort}
}

// superviseCmd wraps a server's start command in a shell loop that starts
// it again a second after it exits (a crash, an OOM kill, a user's pkill),
// so the code interpreter does not stay down for the sandbox's life.
// Signalling the start command's process (its tag) still ends it: envd
// signals the whole process group, the loop included.
func superviseCmd(cmd string) string {
	return "while :; do (" + cmd + "); echo \"airlock: start command exited with status $?; restarting in 1s\" >&2; sleep 1; done"
}

// runStartCmd starts the template's start command and, if it is one known
// to serve a port (Config.StartCmdPorts), keeps it running (superviseCmd)
// and waits for that port to answer. A
// server that never comes up leaves a sandbox whose commands and files
// still work, so that is logged, not fatal; a failed spawn is. An empty
// cmd does nothing.
func (o *Orchestrator) runStartCmd(ctx context.Context, sb *store.Sandbox, ip netip.Addr, cmd string) error {
	if cmd == "" {
		return nil
	}
	port, server := o.cfg.StartCmdPorts[cmd]
	server = server && port > 0
	run := cmd
	if server {
		run = superviseCmd(cmd)
	}
	pid, err := o.envd.StartCmd(ctx, ip, sb.AccessToken, o.cfg.DefaultUser, run)
	if err != nil {
		return fmt.Errorf("start command %q: %w", cmd, err)
	}
	o.log.Debug("start command running", "sandbox", sb.ID, "pid", pid)
	if !server {
		return nil
	}
	start := time.Now()
	if err := o.envd.WaitPort(ctx, ip, port, o.cfg.ReadyTimeout); err != nil {
		o.log.Warn("start command did not answer", "sandbox", sb.ID, "port", port, "err", err)
		o.event(ctx, sb.ID, "warn", fmt.Sprintf("start command did not answer on port %d: %v", port, err))
		return nil
	}
	o.log.Debug("start command answering", "sandbox", sb.ID, "port", port, "after", time.Since(start))
	return nil
}
