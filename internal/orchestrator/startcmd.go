package orchestrator

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/internal/store"
	rpc "github.com/airlock-sandbox/airlock/proto/process"
	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
	"github.com/airlock-sandbox/airlock/sdk/wire"
)

// StartCmdTag tags the template's start command in envd's process list.
const StartCmdTag = "start-cmd"

// InterpreterPort is where code-interpreter-v1's start command serves.
const InterpreterPort = wire.InterpreterPort

// startCmdTimeout bounds waiting for envd to report the start command spawned.
const startCmdTimeout = 10 * time.Second

// startCmd starts cmd in the sandbox through envd's process service, as
// E2B's startCmd: `bash -l -c cmd` as user, so it gets the login
// environment and the sandbox's env vars. It returns once envd reports the
// process started; the process keeps running after the stream is closed
// because the request carries no deadline (envd would kill it at one).
func (c *envdClient) startCmd(ctx context.Context, ip netip.Addr, token, user, cmd string) (pid uint32, err error) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel() // closes the stream; the process lives on
	timer := time.AfterFunc(startCmdTimeout, cancel)
	defer timer.Stop()

	client := processconnect.NewProcessClient(c.http, c.url(ip, ""), connect.WithProtoJSON())
	tag, stdin := StartCmdTag, false
	req := connect.NewRequest(&rpc.StartRequest{
		Process: &rpc.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}, Envs: map[string]string{}},
		Tag:     &tag,
		Stdin:   &stdin,
	})
	if token != "" {
		req.Header().Set("X-Access-Token", token)
	}
	req.Header().Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":")))
	stream, err := client.Start(ctx, req)
	if err != nil {
		return 0, err
	}
	defer stream.Close()
	for stream.Receive() {
		if st := stream.Msg().GetEvent().GetStart(); st != nil {
			return st.GetPid(), nil
		}
	}
	if err := stream.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("envd closed the stream before the process started")
}

// waitPort polls http://ip:port/health until it answers 2xx, the way E2B's
// code-interpreter template waits for its server before a sandbox is handed
// out: the SDK sends /execute right after create.
func (c *envdClient) waitPort(ctx context.Context, ip netip.Addr, port int, timeout time.Duration) error {
	return c.waitHealth(ctx, "http://"+net.JoinHostPort(ip.String(), strconv.Itoa(port))+"/health", timeout)
}

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
	pid, err := o.envd.startCmd(ctx, ip, sb.AccessToken, o.cfg.DefaultUser, run)
	if err != nil {
		return fmt.Errorf("start command %q: %w", cmd, err)
	}
	o.log.Debug("start command running", "sandbox", sb.ID, "pid", pid)
	if !server {
		return nil
	}
	start := time.Now()
	if err := o.envd.waitPort(ctx, ip, port, o.cfg.ReadyTimeout); err != nil {
		o.log.Warn("start command did not answer", "sandbox", sb.ID, "port", port, "err", err)
		o.event(ctx, sb.ID, "warn", fmt.Sprintf("start command did not answer on port %d: %v", port, err))
		return nil
	}
	o.log.Debug("start command answering", "sandbox", sb.ID, "port", port, "after", time.Since(start))
	return nil
}
