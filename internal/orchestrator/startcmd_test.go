package orchestrator

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/internal/store"
	rpc "github.com/airlock-sandbox/airlock/proto/process"
	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
)

const testStartCmd = "/.airlock/envd interpreter"

// startCmdTemplates resolves "ci" to a template with a start command and
// "base" to one without.
type startCmdTemplates struct{}

func (startCmdTemplates) Resolve(_ context.Context, ref string) (*store.Template, error) {
	switch ref {
	case "ci":
		return &store.Template{ID: "tpl00000000000000ci0", Aliases: []string{"ci"}, RootfsDir: "/nonexistent",
			BuildStatus: "ready", StartCmd: testStartCmd}, nil
	case "base":
		return &store.Template{ID: "tpl0000000000000base", Aliases: []string{"base"}, RootfsDir: "/nonexistent", BuildStatus: "ready"}, nil
	}
	return nil, fmt.Errorf("template %q: %w", ref, store.ErrNotFound)
}

// startCall is what the fake envd saw of one process.Process/Start.
type startCall struct {
	cmd     string
	args    []string
	tag     string
	stdin   bool
	token   string
	auth    string
	timeout string // Connect-Timeout-Ms
}

// procEnvd is a fake envd with the process service. Its Start "runs" the
// start command: after serveDelay it serves /health on the interpreter
// port of the sandbox's IP, and that server outlives the RPC stream.
type procEnvd struct {
	processconnect.UnimplementedProcessHandler
	t          *testing.T
	port       int // interpreter port
	serveDelay time.Duration
	startErr   error
	noServe    bool

	mu           sync.Mutex
	calls        []startCall
	streamClosed chan struct{}
	health       atomic.Int32
	servers      []*http.Server
}

func (e *procEnvd) Start(ctx context.Context, req *connect.Request[rpc.StartRequest], stream *connect.ServerStream[rpc.StartResponse]) error {
	c := startCall{
		cmd: req.Msg.GetProcess().GetCmd(), args: req.Msg.GetProcess().GetArgs(), tag: req.Msg.GetTag(),
		stdin: req.Msg.GetStdin(), token: req.Header().Get("X-Access-Token"),
		auth: req.Header().Get("Authorization"), timeout: req.Header().Get("Connect-Timeout-Ms"),
	}
	e.mu.Lock()
	e.calls = append(e.calls, c)
	e.mu.Unlock()
	if e.startErr != nil {
		return e.startErr
	}
	if !e.noServe {
		// The sandbox's IP is the local address envd was reached on.
		la, _ := ctx.Value(http.LocalAddrContextKey).(net.Addr)
		host, _, err := net.SplitHostPort(la.String())
		if err != nil {
			return err
		}
		go e.serve(host)
	}
	if err := stream.Send(&rpc.StartResponse{Event: &rpc.ProcessEvent{Event: &rpc.ProcessEvent_Start{Start: &rpc.ProcessEvent_StartEvent{Pid: 4242}}}}); err != nil {
		return err
	}
	<-ctx.Done() // a long-running process: only the client ends the stream
	close(e.streamClosed)
	return ctx.Err()
}

func (e *procEnvd) serve(host string) {
	time.Sleep(e.serveDelay)
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(e.port)))
	if err != nil {
		e.t.Errorf("fake interpreter listen: %v", err)
		return
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		e.health.Add(1)
		w.Write([]byte(`"OK"`))
	})
	srv := &http.Server{Handler: mux}
	e.mu.Lock()
	e.servers = append(e.servers, srv)
	e.mu.Unlock()
	go srv.Serve(ln)
}

func (e *procEnvd) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.servers {
		s.Close()
	}
}

// procDriver is fakeDriver whose envd also serves the process service.
type procDriver struct {
	*fakeDriver
	envd *procEnvd
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func startCmdOrchestrator(t *testing.T, e *procEnvd, readyTimeout time.Duration) (*Orchestrator, *harness, *procDriver) {
	t.Helper()
	h := newHarness(t)
	drv := &procDriver{fakeDriver: h.drv, envd: e}
	h.drv.routes = func(mux *http.ServeMux) { mux.Handle(processconnect.NewProcessHandler(e)) }
	o, err := New(Config{
		Store:         h.st,
		Driver:        drv,
		Network:       h.net,
		Templates:     startCmdTemplates{},
		EnvdBinary:    "/proc/self/exe",
		EnvdPort:      h.drv.port,
		ReapInterval:  20 * time.Millisecond,
		ReadyTimeout:  readyTimeout,
		StartCmdPorts: map[string]int{testStartCmd: e.port},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		o.Close()
		e.close()
	})
	return o, h, drv
}

func newProcEnvd(t *testing.T) *procEnvd {
	return &procEnvd{t: t, port: freePort(t), serveDelay: 150 * time.Millisecond, streamClosed: make(chan struct{})}
}

func TestCreateRunsStartCmd(t *testing.T) {
	e := newProcEnvd(t)
	o, h, _ := startCmdOrchestrator(t, e, 3*time.Second)

	sb, err := o.Create(context.Background(), CreateRequest{Template: "ci", Timeout: time.Minute, Secure: true, PublicTraffic: true})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	// Create waited for the server the start command runs.
	if e.health.Load() == 0 {
		t.Errorf("Create returned before the start command's port answered")
	}
	e.mu.Lock()
	calls := slices.Clone(e.calls)
	e.mu.Unlock()
	if len(calls) != 1 {
		t.Fatalf("Start called %d times, want 1", len(calls))
	}
	c := calls[0]
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:"))
	if c.cmd != "/bin/bash" || !slices.Equal(c.args, []string{"-l", "-c", superviseCmd(testStartCmd)}) || c.tag != StartCmdTag ||
		c.stdin || c.token != sb.AccessToken || c.auth != wantAuth {
		t.Errorf("Start call = %+v, want bash -l -c %q tagged %q as user with the access token", c, superviseCmd(testStartCmd), StartCmdTag)
	}
	if c.timeout != "" {
		t.Errorf("Start carried Connect-Timeout-Ms %s: envd would kill the start command at that deadline", c.timeout)
	}
	// The stream is closed once the process started; the process lives on.
	select {
	case <-e.streamClosed:
	case <-time.After(2 * time.Second):
		t.Fatal("the Start stream was left open")
	}
	ep, _ := h.net.get(sb.ID)
	resp, err := http.Get("http://" + net.JoinHostPort(ep.IP.String(), strconv.Itoa(e.port)) + "/health")
	if err != nil {
		t.Fatalf("start command's server gone after the stream closed: %v", err)
	}
	resp.Body.Close()

	// Init happened before the start command, so it saw the sandbox's env.
	if n := len(h.drv.box(sb.ID).envd.inits()); n != 1 {
		t.Errorf("envd /init called %d times", n)
	}

	// A template without a start command starts nothing.
	if _, err := o.Create(context.Background(), CreateRequest{Template: "base", Timeout: time.Minute, PublicTraffic: true}); err != nil {
		t.Fatalf("create base: %v", err)
	}
	e.mu.Lock()
	n := len(e.calls)
	e.mu.Unlock()
	if n != 1 {
		t.Errorf("Start called %d times after a base create, want still 1", n)
	}
}

func TestCreateStartCmdFailures(t *testing.T) {
	t.Run("spawn fails", func(t *testing.T) {
		e := newProcEnvd(t)
		e.startErr = connect.NewError(connect.CodeInternal, errors.New("error starting process: no bash"))
		o, h, drv := startCmdOrchestrator(t, e, 3*time.Second)
		_, err := o.Create(context.Background(), CreateRequest{Template: "ci", Timeout: time.Minute, PublicTraffic: true})
		if err == nil || !strings.Contains(err.Error(), "no bash") {
			t.Fatalf("create err = %v, want the spawn error", err)
		}
		drv.mu.Lock()
		left := len(drv.boxes)
		drv.mu.Unlock()
		eps, _ := h.net.List(context.Background())
		if left != 0 || len(eps) != 0 {
			t.Errorf("failed create left %d containers, %d endpoints", left, len(eps))
		}
		list, _, err := h.st.ListSandboxes(context.Background(), store.SandboxFilter{States: []store.SandboxState{store.StateKilled}})
		if err != nil || len(list) != 1 || !strings.Contains(list[0].EndReason, "start command") {
			t.Errorf("killed records = %+v, %v", list, err)
		}
	})
	t.Run("server never answers", func(t *testing.T) {
		e := newProcEnvd(t)
		e.noServe = true
		o, h, _ := startCmdOrchestrator(t, e, 300*time.Millisecond)
		sb, err := o.Create(context.Background(), CreateRequest{Template: "ci", Timeout: time.Minute, PublicTraffic: true})
		if err != nil {
			t.Fatalf("create: %v (a silent start command must not fail the create)", err)
		}
		evs, err := h.st.ListEvents(context.Background(), sb.ID, time.Time{}, 100)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range evs {
			found = found || (ev.Level == "warn" && strings.Contains(ev.Message, "did not answer on port "+strconv.Itoa(e.port)))
		}
		if !found {
			t.Errorf("no warning event about the silent start command: %+v", evs)
		}
	})
}

// TestSuperviseCmd runs the wrapper in a real shell: a server that exits is
// started again, and killing the process group ends the loop too.
func TestSuperviseCmd(t *testing.T) {
	dir := t.TempDir()
	runs := filepath.Join(dir, "runs")
	cmd := exec.Command("/bin/bash", "-c", superviseCmd("echo run >> "+runs+"; exit 3"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // as envd starts it
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, _ := os.ReadFile(runs)
		if strings.Count(string(b), "run") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
			t.Fatalf("the command was not started again: runs=%q", b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatal("the loop outlived a signal to its process group")
	}
	if !strings.Contains(stderr.String(), "exited with status 3") {
		t.Errorf("stderr = %q, want the exit status reported", stderr.String())
	}
}
