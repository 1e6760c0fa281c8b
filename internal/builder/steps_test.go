package builder

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

func TestValidate(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		spec Spec
		bad  string // "" = valid
	}{
		{"empty", Spec{}, ""},
		{"all kinds", Spec{Steps: []Step{
			{Type: "RUN", Args: []string{"ls"}}, {Type: "RUN", Args: []string{"ls", "root"}},
			{Type: "COPY", Args: []string{"a", "/b", "", "0644"}, FilesHash: hash},
			{Type: "ENV", Args: []string{"A", "1", "B_2", "x"}}, {Type: "WORKDIR", Args: []string{"/app"}},
			{Type: "USER", Args: []string{"user"}},
		}}, ""},
		{"both bases", Spec{FromImage: "x", FromTemplate: "y"}, "not both"},
		{"unknown type", Spec{Steps: []Step{{Type: "EXPOSE", Args: []string{"80"}}}}, "unknown step type"},
		{"run without command", Spec{Steps: []Step{{Type: "RUN", Args: []string{"  "}}}}, "RUN takes"},
		{"copy without hash", Spec{Steps: []Step{{Type: "COPY", Args: []string{"a", "b"}}}}, "filesHash"},
		{"copy bad mode", Spec{Steps: []Step{{Type: "COPY", Args: []string{"a", "b", "", "rwx"}, FilesHash: hash}}}, "octal"},
		{"odd env", Spec{Steps: []Step{{Type: "ENV", Args: []string{"A"}}}}, "ENV takes"},
		{"bad env name", Spec{Steps: []Step{{Type: "ENV", Args: []string{"A-B", "1"}}}}, "not a valid variable"},
		{"nul", Spec{Steps: []Step{{Type: "RUN", Args: []string{"a\x00b"}}}}, "NUL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.spec.validate()
			if tc.bad == "" {
				if err != nil {
					t.Fatalf("validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.bad) || !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("validate = %v, want an invalid-request error with %q", err, tc.bad)
			}
		})
	}
}

func TestCompile(t *testing.T) {
	hash := strings.Repeat("cd", 32)
	sp := &Spec{
		Steps: []Step{
			{Type: "ENV", Args: []string{"A", "1", "P", "/opt/bin:$PATH"}},
			{Type: "RUN", Args: []string{"echo $A"}},
			{Type: "WORKDIR", Args: []string{"app"}},
			{Type: "COPY", Args: []string{"src", "dst", "root", "0755"}, FilesHash: hash},
			{Type: "USER", Args: []string{"root"}},
			{Type: "RUN", Args: []string{"it's", "user"}},
		},
		StartCmd: "serve", ReadyCmd: "true",
	}
	base := env{user: "user", workdir: "/home/user", vars: []string{"BASE=b"}}
	p, f := compile(sp, base, "base-key", time.Minute, func(h string) bool { return h == hash })
	if f != nil {
		t.Fatal(f)
	}
	// ENV makes no step; the start and ready commands make the last.
	if want := []string{"2", "3", "4", "5", "6", "finalize"}; strings.Join(p.origin, ",") != strings.Join(want, ",") {
		t.Fatalf("origin = %v, want %v", p.origin, want)
	}
	for i, want := range []string{
		`exec /.airlock-build/envd build-step 'run' '--user' 'user' '--workdir' '/home/user' '--env' 'BASE=b' '--env' 'A=1' '--env' 'P=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' '--' 'echo $A'`,
		`exec /.airlock-build/envd build-step 'workdir' '--user' 'user' '/home/user/app'`,
		`exec /.airlock-build/envd build-step 'copy' '--tar' '/.airlock-build/files/` + hash + `' '--src' 'src' '--dest' 'dst' '--user' 'user' '--workdir' '/home/user/app' '--owner' 'root' '--mode' '0755'`,
		`exec /.airlock-build/envd build-step 'user' 'root'`,
	} {
		if p.steps[i] != want {
			t.Errorf("step %d =\n  %s\nwant\n  %s", i, p.steps[i], want)
		}
	}
	if !strings.Contains(p.steps[4], `'--user' 'user'`) || !strings.Contains(p.steps[4], `'it'\''s'`) {
		t.Errorf("a RUN's own user and a quote: %s", p.steps[4])
	}
	if !strings.Contains(p.steps[5], `'--user' 'root'`) || !strings.Contains(p.steps[5], `'--start' 'serve' '--ready' 'true' '--timeout' '1m0s'`) {
		t.Errorf("finalize: %s", p.steps[5])
	}
	if p.final.user != "root" || p.final.workdir != "/home/user/app" || p.final.envMap()["A"] != "1" || p.final.envMap()["BASE"] != "b" {
		t.Errorf("final state = %+v", p.final)
	}
	if p.key == "" {
		t.Fatal("no cache key")
	}

	// The key follows content: the same spec the same key, a changed one
	// (or another base) another, a forced one none.
	again, _ := compile(sp, base, "base-key", time.Minute, func(string) bool { return true })
	if again.key != p.key {
		t.Error("same spec, different key")
	}
	other, _ := compile(sp, base, "other-base", time.Minute, func(string) bool { return true })
	if other.key == p.key {
		t.Error("another base, same key")
	}
	changed := *sp
	changed.Steps = append([]Step{{Type: "ENV", Args: []string{"A", "2"}}}, sp.Steps[1:]...)
	if c, _ := compile(&changed, base, "base-key", time.Minute, func(string) bool { return true }); c.key == p.key {
		t.Error("changed ENV, same key")
	}
	forced := *sp
	forced.Steps = append([]Step(nil), sp.Steps...)
	forced.Steps[3].Force = true
	if c, _ := compile(&forced, base, "base-key", time.Minute, func(string) bool { return true }); c.key != "" {
		t.Error("a forced step still has a key")
	}

	// A COPY whose files never came is the build's failure at that step.
	_, f = compile(sp, base, "base-key", time.Minute, func(string) bool { return false })
	if f == nil || f.Step != "4" || !strings.Contains(f.Message, "never uploaded") {
		t.Fatalf("missing upload: %+v", f)
	}
}

func TestStepFailure(t *testing.T) {
	sp := &Spec{Steps: []Step{{Type: "RUN", Args: []string{"whoami", "root123"}}, {Type: "RUN", Args: []string{"exit 3"}}}}
	f := stepFailure(sp, "1", 125, []string{"airlock-build: invalid username: 'root123'"})
	if want := "failed to run command 'whoami': command failed: unauthenticated: invalid username: 'root123'"; f.Message != want || f.Step != "1" {
		t.Errorf("bad user: %+v, want %q", f, want)
	}
	f = stepFailure(sp, "2", 3, []string{"oops", "on stderr"})
	if want := "failed to run command 'exit 3': exit status 3: oops\non stderr"; f.Message != want || f.Step != "2" {
		t.Errorf("exit: %q, want %q", f.Message, want)
	}
	f = stepFailure(sp, "finalize", 1, []string{"airlock-build: start command exited with status 127"})
	if !strings.Contains(f.Message, "start and ready commands: start command exited with status 127") || f.Step != "finalize" {
		t.Errorf("finalize: %+v", f)
	}
}

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		in         string
		alias, tag string
		ok         bool
	}{
		{"my-tpl", "my-tpl", "", true},
		{"my-tpl:v1.0", "my-tpl", "v1.0", true},
		{"0b6f7c2e-1f7e-4a51-9d2b-3c9a2e5f8a10", "0b6f7c2e-1f7e-4a51-9d2b-3c9a2e5f8a10", "", true},
		{"My-Tpl", "", "", false},
		{":v1", "", "", false},
		{"tpl:", "", "", false},
		{"a/b", "", "", false},
		{"../x", "", "", false},
		{strings.Repeat("a", 64), "", "", false},
	} {
		alias, tag, err := parseName(tc.in)
		if (err == nil) != tc.ok || alias != tc.alias || tag != tc.tag {
			t.Errorf("parseName(%q) = %q, %q, %v", tc.in, alias, tag, err)
		}
	}
	got, err := normTags("tpl", []string{"prod", "tpl:stable", "prod"})
	if err != nil || strings.Join(got, ",") != "prod,stable" {
		t.Errorf("normTags = %v, %v", got, err)
	}
	for _, bad := range []string{":invalid-tag", "tpl:", "other:x", "a b"} {
		if _, err := normTags("tpl", []string{bad}); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("normTags(%q) = %v, want invalid", bad, err)
		}
	}
}
