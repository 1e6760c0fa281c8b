package interpreter

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/airlock-sandbox/airlock/internal/javakernel"
)

//go:embed e2b_display.py
var e2bDisplaySource string

// PythonSpec runs ipykernel (as Debian's kernelspec, with /usr/bin/python3) with Airlock's display hooks (charts, DataFrame
// data) loaded as the in-memory module e2b_display.
func PythonSpec() JupyterSpec {
	return JupyterSpec{
		Language: "python",
		Argv:     []string{"/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"},
		Env: map[string]string{
			"MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1",
			// Quiets debugpy's frozen-modules warning at every kernel start.
			"PYDEVD_DISABLE_FILE_VALIDATION": "1",
		},
		Startup: "def __airlock_boot(src):\n" +
			"    import sys, types\n" +
			"    m = types.ModuleType('e2b_display')\n" +
			"    m.__file__ = '<airlock>/e2b_display.py'\n" +
			"    exec(compile(src, m.__file__, 'exec'), m.__dict__)\n" +
			"    sys.modules['e2b_display'] = m\n" +
			"    m.install(get_ipython())\n" +
			"__airlock_boot(" + pyString(e2bDisplaySource) + ")\n" +
			"del __airlock_boot\n",
		SetEnv:  func(v map[string]string) string { return "__import__('e2b_display').set_env(" + pyDict(v) + ")" },
		PushEnv: func(v map[string]string) string { return "__import__('e2b_display').push_env(" + pyDict(v) + ")" },
		PopEnv:  "__import__('e2b_display').pop_env()",
	}
}

// NewPythonKernel starts an IPython kernel.
func NewPythonKernel(ctx context.Context, opts KernelOptions) (Kernel, error) {
	opts.Language = "python"
	return NewJupyterKernel(ctx, opts, PythonSpec())
}

// RSpec runs IRkernel, as its kernelspec (/usr/share/jupyter/kernels/ir).
func RSpec() JupyterSpec {
	return JupyterSpec{
		Language: "r",
		Argv:     []string{"R", "--slave", "-e", "IRkernel::main()", "--args", "{connection_file}"},
		Startup:  rNoStdin,
		SetEnv:   rSetEnv,
		PushEnv: func(v map[string]string) string {
			return "assign('.airlock_env', c(get0('.airlock_env', envir = globalenv(), ifnotfound = list()), " +
				"list(Sys.getenv(" + rNames(v) + ", unset = NA, names = TRUE))), envir = globalenv()); " + rSetEnv(v)
		},
		PopEnv: "local({ s <- get0('.airlock_env', envir = globalenv(), ifnotfound = list()); " +
			"if (length(s) > 0) { old <- s[[length(s)]]; " +
			"for (n in names(old)) if (is.na(old[[n]])) Sys.unsetenv(n) else do.call(Sys.setenv, setNames(list(old[[n]]), n)); " +
			"assign('.airlock_env', s[-length(s)], envir = globalenv()) } })",
	}
}

// rNoStdin makes R's readline fail at once: IRkernel's own readline asks
// the client for input and waits forever, and E2B's interpreter has no
// stdin (ipykernel's input() fails the same way, StdinNotImplementedError).
// IRkernel puts its readline back into base before every cell through its
// replace_in_package, so that is where ours goes in. menu() already fails
// ("cannot be used non-interactively"); readLines("stdin") and scan() see
// end of input.
const rNoStdin = `local({
  ns <- asNamespace("IRkernel")
  replace <- get("replace_in_package", envir = ns)
  nostdin <- function(prompt = "") stop("StdinNotImplementedError: reading from stdin is not supported; the code interpreter has no stdin", call. = FALSE)
  unlockBinding("replace_in_package", ns)
  assign("replace_in_package", function(pkg, name, FN) replace(pkg, name, if (identical(name, "readline")) nostdin else FN), envir = ns)
  lockBinding("replace_in_package", ns)
})`

// NewRKernel starts an IRkernel.
func NewRKernel(ctx context.Context, opts KernelOptions) (Kernel, error) {
	opts.Language = "r"
	return NewJupyterKernel(ctx, opts, RSpec())
}

// pyString quotes s as a Python string literal (JSON strings are valid
// Python literals).
func pyString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// pyDict renders a str→str dict literal.
func pyDict(v map[string]string) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// rString quotes s as an R string literal.
func rString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func sortedKeys(v map[string]string) []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func rNames(v map[string]string) string {
	parts := make([]string, 0, len(v))
	for _, k := range sortedKeys(v) {
		parts = append(parts, rString(k))
	}
	return "c(" + strings.Join(parts, ", ") + ")"
}

func rSetEnv(v map[string]string) string {
	parts := make([]string, 0, len(v))
	for _, k := range sortedKeys(v) {
		parts = append(parts, rString(k)+" = "+rString(v[k]))
	}
	return "do.call(Sys.setenv, list(" + strings.Join(parts, ", ") + "))"
}

// JavaSpec runs Airlock's Java kernel (JShell on JJava's kernel base,
// internal/javakernel) compiled in dir. A JVM takes SIGINT as "exit", so
// interrupts go as messages; env vars are set by a directive the kernel
// handles itself, as system properties (what E2B's Java kernel reads) and
// in its process environment.
func JavaSpec(dir string) JupyterSpec {
	return JupyterSpec{
		Language:      "java",
		Argv:          javakernel.Argv(dir),
		InterruptMode: "message",
		SetEnv:        func(v map[string]string) string { return javaEnv("set", v) },
		PushEnv:       func(v map[string]string) string { return javaEnv("push", v) },
		PopEnv:        javaEnv("pop", nil),
	}
}

func javaEnv(op string, v map[string]string) string {
	b, _ := json.Marshal(map[string]any{"op": op, "vars": v})
	return "//airlock:env " + string(b)
}

// NewJavaKernel starts the Java kernel installed in the template.
func NewJavaKernel(ctx context.Context, opts KernelOptions) (Kernel, error) {
	return newJavaKernel(ctx, opts, javakernel.Dir)
}

// newJavaKernel starts the Java kernel compiled in dir. It starts in
// opts.Cwd, which the JVM takes as user.dir (E2B's Java contexts' cwd),
// and sets the sandbox's env vars as system properties too.
func newJavaKernel(ctx context.Context, opts KernelOptions, dir string) (Kernel, error) {
	opts.Language = "java"
	spec := JavaSpec(dir)
	if len(opts.Env) > 0 {
		spec.Startup = spec.SetEnv(opts.Env)
	}
	return NewJupyterKernel(ctx, opts, spec)
}
