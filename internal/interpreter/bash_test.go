package interpreter

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestBash(t *testing.T, opts KernelOptions) *bashKernel {
	t.Helper()
	if opts.Cwd == "" {
		opts.Cwd = t.TempDir()
	}
	opts.Language = "bash"
	k, err := NewBashKernel(context.Background(), opts)
	if err != nil {
		t.Fatalf("NewBashKernel: %v", err)
	}
	bk := k.(*bashKernel)
	pgid := bk.sh.cmd.Process.Pid
	t.Cleanup(func() {
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left := kernelLiveInGroup(pgid); len(left) > 0 {
			t.Errorf("processes left in group %d after Close: %v", pgid, left)
		}
	})
	return bk
}

func TestBashCells(t *testing.T) {
	k := newTestBash(t, KernelOptions{})
	tests := []struct {
		name      string
		code      string
		stdout    string
		errName   string
		errValue  string
		stderrHas string
	}{
		{name: "define state", code: "x=5; f(){ echo \"f:$1\"; }; alias hi='echo hi'; cd /tmp; export FOO=bar", stdout: ""},
		{name: "state persists", code: "echo $x; f 1; pwd; bash -c 'echo $FOO'; hi", stdout: "5\nf:1\n/tmp\nbar\nhi\n"},
		{name: "no trailing newline", code: "echo -n abc", stdout: "abc"},
		{name: "output then no newline then more", code: "printf 'a\\nb'; printf 'c'", stdout: "a\nbc"},
		{name: "quoting", code: `printf '%s\n' "a'b\"c\\d é	tab" $'x\ty'`, stdout: "a'b\"c\\d é\ttab\nx\ty\n"},
		{name: "false", code: "false", errName: "ExitCode", errValue: "1"},
		{name: "status of last command", code: "echo hi; (exit 3)", stdout: "hi\n", errName: "ExitCode", errValue: "3"},
		{name: "earlier failure ignored", code: "false; true"},
		{name: "command not found", code: "no-such-cmd-airlock", errName: "ExitCode", errValue: "127", stderrHas: "not found"},
		{name: "syntax error", code: "if then", errName: "ExitCode", errValue: "2", stderrHas: "syntax error"},
		{name: "usable after syntax error", code: "echo $x", stdout: "5\n"},
		{name: "stdin is empty", code: "cat; echo done", stdout: "done\n"},
		{name: "marker-like output", code: "printf '\\036airlock-x#0\\036'", stdout: "\x1eairlock-x#0\x1e"},
		{name: "multi-line", code: "for i in 1 2 3; do\n  echo $i\ndone", stdout: "1\n2\n3\n"},
		{name: "heredoc", code: "cat <<EOF\nhello $x\nEOF", stdout: "hello 5\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := kernelRun(t, k, tc.code, nil)
			if got := rec.stdout(); got != tc.stdout {
				t.Errorf("stdout = %q, want %q", got, tc.stdout)
			}
			errs := rec.errors()
			switch {
			case tc.errName == "" && len(errs) > 0:
				t.Errorf("unexpected errors %+v", errs)
			case tc.errName != "" && len(errs) != 1:
				t.Errorf("errors = %+v, want one %s", errs, tc.errName)
			case tc.errName != "" && (errs[0].Name != tc.errName || errs[0].Value != tc.errValue):
				t.Errorf("error = %+v, want %s %s", errs[0], tc.errName, tc.errValue)
			}
			if tc.stderrHas != "" && !strings.Contains(rec.stderr(), tc.stderrHas) {
				t.Errorf("stderr %q lacks %q", rec.stderr(), tc.stderrHas)
			}
		})
	}
}

func TestBashExecutionCountAndRestart(t *testing.T) {
	k := newTestBash(t, KernelOptions{})
	for want := 1; want <= 3; want++ {
		if got := kernelRun(t, k, "x=1", nil).count(); got != want {
			t.Fatalf("execution count = %d, want %d", got, want)
		}
	}
	if err := k.Restart(context.Background()); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	rec := kernelRun(t, k, `echo "${x-unset}"`, nil)
	if rec.count() != 1 || rec.stdout() != "unset\n" {
		t.Fatalf("after restart: count %d stdout %q, want 1 and unset", rec.count(), rec.stdout())
	}
}

func TestBashEnvAndCwd(t *testing.T) {
	dir := t.TempDir()
	k := newTestBash(t, KernelOptions{Cwd: dir, Env: map[string]string{"BASE": "1"}})
	if got := kernelRun(t, k, "pwd", nil).stdout(); got != dir+"\n" {
		t.Fatalf("pwd = %q, want %q", got, dir)
	}
	got := kernelRun(t, k, `echo "$BASE $ONE"; sh -c 'echo "$ONE"'`, map[string]string{"ONE": "a b'c", "BASE": "2"}).stdout()
	if got != "2 a b'c\na b'c\n" {
		t.Fatalf("with per-execution env: %q", got)
	}
	got = kernelRun(t, k, `echo "$BASE ${ONE-unset}"; sh -c 'echo "${ONE-unset}"'`, nil).stdout()
	if got != "1 unset\nunset\n" {
		t.Fatalf("env not restored: %q", got)
	}
	err := k.Execute(context.Background(), "true", map[string]string{"BAD-NAME": "x"}, &kernelRecorder{})
	if err == nil {
		t.Fatal("invalid env var name accepted")
	}
}

func TestBashStreamsOrderAndSize(t *testing.T) {
	k := newTestBash(t, KernelOptions{})
	rec := kernelRun(t, k, "echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c; sleep 0.1; echo -n d >&2", nil)
	if got := rec.streams(); got != "a\nE:b\nc\nE:d" {
		t.Fatalf("streams = %q", got)
	}
	const size = 1 << 20
	rec = kernelRun(t, k, fmt.Sprintf("head -c %d /dev/zero | tr '\\0' a; head -c %d /dev/zero | tr '\\0' b >&2", size, size), nil)
	if out, errOut := rec.stdout(), rec.stderr(); len(out) != size || len(errOut) != size ||
		strings.Trim(out, "a") != "" || strings.Trim(errOut, "b") != "" {
		t.Fatalf("large output: stdout %d bytes, stderr %d bytes", len(out), len(errOut))
	}
}

func TestBashInterrupt(t *testing.T) {
	k := newTestBash(t, KernelOptions{})
	kernelRun(t, k, "x=kept", nil)
	tests := []struct{ name, code string }{
		{"external command", "echo start; sleep 100; echo not-reached"},
		{"builtin loop", "echo start; while true; do :; done"},
		{"ignores SIGINT", "echo start; trap '' INT; sleep 100; trap - INT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			rec := &kernelRecorder{}
			start := time.Now()
			err := k.Execute(ctx, tc.code, nil, rec)
			elapsed := time.Since(start)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Execute error = %v, want deadline exceeded", err)
			}
			if elapsed > 2500*time.Millisecond {
				t.Fatalf("interrupt took %v", elapsed)
			}
			if errs := rec.errors(); len(errs) != 1 || errs[0].Name != "Interrupted" {
				t.Fatalf("errors = %+v", errs)
			}
			if rec.stdout() != "start\n" {
				t.Fatalf("stdout = %q", rec.stdout())
			}
			if got := kernelRun(t, k, "echo $x", nil).stdout(); got != "kept\n" {
				t.Fatalf("after interrupt: %q", got)
			}
		})
	}
}

func TestBashExit(t *testing.T) {
	k := newTestBash(t, KernelOptions{})
	kernelRun(t, k, "x=1", nil)
	rec := kernelRun(t, k, "echo before; exit 7", nil)
	if rec.stdout() != "before\n" {
		t.Errorf("stdout = %q", rec.stdout())
	}
	errs := rec.errors()
	if len(errs) != 1 || errs[0].Name != "ShellExited" || !strings.Contains(errs[0].Value, "status 7") {
		t.Fatalf("errors = %+v", errs)
	}
	rec = kernelRun(t, k, `echo "${x-unset}"`, nil)
	if rec.stdout() != "unset\n" || rec.count() != 3 {
		t.Fatalf("after exit: stdout %q count %d", rec.stdout(), rec.count())
	}
}

func TestBashConcurrentKernels(t *testing.T) {
	kernels := []*bashKernel{newTestBash(t, KernelOptions{}), newTestBash(t, KernelOptions{})}
	var wg sync.WaitGroup
	for i, k := range kernels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if err := k.Execute(ctx, fmt.Sprintf("v=%d; sleep 0.2", i), nil, &kernelRecorder{}); err != nil {
				t.Errorf("kernel %d: %v", i, err)
				return
			}
			rec := &kernelRecorder{}
			if err := k.Execute(ctx, "echo $v", nil, rec); err != nil {
				t.Errorf("kernel %d: %v", i, err)
				return
			}
			if want := fmt.Sprintf("%d\n", i); rec.stdout() != want {
				t.Errorf("kernel %d: got %q, want %q", i, rec.stdout(), want)
			}
		}()
	}
	wg.Wait()
}

func TestBashCloseKillsEverything(t *testing.T) {
	k, err := NewBashKernel(context.Background(), KernelOptions{Language: "bash", Cwd: t.TempDir()})
	if err != nil {
		t.Fatalf("NewBashKernel: %v", err)
	}
	pid := k.(*bashKernel).sh.cmd.Process.Pid
	kernelRun(t, k, "sleep 100 & sleep 101 &", nil)
	if n := len(kernelLiveInGroup(pid)); n < 3 {
		t.Fatalf("expected shell and 2 background jobs, found %d processes", n)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if left := kernelLiveInGroup(pid); len(left) > 0 || kernelProcAlive(pid) {
		t.Fatalf("left after Close: %v", left)
	}
	if err := k.Execute(context.Background(), "true", nil, &kernelRecorder{}); !errors.Is(err, ErrKernelDied) {
		t.Fatalf("Execute after Close = %v, want ErrKernelDied", err)
	}
}
