package envd

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"

	"github.com/airlock-sandbox/airlock/internal/roottest"
	rpc "github.com/airlock-sandbox/airlock/proto/process"
	"github.com/airlock-sandbox/airlock/proto/process/processconnect"
)

func TestMain(m *testing.M) {
	// Like envd outside PID 1: orphans of our processes become our children.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		panic("PR_SET_CHILD_SUBREAPER: " + err.Error())
	}
	os.Exit(m.Run())
}

type testEnv struct {
	srv    *Server
	http   *httptest.Server
	client processconnect.ProcessClient
}

func newTestEnv(t testing.TB) *testEnv {
	t.Helper()
	roottest.Require(t, "envd's process tests (they start processes as other users)")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	srv := NewServer(log)
	srv.infoDir = t.TempDir() // never the host's /run/e2b
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		killAll(srv)
	})
	return &testEnv{
		srv:    srv,
		http:   hs,
		client: processconnect.NewProcessClient(hs.Client(), hs.URL, connect.WithProtoJSON()),
	}
}

// killAll makes sure no test process outlives its test.
func killAll(srv *Server) {
	for _, p := range srv.process.procs.list() {
		_ = p.signal(syscall.SIGKILL)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
		}
	}
}

// result is everything a finished stream delivered.
type result struct {
	pid        uint32
	stdout     string
	stderr     string
	pty        string
	keepalives int
	end        *rpc.ProcessEvent_EndEvent
	err        error
}

type eventStream interface {
	Receive() bool
	Err() error
}

// collect drains a Start or Connect stream; event extracts the event of
// the current message.
func collect[S eventStream](t *testing.T, s S, event func(S) *rpc.ProcessEvent) result {
	t.Helper()
	return collectFrom(t, s, event, true)
}

// collectRest drains a stream whose start event was already read.
func collectRest(t *testing.T, s *connect.ServerStreamForClient[rpc.StartResponse]) result {
	t.Helper()
	return collectFrom(t, s, startEvent, false)
}

func collectFrom[S eventStream](t *testing.T, s S, event func(S) *rpc.ProcessEvent, first bool) result {
	t.Helper()
	var r result
	for s.Receive() {
		ev := event(s)
		if first && ev.GetStart() == nil {
			t.Fatalf("first event is %v, want start", ev)
		}
		first = false
		switch e := ev.GetEvent().(type) {
		case *rpc.ProcessEvent_Start:
			r.pid = e.Start.GetPid()
		case *rpc.ProcessEvent_Data:
			r.stdout += string(e.Data.GetStdout())
			r.stderr += string(e.Data.GetStderr())
			r.pty += string(e.Data.GetPty())
		case *rpc.ProcessEvent_Keepalive:
			r.keepalives++
		case *rpc.ProcessEvent_End:
			if r.end != nil {
				t.Fatal("second end event")
			}
			r.end = e.End
		}
	}
	r.err = s.Err()
	return r
}

func startEvent(s *connect.ServerStreamForClient[rpc.StartResponse]) *rpc.ProcessEvent {
	return s.Msg().GetEvent()
}

func connectEvent(s *connect.ServerStreamForClient[rpc.ConnectResponse]) *rpc.ProcessEvent {
	return s.Msg().GetEvent()
}

func bashReq(cmd string) *rpc.StartRequest {
	return &rpc.StartRequest{
		Process: &rpc.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-l", "-c", cmd}},
		Stdin:   proto.Bool(false),
	}
}

func (e *testEnv) run(t *testing.T, req *rpc.StartRequest, hdr map[string]string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r := connect.NewRequest(req)
	for k, v := range hdr {
		r.Header().Set(k, v)
	}
	s, err := e.client.Start(ctx, r)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer s.Close()
	return collect(t, s, startEvent)
}

// startBackground starts req and returns its pid and the open stream.
func (e *testEnv) startBackground(t *testing.T, ctx context.Context, req *rpc.StartRequest) (uint32, *connect.ServerStreamForClient[rpc.StartResponse]) {
	t.Helper()
	s, err := e.client.Start(ctx, connect.NewRequest(req))
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if !s.Receive() {
		t.Fatalf("no start event: %v", s.Err())
	}
	pid := s.Msg().GetEvent().GetStart().GetPid()
	if pid == 0 {
		t.Fatalf("first event %v, want start with pid", s.Msg())
	}
	return pid, s
}

func endOf(code int32, exited bool, status string) *rpc.ProcessEvent_EndEvent {
	e := &rpc.ProcessEvent_EndEvent{ExitCode: code, Exited: exited, Status: status}
	if !(exited && code == 0) {
		e.Error = proto.String(status)
	}
	return e
}

func wantEnd(t *testing.T, got, want *rpc.ProcessEvent_EndEvent) {
	t.Helper()
	if got == nil {
		t.Fatalf("no end event, want %v", want)
	}
	if !proto.Equal(got, want) {
		t.Fatalf("end event = %v, want %v", got, want)
	}
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %v", code)
	}
	if got := connect.CodeOf(err); got != code {
		t.Fatalf("error %v has code %v, want %v", err, got, code)
	}
}

// waitGone waits until pid no longer exists (reaped, not a zombie).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); os.IsNotExist(err) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	t.Fatalf("process %d still exists: %s", pid, stat)
}

func TestStartExitStatus(t *testing.T) {
	e := newTestEnv(t)
	tests := []struct {
		name   string
		cmd    string
		stdout string
		stderr string
		end    *rpc.ProcessEvent_EndEvent
	}{
		{"echo", "echo hello", "hello\n", "", endOf(0, true, "exit status 0")},
		{"exit code", "echo out; echo err >&2; exit 3", "out\n", "err\n", endOf(3, true, "exit status 3")},
		{"exit 1", "false", "", "", endOf(1, true, "exit status 1")},
		{"killed", "kill -9 $$", "", "", endOf(-1, false, "signal: killed")},
		{"terminated", "kill -TERM $$", "", "", endOf(-1, false, "signal: terminated")},
		{"large output", "head -c 200000 /dev/zero | tr '\\0' x", strings.Repeat("x", 200000), "", endOf(0, true, "exit status 0")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.run(t, bashReq(tc.cmd), nil)
			if r.err != nil {
				t.Fatalf("stream error: %v", r.err)
			}
			if r.stdout != tc.stdout || r.stderr != tc.stderr {
				t.Fatalf("stdout %q stderr %q, want %q %q", r.stdout, r.stderr, tc.stdout, tc.stderr)
			}
			wantEnd(t, r.end, tc.end)
		})
	}
}

func TestStartUnknownCommand(t *testing.T) {
	e := newTestEnv(t)
	req := &rpc.StartRequest{Process: &rpc.ProcessConfig{Cmd: "no-such-command-xyz"}}
	r := e.run(t, req, nil)
	wantCode(t, r.err, connect.CodeInternal)
}

func TestStdin(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("send and close", func(t *testing.T) {
		req := bashReq("cat")
		req.Stdin = proto.Bool(true)
		pid, s := e.startBackground(t, ctx, req)
		defer s.Close()
		sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}}
		for _, chunk := range []string{"abc", "def\n"} {
			in := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: []byte(chunk)}}}
			if _, err := e.client.SendInput(ctx, connect.NewRequest(in)); err != nil {
				t.Fatalf("SendInput: %v", err)
			}
		}
		// The wrong input member for a pipe process is an internal error.
		bad := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Pty{Pty: []byte("x")}}}
		_, err := e.client.SendInput(ctx, connect.NewRequest(bad))
		wantCode(t, err, connect.CodeInternal)
		for range 2 { // closing twice is fine
			if _, err := e.client.CloseStdin(ctx, connect.NewRequest(&rpc.CloseStdinRequest{Process: sel})); err != nil {
				t.Fatalf("CloseStdin: %v", err)
			}
		}
		r := collectRest(t, s)
		if r.stdout != "abcdef\n" {
			t.Fatalf("stdout %q, want %q", r.stdout, "abcdef\n")
		}
		wantEnd(t, r.end, endOf(0, true, "exit status 0"))
	})

	t.Run("false means EOF", func(t *testing.T) {
		r := e.run(t, bashReq("cat; echo done"), nil)
		if r.stdout != "done\n" {
			t.Fatalf("stdout %q", r.stdout)
		}
		wantEnd(t, r.end, endOf(0, true, "exit status 0"))
	})

	t.Run("absent means open", func(t *testing.T) {
		req := bashReq("read line; echo got $line")
		req.Stdin = nil
		pid, s := e.startBackground(t, ctx, req)
		defer s.Close()
		sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}}
		in := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: []byte("x\n")}}}
		if _, err := e.client.SendInput(ctx, connect.NewRequest(in)); err != nil {
			t.Fatalf("SendInput: %v", err)
		}
		r := collectRest(t, s)
		if r.stdout != "got x\n" {
			t.Fatalf("stdout %q", r.stdout)
		}
	})

	t.Run("stdin disabled", func(t *testing.T) {
		pid, s := e.startBackground(t, ctx, bashReq("sleep 5"))
		defer s.Close()
		sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}}
		in := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: []byte("x")}}}
		_, err := e.client.SendInput(ctx, connect.NewRequest(in))
		wantCode(t, err, connect.CodeInternal)
		kill(t, e, ctx, pid)
	})

	t.Run("unknown pid", func(t *testing.T) {
		sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: 999999}}
		in := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: []byte("x")}}}
		_, err := e.client.SendInput(ctx, connect.NewRequest(in))
		wantCode(t, err, connect.CodeNotFound)
		_, err = e.client.CloseStdin(ctx, connect.NewRequest(&rpc.CloseStdinRequest{Process: sel}))
		wantCode(t, err, connect.CodeNotFound)
	})
}

func kill(t *testing.T, e *testEnv, ctx context.Context, pid uint32) {
	t.Helper()
	req := &rpc.SendSignalRequest{
		Process: &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}},
		Signal:  rpc.Signal_SIGNAL_SIGKILL,
	}
	if _, err := e.client.SendSignal(ctx, connect.NewRequest(req)); err != nil {
		t.Fatalf("SendSignal: %v", err)
	}
}

func TestEnvironment(t *testing.T) {
	e := newTestEnv(t)
	e.srv.State().Apply(Config{EnvVars: map[string]string{"FOO": "sandbox", "BAR": "sandbox", "HOME": "/sandbox-home"}})
	req := bashReq(`echo "$FOO|$BAR|$HOME|$USER|$LOGNAME|${PATH:+path}"`)
	req.Process.Envs = map[string]string{"BAR": "request"}
	r := e.run(t, req, nil)
	if want := "sandbox|request|/sandbox-home|root|root|path\n"; r.stdout != want {
		t.Fatalf("stdout %q, want %q", r.stdout, want)
	}
}

func TestCwd(t *testing.T) {
	e := newTestEnv(t)
	dir := t.TempDir()
	tests := []struct {
		name    string
		cwd     *string
		workdir string
		want    string
	}{
		{"absent is home", nil, "", "/root\n"},
		{"absent is workdir", nil, dir, dir + "\n"},
		{"absolute", proto.String(dir), "", dir + "\n"},
		{"tilde", proto.String("~"), "", "/root\n"},
		{"cleaned", proto.String(dir + "/x/.."), "", dir + "\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.srv.state.mu.Lock()
			e.srv.state.cfg.DefaultWorkdir = tc.workdir
			e.srv.state.mu.Unlock()
			req := bashReq("pwd")
			req.Process.Cwd = tc.cwd
			r := e.run(t, req, nil)
			if r.err != nil || r.stdout != tc.want {
				t.Fatalf("stdout %q err %v, want %q", r.stdout, r.err, tc.want)
			}
		})
	}

	t.Run("missing", func(t *testing.T) {
		req := bashReq("pwd")
		req.Process.Cwd = proto.String("/does/not/exist")
		r := e.run(t, req, nil)
		wantCode(t, r.err, connect.CodeInvalidArgument)
		var ce *connect.Error
		if !errors.As(r.err, &ce) || ce.Message() != "cwd '/does/not/exist' does not exist" {
			t.Fatalf("error %v, want message about the cwd", r.err)
		}
	})
}

func basicAuth(user string) map[string]string {
	return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"))}
}

func TestUserSelection(t *testing.T) {
	e := newTestEnv(t)
	nobody, err := LookupUser("nobody")
	if err != nil {
		t.Fatalf("test needs user nobody: %v", err)
	}
	tests := []struct {
		name string
		user string
		want string
	}{
		{"default root", "", "0 0 root\n"},
		{"explicit root", "root", "0 0 root\n"},
		{"nobody", "nobody", strconv.Itoa(int(nobody.UID)) + " " + strconv.Itoa(int(nobody.GID)) + " nobody\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := bashReq(`echo "$(id -u) $(id -g) $USER"`)
			req.Process.Cwd = proto.String("/tmp") // nobody's home does not exist
			var hdr map[string]string
			if tc.user != "" {
				hdr = basicAuth(tc.user)
			}
			r := e.run(t, req, hdr)
			if r.err != nil || r.stdout != tc.want {
				t.Fatalf("stdout %q err %v, want %q", r.stdout, r.err, tc.want)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		r := e.run(t, bashReq("true"), basicAuth("no-such-user-xyz"))
		wantCode(t, r.err, connect.CodeUnauthenticated)
	})
}

func TestBackgroundSurvivesDisconnect(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	sctx, scancel := context.WithCancel(ctx)
	req := bashReq("read line; echo got $line")
	req.Stdin = proto.Bool(true)
	req.Tag = proto.String("bg")
	pid, s := e.startBackground(t, sctx, req)
	scancel()
	s.Close()

	list, err := e.client.List(ctx, connect.NewRequest(&rpc.ListRequest{}))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	var found *rpc.ProcessInfo
	for _, p := range list.Msg.GetProcesses() {
		if p.GetPid() == pid {
			found = p
		}
	}
	if found == nil || found.GetTag() != "bg" || found.GetConfig().GetCmd() != "/bin/bash" ||
		strings.Join(found.GetConfig().GetArgs(), " ") != "-l -c read line; echo got $line" {
		t.Fatalf("List = %v, want pid %d with its config", list.Msg, pid)
	}

	// Two subscribers re-attach (by pid and by tag) and both see the output.
	sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}}
	c1, err := e.client.Connect(ctx, connect.NewRequest(&rpc.ConnectRequest{Process: sel}))
	if err != nil {
		t.Fatal(err)
	}
	tagSel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Tag{Tag: "bg"}}
	c2, err := e.client.Connect(ctx, connect.NewRequest(&rpc.ConnectRequest{Process: tagSel}))
	if err != nil {
		t.Fatal(err)
	}
	// Both have their start event (so are subscribed) before input is sent.
	for _, c := range []*connect.ServerStreamForClient[rpc.ConnectResponse]{c1, c2} {
		if !c.Receive() || c.Msg().GetEvent().GetStart().GetPid() != pid {
			t.Fatalf("Connect: first message %v err %v", c.Msg(), c.Err())
		}
	}
	in := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: []byte("hi\n")}}}
	if _, err := e.client.SendInput(ctx, connect.NewRequest(in)); err != nil {
		t.Fatalf("SendInput: %v", err)
	}
	for i, c := range []*connect.ServerStreamForClient[rpc.ConnectResponse]{c1, c2} {
		var out string
		var end *rpc.ProcessEvent_EndEvent
		for c.Receive() {
			ev := c.Msg().GetEvent()
			out += string(ev.GetData().GetStdout())
			if ev.GetEnd() != nil {
				end = ev.GetEnd()
			}
		}
		if c.Err() != nil || out != "got hi\n" {
			t.Fatalf("subscriber %d: out %q err %v", i, out, c.Err())
		}
		wantEnd(t, end, endOf(0, true, "exit status 0"))
	}

	// A late Connect gets start and end at once.
	late, err := e.client.Connect(ctx, connect.NewRequest(&rpc.ConnectRequest{Process: sel}))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, late, connectEvent)
	if r.err != nil || r.pid != pid {
		t.Fatalf("late connect: pid %d err %v", r.pid, r.err)
	}
	wantEnd(t, r.end, endOf(0, true, "exit status 0"))

	// Finished processes are not listed, and unknown ones are not found.
	list, err = e.client.List(ctx, connect.NewRequest(&rpc.ListRequest{}))
	if err != nil || len(list.Msg.GetProcesses()) != 0 {
		t.Fatalf("List after exit = %v, %v", list.Msg, err)
	}
	unknown := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: 999999}}
	c3, err := e.client.Connect(ctx, connect.NewRequest(&rpc.ConnectRequest{Process: unknown}))
	if err == nil {
		r = collect(t, c3, connectEvent)
		err = r.err
	}
	wantCode(t, err, connect.CodeNotFound)
}

func TestSendSignalKillsGroup(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pid, s := e.startBackground(t, ctx, bashReq("sleep 100 & echo $!; wait"))
	defer s.Close()
	if !s.Receive() {
		t.Fatalf("no output: %v", s.Err())
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(s.Msg().GetEvent().GetData().GetStdout())))
	if err != nil {
		t.Fatalf("child pid: %v (%v)", err, s.Msg())
	}
	kill(t, e, ctx, pid)
	r := collectRest(t, s)
	wantEnd(t, r.end, endOf(-1, false, "signal: killed"))
	waitGone(t, int(pid))
	waitGone(t, child)

	_, err = e.client.SendSignal(ctx, connect.NewRequest(&rpc.SendSignalRequest{
		Process: &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}},
		Signal:  rpc.Signal_SIGNAL_SIGKILL,
	}))
	wantCode(t, err, connect.CodeNotFound)
	_, err = e.client.SendSignal(ctx, connect.NewRequest(&rpc.SendSignalRequest{
		Process: &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}},
		Signal:  rpc.Signal(1),
	}))
	wantCode(t, err, connect.CodeUnimplemented)
}

func TestTimeoutKillsProcess(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 700*time.Millisecond)
	defer cancel()
	s, err := e.client.Start(ctx, connect.NewRequest(bashReq("sleep 100 & wait")))
	if err != nil {
		t.Fatal(err)
	}
	r := collect(t, s, startEvent)
	wantCode(t, r.err, connect.CodeDeadlineExceeded)
	if r.pid == 0 {
		t.Fatal("no start event")
	}
	waitGone(t, int(r.pid))
}

// The deadline is enforced by the server too, also for a client that left.
func TestTimeoutHeaderWithoutClient(t *testing.T) {
	e := newTestEnv(t)
	body := `{"process":{"cmd":"/bin/bash","args":["-c","sleep 100"]},"stdin":false}`
	frames := rawStart(t, e.http.URL, body, map[string]string{"Connect-Timeout-Ms": "600"})
	var pid int
	if err := jsonField(frames[0].payload, &pid, "event", "start", "pid"); err != nil {
		t.Fatal(err)
	}
	last := frames[len(frames)-1]
	if last.flags != 2 || !strings.Contains(string(last.payload), `"deadline_exceeded"`) {
		t.Fatalf("last frame %x %s, want end-of-stream with deadline_exceeded", last.flags, last.payload)
	}
	waitGone(t, pid)
}

func TestPTY(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := &rpc.StartRequest{
		Process: &rpc.ProcessConfig{Cmd: "/bin/bash", Args: []string{"-c", "stty size; tty -s && echo is-tty; read x; stty size"}},
		Pty:     &rpc.PTY{Size: &rpc.PTY_Size{Cols: 100, Rows: 30}},
	}
	pid, s := e.startBackground(t, ctx, req)
	defer s.Close()
	sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}}

	var out string
	for !strings.Contains(out, "is-tty") {
		if !s.Receive() {
			t.Fatalf("stream ended early: %q %v", out, s.Err())
		}
		ev := s.Msg().GetEvent()
		if ev.GetData().GetStdout() != nil || ev.GetData().GetStderr() != nil {
			t.Fatalf("PTY process sent pipe output: %v", ev)
		}
		out += string(ev.GetData().GetPty())
	}
	if !strings.Contains(out, "30 100") {
		t.Fatalf("output %q, want the initial size 30 100", out)
	}

	upd := &rpc.UpdateRequest{Process: sel, Pty: &rpc.PTY{Size: &rpc.PTY_Size{Cols: 120, Rows: 40}}}
	if _, err := e.client.Update(ctx, connect.NewRequest(upd)); err != nil {
		t.Fatalf("Update: %v", err)
	}
	_, err := e.client.CloseStdin(ctx, connect.NewRequest(&rpc.CloseStdinRequest{Process: sel}))
	wantCode(t, err, connect.CodeUnknown)
	stdin := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: []byte("x")}}}
	_, err = e.client.SendInput(ctx, connect.NewRequest(stdin))
	wantCode(t, err, connect.CodeInternal)
	in := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Pty{Pty: []byte("\n")}}}
	if _, err := e.client.SendInput(ctx, connect.NewRequest(in)); err != nil {
		t.Fatalf("SendInput: %v", err)
	}
	r := collectRest(t, s)
	if !strings.Contains(r.pty, "40 120") {
		t.Fatalf("output %q, want the new size 40 120", r.pty)
	}
	wantEnd(t, r.end, endOf(0, true, "exit status 0"))
}

func TestUpdateWithoutPTY(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pid, s := e.startBackground(t, ctx, bashReq("sleep 5"))
	defer s.Close()
	sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}}
	upd := &rpc.UpdateRequest{Process: sel, Pty: &rpc.PTY{Size: &rpc.PTY_Size{Cols: 1, Rows: 1}}}
	_, err := e.client.Update(ctx, connect.NewRequest(upd))
	wantCode(t, err, connect.CodeInternal)
	kill(t, e, ctx, pid)
}

func TestKeepalive(t *testing.T) {
	e := newTestEnv(t)
	r := e.run(t, bashReq("sleep 2.5; echo done"), map[string]string{"Keepalive-Ping-Interval": "1"})
	if r.keepalives < 2 || r.stdout != "done\n" {
		t.Fatalf("keepalives %d stdout %q, want >= 2 and done", r.keepalives, r.stdout)
	}
	wantEnd(t, r.end, endOf(0, true, "exit status 0"))
}

func TestStreamInput(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := bashReq("head -c 6")
	req.Stdin = proto.Bool(true)
	pid, s := e.startBackground(t, ctx, req)
	defer s.Close()
	sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}}
	cs := e.client.StreamInput(ctx)
	msgs := []*rpc.StreamInputRequest{
		{Event: &rpc.StreamInputRequest_Start{Start: &rpc.StreamInputRequest_StartEvent{Process: sel}}},
		{Event: &rpc.StreamInputRequest_Data{Data: &rpc.StreamInputRequest_DataEvent{Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: []byte("abc")}}}}},
		{Event: &rpc.StreamInputRequest_Keepalive{Keepalive: &rpc.StreamInputRequest_KeepAlive{}}},
		{Event: &rpc.StreamInputRequest_Data{Data: &rpc.StreamInputRequest_DataEvent{Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: []byte("def")}}}}},
	}
	for _, m := range msgs {
		if err := cs.Send(m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	if _, err := cs.CloseAndReceive(); err != nil {
		t.Fatalf("StreamInput: %v", err)
	}
	r := collectRest(t, s)
	if r.stdout != "abcdef" {
		t.Fatalf("stdout %q", r.stdout)
	}
}

// Orphans re-parented to envd are reaped without disturbing the exit
// statuses of envd's own processes.
func TestReapsOrphans(t *testing.T) {
	e := newTestEnv(t)
	r := e.run(t, bashReq("sleep 0.3 >/dev/null 2>&1 & echo $!; exit 7"), nil)
	wantEnd(t, r.end, endOf(7, true, "exit status 7"))
	orphan, err := strconv.Atoi(strings.TrimSpace(r.stdout))
	if err != nil {
		t.Fatalf("orphan pid from %q: %v", r.stdout, err)
	}
	waitGone(t, orphan)
}

func TestConcurrentStarts(t *testing.T) {
	e := newTestEnv(t)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			s, err := e.client.Start(ctx, connect.NewRequest(bashReq("exit "+strconv.Itoa(i))))
			if err != nil {
				errs <- err
				return
			}
			var end *rpc.ProcessEvent_EndEvent
			for s.Receive() {
				if ev := s.Msg().GetEvent().GetEnd(); ev != nil {
					end = ev
				}
			}
			if end == nil || end.GetExitCode() != int32(i) {
				errs <- errors.New("process " + strconv.Itoa(i) + ": wrong end " + end.String())
				return
			}
			errs <- s.Err()
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A killed process' stream ends even when a descendant that left its
// process group still holds the output pipe.
func TestKillEndsStreamDespiteEscapedChild(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pid, s := e.startBackground(t, ctx, bashReq("setsid sleep 30 & echo $!; sleep 100"))
	defer s.Close()
	if !s.Receive() {
		t.Fatalf("no output: %v", s.Err())
	}
	escaped, err := strconv.Atoi(strings.TrimSpace(string(s.Msg().GetEvent().GetData().GetStdout())))
	if err != nil {
		t.Fatalf("escaped pid: %v (%v)", err, s.Msg())
	}
	defer func() {
		_ = syscall.Kill(escaped, syscall.SIGKILL)
		waitGone(t, escaped)
	}()
	start := time.Now()
	kill(t, e, ctx, pid)
	r := collectRest(t, s)
	wantEnd(t, r.end, endOf(-1, false, "signal: killed"))
	if d := time.Since(start); d > drainGrace+3*time.Second {
		t.Fatalf("stream took %v to end", d)
	}
}

// Input to a process that does not read must not wedge the process handle.
func TestBlockedInputDoesNotBlockSignals(t *testing.T) {
	e := newTestEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req := bashReq("sleep 100")
	req.Stdin = proto.Bool(true)
	pid, s := e.startBackground(t, ctx, req)
	defer s.Close()
	sel := &rpc.ProcessSelector{Selector: &rpc.ProcessSelector_Pid{Pid: pid}}
	in := &rpc.SendInputRequest{Process: sel, Input: &rpc.ProcessInput{Input: &rpc.ProcessInput_Stdin{Stdin: make([]byte, 1<<20)}}}
	wctx, wcancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer wcancel()
	if _, err := e.client.SendInput(wctx, connect.NewRequest(in)); err == nil {
		t.Fatal("1 MiB of input to a process that does not read succeeded")
	}
	kill(t, e, ctx, pid)
	r := collectRest(t, s)
	wantEnd(t, r.end, endOf(-1, false, "signal: killed"))
}
