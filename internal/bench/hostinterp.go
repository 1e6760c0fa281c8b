package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

// hostInterpreter is `airlock interpreter` run on the host: the same server
// and kernels as in a code-interpreter sandbox, minus the sandbox and the
// gateway. envd's token check is played by a local handler that answers
// like an unsecured sandbox's envd (any caller, empty environment).
type hostInterpreter struct {
	cmd     *exec.Cmd
	envd    *http.Server
	dir     string
	sb      *sandbox.Sandbox
	done    chan struct{} // closed when the process has exited, after waitErr is set
	waitErr error
}

// hostStartBudget bounds the interpreter's start (its kernels warm up in
// the background; the first runCode waits for them).
const hostStartBudget = 2 * time.Minute

func startHostInterpreter(ctx context.Context, binary string) (*hostInterpreter, error) {
	if binary == "" {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		binary = self
	}
	h := &hostInterpreter{done: make(chan struct{})}
	var err error
	if h.dir, err = os.MkdirTemp("", "airlock-bench-interp-"); err != nil {
		return nil, err
	}
	envdLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.close()
		return nil, err
	}
	h.envd = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte("{}"))
	})}
	go func() { _ = h.envd.Serve(envdLn) }()
	port, err := freePort()
	if err != nil {
		h.close()
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	h.cmd = exec.Command(binary, "interpreter", "--addr", addr, "--envd-url", "http://"+envdLn.Addr().String(), "--cwd", h.dir)
	if err := h.cmd.Start(); err != nil {
		h.close()
		return nil, fmt.Errorf("start %s interpreter: %w", binary, err)
	}
	go func() { h.waitErr = h.cmd.Wait(); close(h.done) }()
	// Debug mode: no control API; RunCode goes straight to the sandbox URL.
	c := sandbox.NewClient(sandbox.WithDebug(true), sandbox.WithSandboxURL("http://"+addr))
	if h.sb, err = c.Connect(ctx, "host", 0); err != nil {
		h.close()
		return nil, err
	}
	if err := h.waitHealthy(ctx, "http://"+addr+"/health"); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func (h *hostInterpreter) waitHealthy(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, hostStartBudget)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
		}
		select {
		case <-h.done:
			return fmt.Errorf("host interpreter exited: %v", h.waitErr)
		case <-ctx.Done():
			return errors.New("host interpreter did not become healthy")
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (h *hostInterpreter) close() {
	if h.cmd != nil && h.cmd.Process != nil {
		stopProcess(h.cmd.Process, os.Interrupt, h.done, 10*time.Second)
	}
	if h.envd != nil {
		_ = h.envd.Close()
	}
	if h.dir != "" {
		os.RemoveAll(h.dir)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// hostInterpreterRoundTrips times n runCode calls on one warm host interpreter.
func hostInterpreterRoundTrips(ctx context.Context, binary string, warmup, n int) ([]time.Duration, error) {
	h, err := startHostInterpreter(ctx, binary)
	if err != nil {
		return nil, err
	}
	defer h.close()
	return timeIt(ctx, warmup, n, func(ctx context.Context) error { return runCode(ctx, h.sb) })
}

// hostInterpreterColdStarts times n fresh interpreters from start to the
// result of their first runCode; stopping each is not timed, like the
// sandbox kill.
func hostInterpreterColdStarts(ctx context.Context, binary string, warmup, n int) ([]time.Duration, error) {
	out := make([]time.Duration, 0, n)
	for i := 0; i < warmup+n; i++ {
		t0 := time.Now()
		h, err := startHostInterpreter(ctx, binary)
		if err != nil {
			return out, err
		}
		err = runCode(ctx, h.sb)
		d := time.Since(t0)
		h.close()
		if err != nil {
			return out, err
		}
		if i >= warmup {
			out = append(out, d)
		}
	}
	return out, nil
}
