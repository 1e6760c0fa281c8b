package interpreter

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/javakernel"
)

var javaBuild struct {
	once sync.Once
	dir  string
	err  string
}

// requireJava builds the Java kernel once per test binary with the host's
// JDK, from the pinned jars (cached in the temp dir across runs).
func requireJava(t *testing.T) {
	t.Helper()
	javaBuild.once.Do(func() {
		if _, err := exec.LookPath("javac"); err != nil {
			javaBuild.err = "a JDK is required (apt-get install -y openjdk-17-jdk-headless)"
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		jars, err := javakernel.Fetch(ctx, filepath.Join(os.TempDir(), "airlock-javakernel-jars"), javakernel.Repository())
		if err != nil {
			javaBuild.err = err.Error()
			return
		}
		dir, err := os.MkdirTemp("", "airlock-javakernel-")
		if err == nil {
			err = javakernel.Stage(dir, jars)
		}
		if err != nil {
			javaBuild.err = err.Error()
			return
		}
		args := javakernel.CompileArgs(dir)
		if out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput(); err != nil {
			javaBuild.err = "javac: " + err.Error() + "\n" + string(out)
			return
		}
		javaBuild.dir = dir
	})
	if javaBuild.err != "" {
		t.Fatal(javaBuild.err)
	}
}

func newTestJavaKernel(ctx context.Context, opts KernelOptions) (Kernel, error) {
	return newJavaKernel(ctx, opts, javaBuild.dir)
}

func TestJavaKernel(t *testing.T) {
	requireJava(t)
	k := jStartKernel(t, newTestJavaKernel, map[string]string{"SANDBOX_VAR": "sbx"})
	value := func(code string) string {
		t.Helper()
		rec := kernelRun(t, k, code, nil)
		if errs := rec.errors(); len(errs) > 0 {
			t.Fatalf("%s: %+v", code, errs)
		}
		return rec.text()
	}
	if got := value("1 + 1"); got != "2" {
		t.Errorf("1 + 1 = %q", got)
	}
	if got := value(`"hi" + 1`); got != "hi1" {
		t.Errorf("a String result is shown unquoted: %q", got)
	}
	if got := value("int x = 5;\nint y = x * 2;\ny"); got != "10" {
		t.Errorf("several snippets in one cell: %q", got)
	}
	if got := value("int z = 3;"); got != "" {
		t.Errorf("a declaration has no result: %q", got)
	}
	if got := value("String nothing = null;\nnothing"); got != "null" {
		t.Errorf("a null value: %q", got)
	}
	if got := value("import java.util.*;\nList<Integer> l = new ArrayList<>(List.of(3, 1, 2)); Collections.sort(l); l"); got != "[1, 2, 3]" {
		t.Errorf("imports and generics: %q", got)
	}
	if got := value("static int twice(int n) { return 2 * n; }\ntwice(21)"); got != "42" {
		t.Errorf("methods: %q", got)
	}
	if got := value(`System.getProperty("SANDBOX_VAR") + System.getenv("SANDBOX_VAR")`); got != "sbxsbx" {
		t.Errorf("sandbox env as property and variable: %q", got)
	}
	rec := kernelRun(t, k, `System.out.println("per:" + System.getProperty("RUN_VAR") + System.getenv("RUN_VAR"));`, map[string]string{"RUN_VAR": "r"})
	if got := rec.stdout(); got != "per:rr\n" {
		t.Errorf("per-run env: %q", got)
	}
	if got := value(`System.getProperty("RUN_VAR") + System.getenv("RUN_VAR")`); got != "nullnull" {
		t.Errorf("per-run env restored after the run: %q", got)
	}
	if got := value(`new ProcessBuilder("sh", "-c", "echo $SANDBOX_VAR").start().getInputStream().readAllBytes().length`); got != "4" {
		t.Errorf("child processes see the env: %q", got)
	}

	rec = kernelRun(t, k, "int q = 1 / 0;", nil)
	if errs := rec.errors(); len(errs) != 1 || errs[0].Name != "ArithmeticException" || errs[0].Value != "/ by zero" {
		t.Errorf("runtime exception = %+v", errs)
	}
	if errs := rec.errors(); len(errs) == 1 && (strings.Contains(errs[0].Traceback, "AirlockJavaKernel") || !strings.Contains(errs[0].Traceback, "at <cell> (in the cell)")) {
		t.Errorf("traceback shows the kernel, not the cell:\n%s", errs[0].Traceback)
	}
	rec = kernelRun(t, k, "undefinedThing + 1", nil)
	if errs := rec.errors(); len(errs) != 1 || errs[0].Name != "CompilationException" || !strings.Contains(errs[0].Value, "cannot find symbol") {
		t.Errorf("compile error = %+v", errs)
	}
	rec = kernelRun(t, k, `throw new java.io.IOException("checked");`, nil)
	if errs := rec.errors(); len(errs) != 1 || errs[0].Name != "IOException" || errs[0].Value != "checked" {
		t.Errorf("checked exception = %+v", errs)
	}
	rec = kernelRun(t, k, "static int down(int n) { return down(n + 1) + 1; }\ndown(0)", nil)
	if errs := rec.errors(); len(errs) != 1 || !strings.Contains(errs[0].Value, "StackOverflowError") {
		t.Errorf("stack overflow = %+v", errs)
	}
	if got := value("x + z"); got != "8" {
		t.Errorf("state kept after errors: %q", got)
	}
}

// text is the main result's text/plain, "" when there is none.
func (r *kernelRecorder) text() string {
	for _, res := range r.results() {
		if res.IsMainResult {
			return res.Text
		}
	}
	return ""
}
