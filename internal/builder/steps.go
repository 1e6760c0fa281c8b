package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

// Spec is a build's body (E2B's TemplateBuildStartV2).
type Spec struct {
	FromImage         string          `json:"fromImage,omitempty"`
	FromTemplate      string          `json:"fromTemplate,omitempty"`
	FromImageRegistry *RegistryCreds  `json:"fromImageRegistry,omitempty"`
	Force             bool            `json:"force,omitempty"`
	Steps             []Step          `json:"steps,omitempty"`
	StartCmd          string          `json:"startCmd,omitempty"`
	ReadyCmd          string          `json:"readyCmd,omitempty"`
	Extra             json.RawMessage `json:"-"`
}

// RegistryCreds are a private registry's credentials (E2B's
// fromImageRegistry: registry, aws or gcp).
type RegistryCreds struct {
	Type               string `json:"type"`
	Username           string `json:"username,omitempty"`
	Password           string `json:"password,omitempty"`
	AWSAccessKeyID     string `json:"awsAccessKeyId,omitempty"`
	AWSSecretAccessKey string `json:"awsSecretAccessKey,omitempty"`
	AWSRegion          string `json:"awsRegion,omitempty"`
	ServiceAccountJSON string `json:"serviceAccountJson,omitempty"`
}

// Step is one instruction (E2B's TemplateStep).
type Step struct {
	Type      string   `json:"type"`
	Args      []string `json:"args"`
	Force     bool     `json:"force,omitempty"`
	FilesHash string   `json:"filesHash,omitempty"`
}

// Limits on a build's body, beyond the route's byte limit.
const (
	maxSteps   = 1000
	maxArgLen  = 256 << 10
	maxArgs    = 2000
	maxNameLen = 128
)

var (
	envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	hashPattern   = regexp.MustCompile(`^[a-f0-9]{64}$`)
	modePattern   = regexp.MustCompile(`^[0-7]{3,4}$`)
)

// validate checks a spec's shape; what needs the base or files is checked
// when the build runs.
func (sp *Spec) validate() error {
	if sp.FromImage != "" && sp.FromTemplate != "" {
		return errdefs.Newf(errdefs.ErrInvalid, "give fromImage or fromTemplate, not both")
	}
	if len(sp.Steps) > maxSteps {
		return errdefs.Newf(errdefs.ErrInvalid, "a build has at most %d steps, not %d", maxSteps, len(sp.Steps))
	}
	for i, st := range sp.Steps {
		if len(st.Args) > maxArgs {
			return errdefs.Newf(errdefs.ErrInvalid, "step %d: too many args", i+1)
		}
		for _, a := range st.Args {
			if len(a) > maxArgLen || strings.ContainsRune(a, 0) {
				return errdefs.Newf(errdefs.ErrInvalid, "step %d: an argument is over %d bytes or has a NUL", i+1, maxArgLen)
			}
		}
		n := len(st.Args)
		var bad string
		switch st.Type {
		case "RUN":
			if n < 1 || n > 2 || strings.TrimSpace(st.Args[0]) == "" {
				bad = "RUN takes [command] or [command, user]"
			}
		case "COPY":
			switch {
			case n < 2 || n > 4 || st.Args[0] == "" || st.Args[1] == "":
				bad = "COPY takes [src, dest, user, mode]"
			case !hashPattern.MatchString(st.FilesHash):
				bad = "COPY needs the filesHash of its uploaded files (64 hex digits)"
			case n == 4 && st.Args[3] != "" && !modePattern.MatchString(st.Args[3]):
				bad = fmt.Sprintf("COPY mode %q is not an octal mode", st.Args[3])
			}
		case "ENV":
			if n == 0 || n%2 != 0 {
				bad = "ENV takes [key, value, key, value, ...]"
			}
			for k := 0; bad == "" && k < n; k += 2 {
				if !envKeyPattern.MatchString(st.Args[k]) {
					bad = fmt.Sprintf("ENV name %q is not a valid variable name", st.Args[k])
				}
			}
		case "WORKDIR":
			if n != 1 || st.Args[0] == "" {
				bad = "WORKDIR takes [path]"
			}
		case "USER":
			if n != 1 || st.Args[0] == "" {
				bad = "USER takes [name]"
			}
		default:
			bad = fmt.Sprintf("unknown step type %q (want RUN, COPY, ENV, WORKDIR or USER)", st.Type)
		}
		if bad != "" {
			return errdefs.Newf(errdefs.ErrInvalid, "step %d: %s", i+1, bad)
		}
	}
	return nil
}

// env is the build's state as steps change it.
type env struct {
	user    string
	workdir string
	vars    []string // K=V, in order; a later one of a name replaces the earlier
}

func (e *env) set(k, v string) {
	e.vars = slices.DeleteFunc(e.vars, func(kv string) bool { return strings.HasPrefix(kv, k+"=") })
	e.vars = append(e.vars, k+"="+v)
}

func (e *env) lookup(k string) (string, bool) {
	for _, kv := range slices.Backward(e.vars) {
		if v, ok := strings.CutPrefix(kv, k+"="); ok {
			return v, true
		}
	}
	if k == "PATH" {
		return defaultPath, true
	}
	if k == "HOME" {
		return homeOf(e.user), true
	}
	return "", false
}

func (e *env) envMap() map[string]string {
	m := make(map[string]string, len(e.vars))
	for _, kv := range e.vars {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

func homeOf(user string) string {
	if user == "root" || user == "0" {
		return "/root"
	}
	return "/home/" + user
}

// Where build sandboxes find what the builder lends them.
const (
	helperPath = "/.airlock-build/envd"
	filesDir   = "/.airlock-build/files"
)

// HelperPath is where a build sandbox finds the lent agent.
const HelperPath = helperPath

// ProvisionStep is the shell step that makes an image's tree a sandbox's
// (envd build-step provision), the first of every build from an image.
func ProvisionStep() string { return helper("provision") }

// program is a spec compiled into the build sandbox's shell steps.
type program struct {
	steps []string
	// origin maps a shell step to what E2B calls it in a failure's
	// reason.step: "1".. for the spec's steps, "finalize" for the start
	// and ready commands.
	origin []string
	final  env
	// key is the content key of the whole build; "" when a step forces a
	// rebuild.
	key string
}

// compile turns a spec, on a base whose defaults are base, into shell
// steps for the build sandbox. present says whether a COPY's files were
// uploaded.
func compile(sp *Spec, base env, baseKey string, readyTimeout time.Duration, present func(hash string) bool) (*program, *Failure) {
	p := &program{final: base}
	e := &p.final
	e.vars = slices.Clone(base.vars)
	h := sha256.New()
	fmt.Fprintf(h, "airlock-build-1\x00%s\x00", baseKey)
	force := sp.Force
	add := func(origin, step string) {
		p.steps = append(p.steps, step)
		p.origin = append(p.origin, origin)
		h.Write([]byte(step + "\x00"))
	}
	for i, st := range sp.Steps {
		origin := fmt.Sprint(i + 1)
		force = force || st.Force
		switch st.Type {
		case "RUN":
			user := e.user
			if len(st.Args) > 1 && st.Args[1] != "" {
				user = st.Args[1]
			}
			add(origin, helper("run", "--user", user, "--workdir", e.workdir, envFlags(e.vars), "--", st.Args[0]))
		case "COPY":
			if !present(st.FilesHash) {
				return nil, &Failure{Step: origin, Message: fmt.Sprintf("the files of COPY %s were never uploaded (hash %s)", st.Args[0], st.FilesHash)}
			}
			owner, mode := e.user, ""
			if len(st.Args) > 2 && st.Args[2] != "" {
				owner = st.Args[2]
			}
			if len(st.Args) > 3 {
				mode = st.Args[3]
			}
			add(origin, helper("copy", "--tar", filesDir+"/"+st.FilesHash, "--src", st.Args[0], "--dest", st.Args[1],
				"--user", e.user, "--workdir", e.workdir, "--owner", owner, "--mode", mode))
		case "ENV":
			for k := 0; k < len(st.Args); k += 2 {
				// Values may use earlier variables, as a Dockerfile's ENV does.
				v := os.Expand(st.Args[k+1], func(name string) string { s, _ := e.lookup(name); return s })
				e.set(st.Args[k], v)
			}
			h.Write([]byte("ENV " + strings.Join(e.vars, "\x00") + "\x00"))
		case "WORKDIR":
			dir := st.Args[0]
			if !path.IsAbs(dir) {
				dir = path.Join(e.workdir, dir)
			}
			dir = path.Clean(dir)
			add(origin, helper("workdir", "--user", e.user, dir))
			e.workdir = dir
		case "USER":
			add(origin, helper("user", st.Args[0]))
			e.user = st.Args[0]
			if e.workdir == "" {
				e.workdir = homeOf(e.user)
			}
		}
	}
	if sp.StartCmd != "" || sp.ReadyCmd != "" {
		add("finalize", helper("ready", "--user", e.user, "--workdir", e.workdir, envFlags(e.vars),
			"--start", sp.StartCmd, "--ready", sp.ReadyCmd, "--timeout", readyTimeout.String()))
	}
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00", e.user, e.workdir, sp.StartCmd)
	if !force {
		p.key = hex.EncodeToString(h.Sum(nil))
	}
	return p, nil
}

// helper is a shell command running the build-step helper with args
// (strings, or []string spliced in).
func helper(args ...any) string {
	var b strings.Builder
	b.WriteString("exec " + helperPath + " build-step")
	for _, a := range args {
		switch v := a.(type) {
		case string:
			b.WriteString(" " + shellQuote(v))
		case []string:
			for _, s := range v {
				b.WriteString(" " + shellQuote(s))
			}
		}
	}
	return b.String()
}

func envFlags(vars []string) []string {
	out := make([]string, 0, 2*len(vars))
	for _, kv := range vars {
		out = append(out, "--env", kv)
	}
	return out
}

// shellQuote quotes s for /bin/sh as one word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
