package api

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The control API's description (spec/control-api.yaml) and the code must
// not drift: the same routes, and the same JSON fields in every shape.

type specDoc struct {
	Paths      map[string]map[string]any `yaml:"paths"`
	Components struct {
		Schemas map[string]specSchema `yaml:"schemas"`
	} `yaml:"components"`
}

type specSchema struct {
	Ref        string                `yaml:"$ref"`
	AllOf      []specSchema          `yaml:"allOf"`
	Required   []string              `yaml:"required"`
	Properties map[string]specSchema `yaml:"properties"`
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
	code := map[string]bool{}
	for _, rt := range New(Config{}).table() {
		code[pathParam.ReplaceAllString(rt.pattern, "{}")] = true
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

// properties flattens a schema (refs and allOf) to its property names and
// its required ones.
func (d specDoc) properties(s specSchema) (props, required map[string]bool) {
	props, required = map[string]bool{}, map[string]bool{}
	var walk func(specSchema)
	walk = func(s specSchema) {
		if s.Ref != "" {
			walk(d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")])
		}
		for _, sub := range s.AllOf {
			walk(sub)
		}
		for p := range s.Properties {
			props[p] = true
		}
		for _, r := range s.Required {
			required[r] = true
		}
	}
	walk(s)
	return props, required
}

// jsonFields lists a struct's JSON field names (embedded structs flattened)
// and whether each is omitempty.
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous {
			for k, v := range jsonFields(f.Type) {
				out[k] = v
			}
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out[name] = strings.Contains(opts, "omit")
	}
	return out
}

func TestShapesMatchSpec(t *testing.T) {
	d := loadSpec(t)
	shapes := map[string]any{
		"Error":                errBody{},
		"NewSandbox":           createJSON{},
		"SandboxNetworkConfig": networkJSON{},
		"Sandbox":              sandboxJSON{},
		"ListedSandbox":        listedJSON{},
		"SandboxDetail":        detailJSON{},
		"SandboxLifecycle":     lifecycleJSON{},
		"Timeout":              timeoutJSON{},
		"SandboxMetric":        metricJSON{},
		"SandboxLog":           logLineJSON{},
		"SandboxLogEntry":      logEntryJSON{},
		"Template":             templateJSON{},
		"AdminTeam":            adminTeamJSON{},
		"AdminSandbox":         adminSandboxJSON{},
	}
	for name, v := range shapes {
		s, ok := d.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s is missing from the spec", name)
			continue
		}
		props, required := d.properties(s)
		fields := jsonFields(reflect.TypeOf(v))
		var missing, extra []string
		for p := range props {
			if _, ok := fields[p]; !ok {
				missing = append(missing, p)
			}
		}
		for f := range fields {
			if !props[f] {
				extra = append(extra, f)
			}
		}
		sort.Strings(missing)
		sort.Strings(extra)
		if len(missing) > 0 || len(extra) > 0 {
			t.Errorf("%s: fields in the spec but not the code %v, in the code but not the spec %v", name, missing, extra)
		}
		for r := range required {
			if fields[r] {
				t.Errorf("%s.%s is required by the spec but omitempty in the code", name, r)
			}
		}
	}
}
