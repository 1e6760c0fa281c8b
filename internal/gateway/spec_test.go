package gateway

import (
	"os"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
)

// The gateway's list of envd routes it never forwards is the one
// spec/envd-http.yaml marks x-internal.
func TestInternalEnvdRoutesMatchSpec(t *testing.T) {
	b, err := os.ReadFile("../../spec/envd-http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	var internal []string
	for p, item := range d.Paths {
		if item["x-internal"] == true {
			internal = append(internal, p)
		}
		if got := isInternalEnvdPath(p); got != (item["x-internal"] == true) {
			t.Errorf("isInternalEnvdPath(%q) = %v, but the spec says x-internal=%v", p, got, item["x-internal"])
		}
	}
	slices.Sort(internal)
	want := slices.Clone(internalEnvdPaths)
	slices.Sort(want)
	if !slices.Equal(internal, want) {
		t.Errorf("internal envd routes: spec %v, gateway %v", internal, want)
	}
}
