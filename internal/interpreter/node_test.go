package interpreter

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// nodeTypeScriptVersion is the typescript npm package the tests install.
const nodeTypeScriptVersion = "5.6.3"

func newTestNode(t *testing.T, opts KernelOptions) *nodeKernel {
	t.Helper()
	if opts.Cwd == "" {
		opts.Cwd = t.TempDir()
	}
	if opts.Language == "" {
		opts.Language = "javascript"
	}
	k, err := NewNodeKernel(context.Background(), opts)
	if err != nil {
		t.Fatalf("NewNodeKernel: %v", err)
	}
	nk := k.(*nodeKernel)
	t.Cleanup(func() {
		// The process may have been replaced: look at the current one.
		pid := -1
		if nk.proc != nil {
			pid = nk.proc.cmd.Process.Pid
		}
		if err := k.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if left := kernelLiveInGroup(pid); pid > 0 && len(left) > 0 {
			t.Errorf("processes left in group %d after Close: %v", pid, left)
		}
	})
	return nk
}

// nodeCell is one step of a table: code and what it must produce.
type nodeCell struct {
	name     string
	code     string
	env      map[string]string
	stdout   string
	stderr   string
	result   string // main result text; "" means no result
	json     map[string]any
	errName  string
	errValue string // substring of the error value
}

func runNodeCells(t *testing.T, k Kernel, cells []nodeCell) {
	t.Helper()
	for _, tc := range cells {
		t.Run(tc.name, func(t *testing.T) {
			rec := kernelRun(t, k, tc.code, tc.env)
			if got := rec.stdout(); got != tc.stdout {
				t.Errorf("stdout = %q, want %q", got, tc.stdout)
			}
			if got := rec.stderr(); got != tc.stderr {
				t.Errorf("stderr = %q, want %q", got, tc.stderr)
			}
			res := rec.results()
			switch {
			case tc.result == "" && len(res) > 0:
				t.Errorf("unexpected results %+v", res)
			case tc.result != "" && len(res) != 1:
				t.Errorf("results = %+v, want one %q", res, tc.result)
			case tc.result != "":
				if !res[0].IsMainResult || res[0].Text != tc.result {
					t.Errorf("result = %+v, want main result %q", res[0], tc.result)
				}
				if !reflect.DeepEqual(res[0].JSON, tc.json) {
					t.Errorf("result json = %#v, want %#v", res[0].JSON, tc.json)
				}
			}
			errs := rec.errors()
			switch {
			case tc.errName == "" && len(errs) > 0:
				t.Errorf("unexpected errors %+v", errs)
			case tc.errName != "" && len(errs) != 1:
				t.Errorf("errors = %+v, want one %s", errs, tc.errName)
			case tc.errName != "" && (errs[0].Name != tc.errName || !strings.Contains(errs[0].Value, tc.errValue)):
				t.Errorf("error = %+v, want %s containing %q", errs[0], tc.errName, tc.errValue)
			}
		})
	}
}

func TestNodeCells(t *testing.T) {
	k := newTestNode(t, KernelOptions{})
	runNodeCells(t, k, []nodeCell{
		{name: "declaration has no result", code: "const x = 1"},
		{name: "state persists", code: "x + 1", result: "2"},
		{name: "const redeclared", code: "const x = 10\nx", result: "10"},
		{name: "let and var redeclared", code: "let y = [1, 2]; var z = 3\nlet y = [1]; y.push(z); y", result: "[ 1, 3 ]"},
		{name: "plain object is json too", code: "({a: 1, b: 'two', c: [true, null]})", result: "{ a: 1, b: 'two', c: [ true, null ] }",
			json: map[string]any{"a": float64(1), "b": "two", "c": []any{true, nil}}},
		{name: "string result", code: "'hello'", result: "'hello'"},
		{name: "bare object literal", code: "{a: 1}", result: "{ a: 1 }", json: map[string]any{"a": float64(1)}},
		{name: "bare block", code: "{ let inBlock = 1; console.log(inBlock) }", stdout: "1\n"},
		{name: "non-plain object has no json", code: "new Map([[1, 2]])", result: "Map(1) { 1 => 2 }"},
		{name: "comments and regex", code: "// const hidden = 1\nconst re = /a\\/\\/b/ /* x */\nre.test('a//b')", result: "true"},
		{name: "await in function only", code: "const af = async () => { await 1; return 2 }\naf", result: "[AsyncFunction: af]"},
		{name: "for await", code: "let total = 0\nfor await (const n of [1, 2]) { total += n }\ntotal", result: "3"},
		{name: "undefined has no result", code: "undefined"},
		{name: "function", code: "function add(a, b) { return a + b }"},
		{name: "function persists", code: "add(2, 3)", result: "5"},
		{name: "class", code: "class Point { constructor(x) { this.x = x } }\nnew Point(3).x", result: "3"},
		{name: "class redeclared", code: "class Point { get y() { return 4 } }\nnew Point().y", result: "4"},
		{name: "destructuring", code: "const {p, q: [r], ...rest} = {p: 1, q: [2], s: 3};\n[p, r, rest]", result: "[ 1, 2, { s: 3 } ]"},
		{name: "no semicolons", code: "const a = 1\nconst b = a +\n  2\nconst c = [a, b]\n  .map(v => v * 10)\nc", result: "[ 10, 30 ]"},
		{name: "block scoping untouched", code: "let blk = 1; { let blk = 2 }; for (const i of [1]) {}; blk", result: "1"},
		{name: "top-level await", code: "const v = await Promise.resolve(7)\nv * 2", result: "14"},
		{name: "await declaration persists", code: "v", result: "7"},
		{name: "await destructuring", code: "const {a1, b1: [b2]} = await Promise.resolve({a1: 1, b1: [2]})\nlet c1\nlet d1 = 4, e1;\n[a1, b2, c1, d1, e1]",
			result: "[ 1, 2, undefined, 4, undefined ]"},
		{name: "await function hoisted", code: "async function g() { return 5 }\nclass K { k() { return 6 } }\nawait g() + new K().k()", result: "11"},
		{name: "await function persists", code: "[g.name, new K().k()]", result: "[ 'g', 6 ]"},
		{name: "await const redeclared", code: "const v = await 8; v", result: "8"},
		{name: "await with statement last", code: "const w1 = await 1\nif (w1) { globalThis.w2 = 2 }"},
		{name: "import statements", code: "import fs from 'node:fs'\nimport { join as j } from 'node:path'\nimport * as os from 'os'\nimport 'node:util'\nj('a', 'b')", result: "'a/b'"},
		{name: "imports persist", code: "typeof fs.readFileSync + typeof os.cpus", result: "'functionfunction'"},
		{name: "dynamic import", code: "(await import('node:path')).basename('/x/y.txt')", result: "'y.txt'"},
		{name: "require", code: "const pathMod = require('path'); pathMod.extname('/a/b.txt')", result: "'.txt'"},
		{name: "console", code: "console.log('out', 1); console.error('err'); void process.stdout.write('raw')", stdout: "out 1\nraw", stderr: "err\n"},
		{name: "output then result", code: "console.log('a'); 5", stdout: "a\n", result: "5"},
		{name: "thrown error", code: "throw new TypeError('bad thing')", errName: "TypeError", errValue: "bad thing"},
		{name: "runtime error", code: "null.x", errName: "TypeError", errValue: "null"},
		{name: "reference error", code: "notDefinedAnywhere", errName: "ReferenceError", errValue: "notDefinedAnywhere"},
		{name: "thrown non-error", code: "throw 42", errName: "Error", errValue: "42"},
		{name: "syntax error", code: "let = = 1", errName: "SyntaxError"},
		{name: "async error", code: "await Promise.reject(new RangeError('nope'))", errName: "RangeError", errValue: "nope"},
		{name: "unhandled rejection", code: "Promise.reject(new Error('rejected')); 1", errName: "Error", errValue: "rejected"},
		{name: "uncaught in timer", code: "await new Promise(r => { setTimeout(() => { throw new EvalError('late') }, 5); setTimeout(r, 50) })",
			errName: "EvalError", errValue: "late"},
		{name: "usable after errors", code: "x", result: "10"},
		{name: "output before error", code: "console.log('before'); throw new Error('after')", stdout: "before\n", errName: "Error", errValue: "after"},
	})
}

func TestNodeTraceback(t *testing.T) {
	k := newTestNode(t, KernelOptions{})
	rec := kernelRun(t, k, "function inner() { throw new Error('deep') }\nfunction outer() { inner() }\nouter()", nil)
	errs := rec.errors()
	if len(errs) != 1 {
		t.Fatalf("errors = %+v", errs)
	}
	tb := errs[0].Traceback
	for _, want := range []string{"Error: deep", "at inner", "at outer", "<cell 1>"} {
		if !strings.Contains(tb, want) {
			t.Errorf("traceback lacks %q:\n%s", want, tb)
		}
	}
	if strings.Contains(tb, "node:vm") || strings.Contains(tb, "[eval]") {
		t.Errorf("traceback shows runner frames:\n%s", tb)
	}
}

func TestNodeModulesFromCwd(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"lib.cjs":                            "module.exports = { v: 1 }",
		"esm.mjs":                            "export const e = 2; export default 'd'",
		"node_modules/esm-only/package.json": `{"name": "esm-only", "type": "module", "exports": {".": {"import": "./index.js"}}}`,
		"node_modules/esm-only/index.js":     "export default function hello() { return 'hi' }",
		"node_modules/cjs-pkg/package.json":  `{"name": "cjs-pkg", "main": "main.js"}`,
		"node_modules/cjs-pkg/main.js":       "exports.answer = 42",
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	k := newTestNode(t, KernelOptions{Cwd: dir})
	runNodeCells(t, k, []nodeCell{
		{name: "require relative", code: "require('./lib.cjs').v", result: "1"},
		{name: "require package", code: "require('cjs-pkg').answer", result: "42"},
		{name: "import relative esm", code: "import d, { e } from './esm.mjs'\nd + e", result: "'d2'"},
		{name: "import esm-only package", code: "import hello from 'esm-only'\nhello()", result: "'hi'"},
		{name: "named import from cjs", code: "import { answer } from 'cjs-pkg'\nanswer", result: "42"},
	})
}

func TestNodeExecutionCountAndRestart(t *testing.T) {
	k := newTestNode(t, KernelOptions{})
	for want := 1; want <= 3; want++ {
		if got := kernelRun(t, k, "var counted = 1", nil).count(); got != want {
			t.Fatalf("execution count = %d, want %d", got, want)
		}
	}
	if err := k.Restart(context.Background()); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	rec := kernelRun(t, k, "typeof counted", nil)
	if rec.count() != 1 || len(rec.results()) != 1 || rec.results()[0].Text != "'undefined'" {
		t.Fatalf("after restart: count %d results %+v", rec.count(), rec.results())
	}
}

func TestNodeEnvAndCwd(t *testing.T) {
	dir := t.TempDir()
	k := newTestNode(t, KernelOptions{Cwd: dir, Env: map[string]string{"BASE": "1"}})
	runNodeCells(t, k, []nodeCell{
		{name: "cwd", code: "process.cwd()", result: fmt.Sprintf("'%s'", dir)},
		{name: "per-execution env", code: "[process.env.BASE, process.env.ONE, require('child_process').execSync('echo $ONE').toString()]",
			env: map[string]string{"ONE": "x", "BASE": "2"}, result: "[ '2', 'x', 'x\\n' ]"},
		{name: "env restored", code: "[process.env.BASE, process.env.ONE]", result: "[ '1', undefined ]"},
		{name: "env during await", code: "await new Promise(r => setTimeout(r, 20)); process.env.ONE", env: map[string]string{"ONE": "y"}, result: "'y'"},
		{name: "restored after await", code: "process.env.ONE", result: ""},
	})
}

func TestNodeStreamsOrderAndSize(t *testing.T) {
	k := newTestNode(t, KernelOptions{})
	rec := kernelRun(t, k, "console.log('a'); console.error('b'); console.log('c'); process.stderr.write('d'); console.log('e')", nil)
	if got := rec.streams(); got != "a\nE:b\nc\nE:de\n" {
		t.Fatalf("streams = %q", got)
	}
	const size = 1 << 20
	rec = kernelRun(t, k, fmt.Sprintf("process.stdout.write('x'.repeat(%d)); for (let i = 0; i < 1024; i++) console.error('y'.repeat(1023))", size), nil)
	if out, errOut := rec.stdout(), rec.stderr(); len(out) != size || len(errOut) != size ||
		strings.Trim(out, "x") != "" || strings.Trim(errOut, "y\n") != "" {
		t.Fatalf("large output: stdout %d bytes, stderr %d bytes", len(out), len(errOut))
	}
	// Output of a child process goes to the real stdout; it must still arrive
	// (possibly right after the cell ended, then with the next one).
	rec = kernelRun(t, k, "require('child_process').execSync('echo from-child', {stdio: 'inherit'}); undefined", nil)
	got := rec.stdout() + kernelRun(t, k, "await new Promise(r => setTimeout(r, 100))", nil).stdout()
	if got != "from-child\n" {
		t.Fatalf("child output = %q", got)
	}
	// Output produced between cells is delivered with the next cell.
	kernelRun(t, k, "setTimeout(() => console.log('later'), 20)", nil)
	time.Sleep(200 * time.Millisecond)
	if got := kernelRun(t, k, "1", nil).stdout(); got != "later\n" {
		t.Fatalf("background output = %q", got)
	}
}

func TestNodeInterrupt(t *testing.T) {
	k := newTestNode(t, KernelOptions{})
	tests := []struct {
		name      string
		code      string
		stateLost bool
	}{
		{name: "sync busy loop", code: "console.log('start'); while (true) {}"},
		{name: "pending promise", code: "console.log('start'); await new Promise(() => {})"},
		{name: "child process", code: "console.log('start'); require('child_process').execSync('sleep 100')"},
		{name: "busy loop after await", code: "console.log('start'); await null; while (true) {}", stateLost: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kernelRun(t, k, "const keep = 'kept'", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			rec := &kernelRecorder{}
			start := time.Now()
			err := k.Execute(ctx, tc.code, nil, rec)
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Fatalf("interrupt took %v", elapsed)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Execute error = %v, want deadline exceeded", err)
			}
			errs := rec.errors()
			if len(errs) != 1 || errs[0].Name != "Interrupted" {
				t.Fatalf("errors = %+v, want one Interrupted", errs)
			}
			if lost := strings.Contains(errs[0].Value, "state was lost"); lost != tc.stateLost {
				t.Errorf("error value %q: state lost %v, want %v", errs[0].Value, lost, tc.stateLost)
			}
			if rec.stdout() != "start\n" {
				t.Errorf("stdout = %q", rec.stdout())
			}
			want := "'kept'"
			if tc.stateLost {
				want = "'undefined'"
			}
			if res := kernelRun(t, k, "typeof keep === 'undefined' ? 'undefined' : keep", nil).results(); len(res) != 1 || res[0].Text != want {
				t.Fatalf("after interrupt: %+v, want %s", res, want)
			}
		})
	}
}

func TestNodeProcessExit(t *testing.T) {
	k := newTestNode(t, KernelOptions{})
	kernelRun(t, k, "const before = 1", nil)
	rec := kernelRun(t, k, "console.log('bye'); process.exit(3)", nil)
	if rec.stdout() != "bye\n" {
		t.Errorf("stdout = %q", rec.stdout())
	}
	errs := rec.errors()
	if len(errs) != 1 || errs[0].Name != "KernelExited" || !strings.Contains(errs[0].Value, "exit status 3") {
		t.Fatalf("errors = %+v", errs)
	}
	rec = kernelRun(t, k, "typeof before", nil)
	if res := rec.results(); rec.count() != 3 || len(res) != 1 || res[0].Text != "'undefined'" {
		t.Fatalf("after exit: count %d results %+v", rec.count(), res)
	}
}

func TestNodeTypeScript(t *testing.T) {
	empty := t.TempDir()
	_, err := NewNodeKernel(context.Background(), KernelOptions{Language: "typescript", Cwd: empty,
		Env: map[string]string{"NODE_PATH": empty}})
	if err == nil || !strings.Contains(err.Error(), "typescript") {
		t.Fatalf("without the typescript package: err = %v, want a clear error (is typescript installed globally on this host?)", err)
	}

	tsDir := t.TempDir()
	npm := exec.Command("npm", "install", "--no-save", "--no-audit", "--no-fund", "--prefix", tsDir, "typescript@"+nodeTypeScriptVersion)
	if out, err := npm.CombinedOutput(); err != nil {
		t.Fatalf("installing typescript@%s with npm (needs the npm registry): %v\n%s", nodeTypeScriptVersion, err, out)
	}
	k := newTestNode(t, KernelOptions{Language: "typescript", Env: map[string]string{"NODE_PATH": filepath.Join(tsDir, "node_modules")}})
	if k.Language() != "typescript" {
		t.Fatalf("Language() = %q", k.Language())
	}
	runNodeCells(t, k, []nodeCell{
		{name: "annotations", code: "const n: number = 41\nn + 1", result: "42"},
		{name: "interface", code: "interface P { x: number }\nconst p: P = { x: 1 }\np.x", result: "1"},
		{name: "type error does not block", code: "const s: string = 5 as any as number\ns", result: "5"},
		{name: "const redeclared", code: "const n: string = 'again'\nn", result: "'again'"},
		{name: "enum", code: "enum Color { Red, Green }\nColor.Green", result: "1"},
		{name: "imports", code: "import type { Stats } from 'node:fs'\nimport { basename } from 'node:path'\nconst st: Stats | null = null\nbasename('/a/b')", result: "'b'"},
		{name: "top-level await", code: "const w = await Promise.resolve<number>(3)\nw", result: "3"},
		{name: "generic function", code: "function id<T>(v: T): T { return v }\nid<string>('g')", result: "'g'"},
		{name: "runtime error", code: "const o: any = null\no.f()", errName: "TypeError"},
	})
}

func TestNodeConcurrentKernels(t *testing.T) {
	kernels := []*nodeKernel{newTestNode(t, KernelOptions{}), newTestNode(t, KernelOptions{})}
	var wg sync.WaitGroup
	for i, k := range kernels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			if err := k.Execute(ctx, fmt.Sprintf("const v = %d; await new Promise(r => setTimeout(r, 200))", i), nil, &kernelRecorder{}); err != nil {
				t.Errorf("kernel %d: %v", i, err)
				return
			}
			rec := &kernelRecorder{}
			if err := k.Execute(ctx, "v", nil, rec); err != nil {
				t.Errorf("kernel %d: %v", i, err)
				return
			}
			if res := rec.results(); len(res) != 1 || res[0].Text != fmt.Sprint(i) {
				t.Errorf("kernel %d: results %+v", i, res)
			}
		}()
	}
	wg.Wait()
}

func TestNodeCloseKillsEverything(t *testing.T) {
	k, err := NewNodeKernel(context.Background(), KernelOptions{Language: "js", Cwd: t.TempDir()})
	if err != nil {
		t.Fatalf("NewNodeKernel: %v", err)
	}
	if k.Language() != "javascript" {
		t.Fatalf("Language() = %q", k.Language())
	}
	pid := k.(*nodeKernel).proc.cmd.Process.Pid
	kernelRun(t, k, "const cp = require('child_process'); cp.spawn('sleep', ['100']); cp.spawn('sleep', ['101']); undefined", nil)
	if n := len(kernelLiveInGroup(pid)); n < 3 {
		t.Fatalf("expected node and 2 children, found %d processes", n)
	}
	if err := k.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if left := kernelLiveInGroup(pid); len(left) > 0 || kernelProcAlive(pid) {
		t.Fatalf("left after Close: %v", left)
	}
	if err := k.Execute(context.Background(), "1", nil, &kernelRecorder{}); !errors.Is(err, ErrKernelDied) {
		t.Fatalf("Execute after Close = %v, want ErrKernelDied", err)
	}
}
