package sandbox_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

func TestCommandsRun(t *testing.T) {
	sbx := newSandbox(t, sandbox.CreateOptions{})
	tests := []struct {
		name       string
		cmd        string
		opts       *sandbox.RunOptions
		wantStdout string
		wantStderr string
		wantExit   int
	}{
		{name: "stdout", cmd: "echo hello", wantStdout: "hello\n"},
		{name: "stderr", cmd: "echo oops >&2", wantStderr: "oops\n"},
		{name: "exit code", cmd: "echo out; echo err >&2; exit 3", wantStdout: "out\n", wantStderr: "err\n", wantExit: 3},
		{name: "envs", cmd: "echo $A-$B", opts: &sandbox.RunOptions{Envs: map[string]string{"A": "1", "B": "two"}}, wantStdout: "1-two\n"},
		{name: "cwd", cmd: "pwd", opts: &sandbox.RunOptions{Cwd: "/tmp"}, wantStdout: "/tmp\n"},
		{name: "default user and home", cmd: "whoami; pwd", wantStdout: "user\n/home/user\n"},
		{name: "user root", cmd: "whoami", opts: &sandbox.RunOptions{User: "root"}, wantStdout: "root\n"},
		{name: "utf8", cmd: "printf 'h\\xc3\\xa9llo \\xe2\\x82\\xac'", wantStdout: "héllo €"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := sbx.Commands.Run(ctxT(t, time.Minute), tc.cmd, tc.opts)
			if tc.wantExit != 0 {
				var ee *sandbox.CommandExitError
				if !errors.As(err, &ee) || !errors.Is(err, sandbox.ErrSandbox) {
					t.Fatalf("err = %v, want *CommandExitError", err)
				}
				if ee.ExitCode != tc.wantExit || ee.Stdout != tc.wantStdout || ee.Stderr != tc.wantStderr || ee.ErrorMessage != "exit status 3" {
					t.Fatalf("exit error = %+v", ee)
				}
				if res == nil || res.ExitCode != tc.wantExit {
					t.Fatalf("result = %+v", res)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Stdout != tc.wantStdout || res.Stderr != tc.wantStderr || res.ExitCode != 0 {
				t.Fatalf("result = %+v", res)
			}
		})
	}

	t.Run("bad cwd", func(t *testing.T) {
		_, err := sbx.Commands.Run(ctxT(t, time.Minute), "true", &sandbox.RunOptions{Cwd: "/does/not/exist"})
		if !errors.Is(err, sandbox.ErrInvalidArgument) {
			t.Fatalf("err = %v, want ErrInvalidArgument", err)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		_, err := sbx.Commands.Run(ctxT(t, time.Minute), "true", &sandbox.RunOptions{User: "nobody-here"})
		if !errors.Is(err, sandbox.ErrAuthentication) {
			t.Fatalf("err = %v, want ErrAuthentication", err)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		start := time.Now()
		_, err := sbx.Commands.Run(ctxT(t, time.Minute), "sleep 30", &sandbox.RunOptions{Timeout: time.Second})
		if !errors.Is(err, sandbox.ErrTimeout) || time.Since(start) > 10*time.Second {
			t.Fatalf("err = %v after %v, want ErrTimeout after ~1s", err, time.Since(start))
		}
	})
	t.Run("streaming callbacks and writers", func(t *testing.T) {
		var mu sync.Mutex
		var chunks []string
		var stdout, stderr bytes.Buffer
		res, err := sbx.Commands.Run(ctxT(t, time.Minute), "for i in 1 2 3; do echo line$i; sleep 0.2; done; echo e >&2", &sandbox.RunOptions{
			OnStdout: func(s string) { mu.Lock(); chunks = append(chunks, s); mu.Unlock() },
			Stdout:   &stdout, Stderr: &stderr,
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) < 3 || strings.Join(chunks, "") != "line1\nline2\nline3\n" {
			t.Fatalf("chunks = %q: want output delivered as it arrives", chunks)
		}
		if stdout.String() != res.Stdout || stderr.String() != "e\n" {
			t.Fatalf("writers got %q / %q", stdout.String(), stderr.String())
		}
	})
	t.Run("stdin", func(t *testing.T) {
		ctx := ctxT(t, time.Minute)
		h, err := sbx.Commands.Start(ctx, "cat", &sandbox.RunOptions{Stdin: true})
		if err != nil {
			t.Fatal(err)
		}
		if err := h.SendStdin(ctx, []byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		if err := h.CloseStdin(ctx); err != nil {
			t.Fatal(err)
		}
		res, err := h.Wait(ctx)
		if err != nil || res.Stdout != "ping\n" {
			t.Fatalf("cat = %+v, %v", res, err)
		}
	})
	t.Run("stdin closed by default", func(t *testing.T) {
		// Without Stdin the process reads EOF at once instead of hanging.
		res, err := sbx.Commands.Run(ctxT(t, time.Minute), "cat; echo done", nil)
		if err != nil || res.Stdout != "done\n" {
			t.Fatalf("res = %+v, %v", res, err)
		}
	})
}

func TestCommandsBackground(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	sbx := newSandbox(t, sandbox.CreateOptions{})

	var mu sync.Mutex
	var first strings.Builder
	h, err := sbx.Commands.Start(ctx, "for i in $(seq 1 100); do echo tick$i; sleep 0.1; done", &sandbox.RunOptions{
		OnStdout: func(s string) { mu.Lock(); first.WriteString(s); mu.Unlock() },
		Tag:      "ticker",
	})
	if err != nil {
		t.Fatal(err)
	}
	if h.PID == 0 {
		t.Fatal("no pid")
	}
	procs, err := sbx.Commands.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(procs, func(p sandbox.ProcessInfo) bool { return p.PID == h.PID })
	if i < 0 || procs[i].Cmd != "/bin/bash" || procs[i].Tag != "ticker" || !strings.Contains(strings.Join(procs[i].Args, " "), "tick") {
		t.Fatalf("List = %+v, want pid %d", procs, h.PID)
	}

	time.Sleep(500 * time.Millisecond)
	h.Disconnect()
	if _, err := h.Wait(ctx); !errors.Is(err, sandbox.ErrSandbox) {
		t.Fatalf("Wait after Disconnect: %v", err)
	}

	// A second, independent client re-attaches by PID: the process kept running.
	other, err := sandbox.Connect(ctx, sbx.ID, 0, opts()...)
	if err != nil {
		t.Fatal(err)
	}
	var mu2 sync.Mutex
	var later strings.Builder
	h2, err := other.Commands.Connect(ctx, h.PID, &sandbox.RunOptions{
		OnStdout: func(s string) { mu2.Lock(); later.WriteString(s); mu2.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu2.Lock()
		n := strings.Count(later.String(), "tick")
		mu2.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no output after reconnect: %q", later.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	mu.Lock()
	if !strings.HasPrefix(first.String(), "tick1\n") {
		t.Errorf("first client got %q", first.String())
	}
	mu.Unlock()

	if ok, err := other.Commands.Kill(ctx, h.PID); !ok || err != nil {
		t.Fatalf("Kill = %v, %v", ok, err)
	}
	res, err := h2.Wait(ctx)
	var ee *sandbox.CommandExitError
	if !errors.As(err, &ee) || ee.ExitCode != -1 || res.ExitCode != -1 {
		t.Fatalf("Wait after kill = %+v, %v; want exit -1 CommandExitError", res, err)
	}
	if ok, err := sbx.Commands.Kill(ctx, h.PID); ok || err != nil {
		t.Fatalf("second Kill = %v, %v; want false, nil", ok, err)
	}
	if _, err := sbx.Commands.Connect(ctx, 999999, nil); !errors.Is(err, sandbox.ErrNotFound) {
		t.Fatalf("Connect to unknown pid: %v, want ErrNotFound", err)
	}
	procs, err = sbx.Commands.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(procs, func(p sandbox.ProcessInfo) bool { return p.PID == h.PID }) {
		t.Fatalf("killed process still listed: %+v", procs)
	}
}

func TestPTY(t *testing.T) {
	ctx := ctxT(t, 2*time.Minute)
	sbx := newSandbox(t, sandbox.CreateOptions{})
	var mu sync.Mutex
	var out bytes.Buffer
	h, err := sbx.PTY.Create(ctx, sandbox.PTYOptions{Cols: 80, Rows: 24, OnData: func(b []byte) {
		mu.Lock()
		out.Write(b)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	waitFor := func(substr string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			ok := strings.Contains(out.String(), substr)
			mu.Unlock()
			if ok {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("PTY output has no %q: %q", substr, out.String())
	}
	if err := sbx.PTY.SendInput(ctx, h.PID, []byte("echo $TERM-$((6*7))\n")); err != nil {
		t.Fatal(err)
	}
	waitFor("xterm-256color-42")
	if err := sbx.PTY.Resize(ctx, h.PID, 100, 30); err != nil {
		t.Fatal(err)
	}
	if err := sbx.PTY.SendInput(ctx, h.PID, []byte("stty size\n")); err != nil {
		t.Fatal(err)
	}
	waitFor("30 100")
	if ok, err := sbx.PTY.Kill(ctx, h.PID); !ok || err != nil {
		t.Fatalf("Kill = %v, %v", ok, err)
	}
	var ee *sandbox.CommandExitError
	if _, err := h.Wait(ctx); !errors.As(err, &ee) {
		t.Fatalf("Wait after kill: %v", err)
	}
	// Resizing a plain (non-PTY) process is refused by envd.
	bg, err := sbx.Commands.Start(ctx, "sleep 30", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bg.Kill(ctx)
	if err := sbx.PTY.Resize(ctx, bg.PID, 10, 10); err == nil {
		t.Fatal("Resize of a non-PTY process succeeded")
	}
}
