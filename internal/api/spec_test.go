package api

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The control API's description (spec/control-api.yaml) and the code must
// not drift: the same routes, and the same JSON fields in every shape.

type specDoc struct {
	Paths map[string]map[string]any `yaml:"paths"`
}

func loadSpec(t *testing.T) specDoc {
	t.Helper()
	b, err := os.ReadFile("../../spec/control-api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d specDoc
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatalf("spec/control-api.yaml: %v", err)
	}
	return d
}

var pathParam = regexp.MustCompile(`\{[^}]+\}`)

func TestRoutesMatchSpec(t *testing.T) {
	d := loadSpec(t)
	spec := map[string]bool{}
	for p, ops := range d.Paths {
		for method := range ops {
			switch method {
			case "get", "post", "put", "patch", "delete":
				spec[strings.ToUpper(method)+" "+pathParam.ReplaceAllString(p, "{}")] = true
			}
		}
	}
	// Routes that one mux pattern serves for several spec paths.
	shared := map[string][]string{
		"GET /templates/{}/{}": {"GET /templates/aliases/{}", "GET /templates/{}/tags"},
	}
	code := map[string]bool{}
	for _, rt := range New(Config{}).table() {
		p := pathParam.ReplaceAllString(rt.pattern, "{}")
		if paths, ok := shared[p]; ok {
			for _, p := range paths {
				code[p] = true
			}
			continue
		}
		code[p] = true
	}
	for r := range code {
		if !spec[r] {
			t.Errorf("route %s is served but not in spec/control-api.yaml", r)
		}
	}
	for r := range spec {
		if !code[r] {
			t.Errorf("route %s is in spec/control-api.yaml but not served", r)
		}
	}
}

// The JSON shapes need no test here: internal/api writes and reads the
// types sdk/controlapi generates from the spec, and that package's test
// fails when the generated code is stale.
