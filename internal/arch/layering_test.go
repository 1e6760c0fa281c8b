package arch

import (
	"go/build"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/airlock-sandbox/airlock/"

// imports maps every package of the module (by path below the module) to
// the module packages its non-test files import.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	err = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if name := d.Name(); p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
			return filepath.SkipDir
		}
		pkg, err := build.ImportDir(p, 0)
		if err != nil {
			return nil // no Go files here
		}
		rel, _ := filepath.Rel(root, p)
		for _, imp := range pkg.Imports {
			if strings.HasPrefix(imp, module) {
				out[filepath.ToSlash(rel)] = append(out[filepath.ToSlash(rel)], strings.TrimPrefix(imp, module))
			}
		}
		if _, ok := out[filepath.ToSlash(rel)]; !ok {
			out[filepath.ToSlash(rel)] = nil
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// reach is every module package pkg imports, directly or not.
func reach(g map[string][]string, pkg string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, q := range g[p] {
			if !seen[q] {
				seen[q] = true
				walk(q)
			}
		}
	}
	walk(pkg)
	return seen
}

func under(p, prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }

func TestLayering(t *testing.T) {
	g := imports(t)
	if len(g) < 20 {
		t.Fatalf("found only %d packages: is the test running from internal/arch?", len(g))
	}
	// Direct imports a package must not have.
	direct := []struct {
		pkg    string
		never  []string
		reason string
	}{
		{"internal/api", []string{"internal/runtime", "internal/network", "internal/template", "internal/gateway"}, "the API reaches sandboxes through the orchestrator"},
		{"internal/orchestrator", []string{"internal/api", "internal/gateway"}, "the lifecycle does not parse HTTP"},
	}
	for _, r := range direct {
		for _, imp := range g[r.pkg] {
			for _, bad := range r.never {
				if under(imp, bad) {
					t.Errorf("%s imports %s: %s", r.pkg, imp, r.reason)
				}
			}
		}
	}
	// What a package may reach at all.
	closed := []struct {
		pkg     string
		allowed []string
		reason  string
	}{
		{"internal/gateway", []string{"internal/httplimit", "sdk/wire"}, "the gateway is on every request's path and knows nothing of the rest"},
		{"internal/errdefs", nil, "the error vocabulary is a leaf"},
		{"sdk/wire", nil, "the wire constants are a leaf"},
		{"sdk/controlapi", nil, "the generated wire shapes are a leaf"},
		{"internal/bench", []string{"sdk", "proto"}, "the benchmark drives Airlock only through the Go SDK, as a user does (never the interpreter or the server's internals)"},
	}
	for _, r := range closed {
		for q := range reach(g, r.pkg) {
			if !slices.ContainsFunc(r.allowed, func(a string) bool { return under(q, a) }) {
				t.Errorf("%s reaches %s: %s", r.pkg, q, r.reason)
			}
		}
	}
	// In-sandbox code and the public SDK never reach the control plane.
	for pkg := range g {
		inSandbox := under(pkg, "internal/envd") || under(pkg, "internal/interpreter") || under(pkg, "internal/httpserve") || under(pkg, "cmd/envd")
		public := under(pkg, "sdk")
		if !inSandbox && !public {
			continue
		}
		for q := range reach(g, pkg) {
			switch {
			case inSandbox && (under(q, "internal/store") || under(q, "internal/orchestrator") || under(q, "internal/api") || under(q, "internal/runtime") || under(q, "internal/network")):
				t.Errorf("in-sandbox package %s reaches %s", pkg, q)
			case public && under(q, "internal"):
				t.Errorf("public package %s reaches %s", pkg, q)
			}
		}
	}
}

// TestConnectCodesInOnePlace: Connect codes are chosen from errors only in
// errdefs; a server package naming a code itself is a second mapping.
func TestConnectCodesInOnePlace(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// The one deliberate exception, with its reason at the call site.
	allowed := map[string]string{"internal/envd/process.go": "connect.CodeUnknown"}
	var checked int
	for _, dir := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			if under(rel, "internal/errdefs") {
				return nil
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			checked++
			for i, line := range strings.Split(string(b), "\n") {
				if !strings.Contains(line, "connect.Code") {
					continue
				}
				if a, ok := allowed[rel]; ok && strings.Contains(line, a) {
					continue
				}
				t.Errorf("%s:%d names a Connect code; wrap an errdefs kind instead: %s", rel, i+1, strings.TrimSpace(line))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if checked < 50 {
		t.Fatalf("checked only %d files", checked)
	}
}
