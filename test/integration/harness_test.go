// Package integration drives a real `airlock serve` binary: real sandboxes,
// real runtimes, restarts and crashes of the server, and leak checks.
package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/airlock-sandbox/airlock/proto/process"
	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
)

var (
	airlockBin string
	dataDir    string
)

func TestMain(m *testing.M) {
	airlockBin = os.Getenv("AIRLOCK_BIN")
	dataDir = os.Getenv("AIRLOCK_TEST_DATA_DIR")
	if airlockBin == "" || dataDir == "" || os.Geteuid() != 0 {
		// A missing prerequisite is a failure, never a silent skip.
		fmt.Fprintln(os.Stderr, "integration tests need root, AIRLOCK_BIN (a built airlock binary) and AIRLOCK_TEST_DATA_DIR (a data dir whose templates are built); run scripts/test.sh")
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// server is one running `airlock serve` process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	addr string
	key  string
	log  *bytes.Buffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startServer runs airlock serve (with any extra flags) and waits until it answers.
func startServer(t *testing.T, runtime, addr string, extra ...string) *server {
	t.Helper()
	if addr == "" {
		addr = freeAddr(t)
	}
	s := &server{t: t, addr: addr, log: &bytes.Buffer{}}
	s.cmd = exec.Command(airlockBin, append([]string{"serve", "--addr", addr, "--data-dir", dataDir, "--runtime", runtime}, extra...)...)
	s.cmd.Stdout = s.log
	s.cmd.Stderr = s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Minute) // a cold template build
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			resp.Body.Close()
			break
		}
		if s.cmd.ProcessState != nil || time.Now().After(deadline) {
			t.Fatalf("airlock serve did not come up: %v\n%s", err, s.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	keyArgs := []string{"keys", "create", "--data-dir", dataDir, "--name", t.Name()}
	for i := 0; i+1 < len(extra); i++ {
		if extra[i] == "--store" { // the key must land in the server's store
			keyArgs = append(keyArgs, "--store", extra[i+1])
		}
	}
	out, err := exec.Command(airlockBin, keyArgs...).Output()
	if err != nil {
		t.Fatalf("keys create: %v", err)
	}
	s.key = strings.TrimSpace(string(out))
	return s
}

// stop shuts the server down gracefully (sandboxes keep running).
func (s *server) stop() {
	if s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// crash kills the server with SIGKILL, as a power cut would.
func (s *server) crash() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

func (s *server) api(method, path string, body any) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+s.addr+path, rd)
	req.Header.Set("X-API-KEY", s.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type sandbox struct {
	s     *server
	ID    string `json:"sandboxID"`
	Token string `json:"envdAccessToken"`
}

func (s *server) create(t *testing.T, body map[string]any) *sandbox {
	t.Helper()
	if body["templateID"] == nil {
		body["templateID"] = "base"
	}
	if body["secure"] == nil {
		body["secure"] = true
	}
	code, b := s.api("POST", "/sandboxes", body)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, b)
	}
	sb := &sandbox{s: s}
	if err := json.Unmarshal(b, sb); err != nil {
		t.Fatal(err)
	}
	return sb
}

func (sb *sandbox) kill(t *testing.T) {
	t.Helper()
	if code, b := sb.s.api("DELETE", "/sandboxes/"+sb.ID, nil); code != http.StatusNoContent {
		t.Fatalf("kill %s: %d %s", sb.ID, code, b)
	}
}

// headerTransport adds the sandbox routing and auth headers the SDKs send.
type headerTransport struct{ h http.Header }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.h {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (sb *sandbox) processClient() processconnect.ProcessClient {
	h := http.Header{}
	h.Set("E2b-Sandbox-Id", sb.ID)
	h.Set("E2b-Sandbox-Port", "49983")
	h.Set("X-Access-Token", sb.Token)
	return processconnect.NewProcessClient(&http.Client{Transport: headerTransport{h}}, "http://"+sb.s.addr, connect.WithProtoJSON())
}

type result struct {
	stdout, stderr string
	exitCode       int32
	status         string
}

// run executes a bash command in the sandbox through the gateway and envd.
func (sb *sandbox) run(t *testing.T, cmd string, timeout time.Duration) result {
	t.Helper()
	res, err := sb.tryRun(cmd, "", timeout)
	if err != nil {
		t.Fatalf("run %q: %v", cmd, err)
	}
	return res
}

func (sb *sandbox) tryRun(cmd, user string, timeout time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req := connect.NewRequest(&process.StartRequest{Process: &process.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}}})
	if user != "" {
		req.Header().Set("Authorization", "Basic "+basic(user))
	}
	stream, err := sb.processClient().Start(ctx, req)
	if err != nil {
		return result{}, err
	}
	defer stream.Close()
	var res result
	ended := false
	for stream.Receive() {
		ev := stream.Msg().GetEvent()
		switch {
		case ev.GetData() != nil:
			res.stdout += string(ev.GetData().GetStdout())
			res.stderr += string(ev.GetData().GetStderr())
		case ev.GetEnd() != nil:
			res.exitCode = ev.GetEnd().GetExitCode()
			res.status = ev.GetEnd().GetStatus()
			ended = true
		}
	}
	if err := stream.Err(); err != nil {
		return res, err
	}
	if !ended {
		return res, fmt.Errorf("stream ended without an end event")
	}
	return res, nil
}

func basic(user string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":"))
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
