package orchestrator

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/envdclient"
	"github.com/airlock-sandbox/airlock/internal/errdefs"
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
// and waits for that port to answer. A server of Airlock's own that never
// comes up leaves a sandbox whose commands and files still work, so that
// is logged, not fatal; a failed spawn is, and so is a template's ready
// command (E2B's readyCmd) that does not succeed in time: the sandbox is
// not what its template promises. A template without a start command
// does nothing.
func (o *Orchestrator) runStartCmd(ctx context.Context, sb *store.Sandbox, ip netip.Addr, tpl *store.Template) error {
	cmd := tpl.StartCmd
	if cmd == "" && tpl.ReadyCmd == "" {
		return nil
	}
	user := o.userOf(tpl)
	port, server := o.cfg.StartCmdPorts[cmd]
	server = server && port > 0
	if cmd != "" {
		run := cmd
		if server {
			run = superviseCmd(cmd)
		}
		if tpl.Workdir != "" {
			run = "cd " + shellQuote(tpl.Workdir) + " && " + run
		}
		pid, err := o.envd.StartCmd(ctx, ip, sb.AccessToken, user, run)
		if err != nil {
			return fmt.Errorf("start command %q: %w", cmd, err)
		}
		o.log.Debug("start command running", "sandbox", sb.ID, "pid", pid)
	}
	if tpl.ReadyCmd != "" {
		return o.waitReady(ctx, sb, ip, user, tpl)
	}
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

// readyInterval is how often a template's ready command is tried.
const readyInterval = 200 * time.Millisecond

// waitReady runs the template's ready command until it exits 0.
func (o *Orchestrator) waitReady(ctx context.Context, sb *store.Sandbox, ip netip.Addr, user string, tpl *store.Template) error {
	ctx, cancel := context.WithTimeout(ctx, o.cfg.ReadyTimeout)
	defer cancel()
	start := time.Now()
	last := -1
	for {
		code, err := o.envd.RunCmd(ctx, ip, sb.AccessToken, user, tpl.Workdir, tpl.ReadyCmd)
		if err == nil && code == 0 {
			o.log.Debug("template ready", "sandbox", sb.ID, "after", time.Since(start))
			return nil
		}
		if err == nil {
			last = code
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: the template's ready command %q did not succeed within %s (last exit code %d)", errdefs.ErrUnavailable, tpl.ReadyCmd, o.cfg.ReadyTimeout, last)
		case <-time.After(readyInterval):
		}
	}
}

// userOf is who a template's sandboxes run commands as by default.
func (o *Orchestrator) userOf(tpl *store.Template) string {
	if tpl != nil && tpl.User != "" {
		return tpl.User
	}
	return o.cfg.DefaultUser
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
