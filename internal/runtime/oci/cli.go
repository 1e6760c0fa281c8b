package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// containerState is the subset of `runtime state` / `runtime list` JSON we use.
type containerState struct {
	ID      string    `json:"id"`
	PID     int       `json:"pid"`
	Status  string    `json:"status"`
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created"`
}

// globalArgs are the flags every invocation of the runtime needs.
func (d *Driver) globalArgs() []string {
	return append([]string{"--root", d.cfg.RuntimeRoot}, d.flavor.globalArgs...)
}

// run invokes the runtime and returns its stdout; stderr is folded into the error.
func (d *Driver) run(ctx context.Context, args ...string) ([]byte, error) {
	full := append(d.globalArgs(), args...)
	cmd := exec.CommandContext(ctx, d.cfg.Binary, full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &runtimeError{cmd: d.cfg.Runtime + " " + strings.Join(args, " "), err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.Bytes(), nil
}

// runDetached invokes the runtime for create/restore, where the
// container's init inherits the runtime's stdio: giving it pipes would make
// Wait block until the container exits, and giving it a host file would let
// root in the sandbox grow that file without bound (through /proc/1/fd/1).
// So the init's stdio is /dev/null, and the runtime's own errors go to
// logPath through its --log flag. extra, if any, become descriptors 3, 4,
// ... of the runtime process; global are flags for this invocation only.
// stdio, if not nil, replaces /dev/null as the init's stdout and stderr.
func (d *Driver) runDetached(ctx context.Context, logPath string, stdio *os.File, extra []*os.File, global []string, args ...string) error {
	full := append(append(append(d.globalArgs(), global...), "--log", logPath), args...)
	cmd := exec.CommandContext(ctx, d.cfg.Binary, full...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil // /dev/null
	if stdio != nil {
		cmd.Stdout, cmd.Stderr = stdio, stdio // an *os.File: Run does not wait on it
	}
	cmd.ExtraFiles = extra
	if err := cmd.Run(); err != nil {
		return &runtimeError{cmd: d.cfg.Runtime + " " + strings.Join(args, " "), err: err, stderr: tail(logPath, 2048)}
	}
	return nil
}

type runtimeError struct {
	cmd    string
	err    error
	stderr string
}

func (e *runtimeError) Error() string {
	return fmt.Sprintf("oci: %s: %v: %s", e.cmd, e.err, e.stderr)
}

func (e *runtimeError) Unwrap() error { return e.err }

// notExist reports whether the runtime said the container does not exist.
func notExist(err error) bool {
	if err == nil {
		return false
	}
	msg := strings.ToLower(err.Error())
	return strings.Contains(msg, "does not exist") || strings.Contains(msg, "not exist") ||
		strings.Contains(msg, "no such file") || strings.Contains(msg, "not found")
}

func (d *Driver) state(ctx context.Context, id string) (containerState, error) {
	out, err := d.run(ctx, "state", id)
	if err != nil {
		return containerState{}, err
	}
	var st containerState
	if err := json.Unmarshal(out, &st); err != nil {
		return containerState{}, fmt.Errorf("oci: parse %s state: %w", d.cfg.Runtime, err)
	}
	return st, nil
}

func (d *Driver) list(ctx context.Context) (map[string]containerState, error) {
	out, err := d.run(ctx, "list", "--format", "json")
	if err != nil {
		return nil, err
	}
	var sts []containerState
	if s := strings.TrimSpace(string(out)); s != "" && s != "null" {
		if err := json.Unmarshal(out, &sts); err != nil {
			return nil, fmt.Errorf("oci: parse %s list: %w", d.cfg.Runtime, err)
		}
	}
	m := make(map[string]containerState, len(sts))
	for _, st := range sts {
		m[st.ID] = st
	}
	return m, nil
}

// tail returns the last n bytes of a file, for error messages.
func tail(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := fi.Size() - n
	if off < 0 {
		off = 0
	}
	buf := make([]byte, fi.Size()-off)
	_, _ = f.ReadAt(buf, off)
	return strings.TrimSpace(string(buf))
}
