package interpreter

import (
	"context"
	"strings"
	"testing"
	"time"
)

// dialect is how one language says what the shared kernel suite checks;
// every kernel must pass the same scenarios, as every store and driver
// passes its conformance suite. (TypeScript runs on the JavaScript kernel;
// TestNodeTypeScript covers its transpiling.)
type dialect struct {
	factory  Factory
	lang     string
	require  func(t *testing.T) // the kernel's runtime is installed (fails, never skips)
	setVar   string             // sets a variable to 41
	printVar string             // prints that variable and a newline
	stderr   string             // prints "oops" to stderr
	fail     string             // raises an error
	printEnv string             // prints $SUITE_VAR and a newline
	printCwd string             // prints the working directory and a newline
	loop     string             // runs until interrupted
}

var dialects = []dialect{
	{factory: NewBashKernel, lang: "bash", require: func(*testing.T) {},
		setVar: "v=41", printVar: "echo $v", stderr: "echo oops >&2", fail: "false",
		printEnv: `echo "$SUITE_VAR"`, printCwd: "pwd", loop: "while :; do :; done"},
	{factory: NewNodeKernel, lang: "javascript", require: func(*testing.T) {},
		setVar: "var v = 41", printVar: "console.log(v)", stderr: "console.error('oops')", fail: "throw new Error('bad')",
		printEnv: "console.log(process.env.SUITE_VAR)", printCwd: "console.log(process.cwd())", loop: "while (true) {}"},
	{factory: NewPythonKernel, lang: "python", require: requirePython,
		setVar: "v = 41", printVar: "print(v)", stderr: "import sys; print('oops', file=sys.stderr)", fail: "raise ValueError('bad')",
		printEnv: "import os; print(os.environ.get('SUITE_VAR'))", printCwd: "import os; print(os.getcwd())", loop: "while True: pass"},
	{factory: NewRKernel, lang: "r", require: requireR,
		setVar: "v <- 41", printVar: "cat(v, '\\n', sep='')", stderr: "message('oops')", fail: "stop('bad')",
		printEnv: "cat(Sys.getenv('SUITE_VAR'), '\\n', sep='')", printCwd: "cat(getwd(), '\\n', sep='')", loop: "repeat {}"},
	{factory: newTestJavaKernel, lang: "java", require: requireJava,
		setVar: "int v = 41;", printVar: "System.out.println(v);", stderr: `System.err.println("oops");`, fail: `throw new RuntimeException("bad");`,
		printEnv: `System.out.println(System.getenv("SUITE_VAR"));`, printCwd: `System.out.println(System.getProperty("user.dir"));`, loop: "while (true) {}"},
}

func TestKernelSuite(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.lang, func(t *testing.T) {
			d.require(t)
			cwd := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			k, err := d.factory(ctx, KernelOptions{Language: d.lang, Cwd: cwd, Env: map[string]string{"SUITE_VAR": "from-sandbox"}})
			cancel()
			if err != nil {
				t.Fatalf("start: %v", err)
			}
			t.Cleanup(func() {
				if err := k.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			out := func(code string, env map[string]string) *kernelRecorder { return kernelRun(t, k, code, env) }

			first := out(d.setVar, nil)
			if got := out(d.printVar, nil).stdout(); got != "41\n" {
				t.Errorf("state between cells: %q", got)
			}
			if c := out(d.printVar, nil).count(); c >= 0 && first.count() >= 0 && c <= first.count() {
				t.Errorf("execution count did not grow: %d then %d", first.count(), c)
			}
			if got := out(d.stderr, nil).stderr(); !strings.Contains(got, "oops") {
				t.Errorf("stderr: %q", got)
			}
			if errs := out(d.fail, nil).errors(); len(errs) != 1 || errs[0].Name == "" {
				t.Errorf("a failing cell reported %+v", errs)
			}
			if got := out(d.printVar, nil).stdout(); got != "41\n" {
				t.Errorf("state after an error: %q", got)
			}
			if got := out(d.printEnv, nil).stdout(); got != "from-sandbox\n" {
				t.Errorf("sandbox env: %q", got)
			}
			if got := out(d.printEnv, map[string]string{"SUITE_VAR": "per-exec"}).stdout(); got != "per-exec\n" {
				t.Errorf("per-execution env: %q", got)
			}
			if got := out(d.printEnv, nil).stdout(); got != "from-sandbox\n" {
				t.Errorf("env after the execution: %q, want the sandbox's again", got)
			}
			if got := out(d.printCwd, nil).stdout(); got != cwd+"\n" {
				t.Errorf("cwd %q, want %q", got, cwd)
			}

			// Cancelling the context interrupts the cell; the kernel and its state survive.
			ictx, icancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			done := make(chan struct{})
			go func() {
				defer close(done)
				_ = k.Execute(ictx, d.loop, nil, &kernelRecorder{})
			}()
			select {
			case <-done:
			case <-time.After(60 * time.Second):
				t.Fatal("an interrupted cell did not return")
			}
			icancel()
			if got := out(d.printVar, nil).stdout(); got != "41\n" {
				t.Errorf("state after an interrupt: %q", got)
			}

			rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Minute)
			err = k.Restart(rctx)
			rcancel()
			if err != nil {
				t.Fatalf("Restart: %v", err)
			}
			if got := out(d.printVar, nil).stdout(); got == "41\n" {
				t.Error("state survived a restart")
			}
		})
	}
}
