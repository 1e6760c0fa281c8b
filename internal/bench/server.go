package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ServerConfig describes an `airlock serve` the benchmark starts itself.
type ServerConfig struct {
	Binary   string // airlock binary (static); default this executable
	Runtime  string
	Addr     string // host:port
	DataDir  string
	Bridge   string
	Subnet   string
	PoolSize int
	LogFile  string // server stderr; default DATA/bench-serve-<runtime>.log
}

// Server is a running `airlock serve` child process.
type Server struct {
	URL    string
	APIKey string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{} // closed when the process has exited
}

// StartServer starts `airlock serve`, waits until it answers and creates an
// API key for the benchmark.
func StartServer(ctx context.Context, c ServerConfig) (*Server, error) {
	if c.Binary == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		c.Binary = self
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, err
	}
	if c.LogFile == "" {
		c.LogFile = filepath.Join(c.DataDir, "bench-serve-"+c.Runtime+".log")
	}
	logf, err := os.Create(c.LogFile)
	if err != nil {
		return nil, err
	}
	args := []string{"serve", "--addr", c.Addr, "--data-dir", c.DataDir, "--runtime", c.Runtime,
		"--bridge", c.Bridge, "--subnet", c.Subnet,
		// Density and concurrency scenarios measure the machine, not a team's quota.
		"--team-max-sandboxes", "0", "--team-creates-per-second", "0"}
	if c.PoolSize > 0 {
		args = append(args, "--pool-size", strconv.Itoa(c.PoolSize))
	}
	cmd := exec.Command(c.Binary, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C on the benchmark must not kill the
	// server before the benchmark has removed its sandboxes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start airlock serve: %w", err)
	}
	s := &Server{URL: "http://" + c.Addr, cmd: cmd, log: logf, exited: make(chan struct{})}
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(s.exited) }()
	// The first start builds the base template: allow several minutes.
	deadline := time.Now().Add(15 * time.Minute)
	for {
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("airlock serve did not become ready (log: %s)", c.LogFile)
		}
		select {
		case <-s.exited:
			logf.Close()
			return nil, fmt.Errorf("airlock serve exited: %v (log: %s)", waitErr, c.LogFile)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if resp, err := http.Get(s.URL + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
	}
	out, err := exec.CommandContext(ctx, c.Binary, "keys", "create", "--data-dir", c.DataDir).Output()
	if err != nil {
		s.Stop()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return nil, fmt.Errorf("create API key: %w", err)
	}
	s.APIKey = strings.TrimSpace(string(out))
	return s, nil
}

// Stop sends SIGTERM and waits for the server to exit; sandboxes it still
// runs keep running (remove them first).
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	stopProcess(s.cmd.Process, syscall.SIGTERM, s.exited, 20*time.Second)
	s.log.Close()
}

// stopProcess signals p and waits for exited, killing it after grace.
func stopProcess(p *os.Process, sig os.Signal, exited <-chan struct{}, grace time.Duration) {
	_ = p.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		_ = p.Kill()
		<-exited
	}
}
