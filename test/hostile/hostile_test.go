// Package hostile runs attacks a hostile tenant would try from inside a
// sandbox, on every runtime a real `airlock serve` offers, and judges each
// on the host (host_test.go): a case passes when no canary fired.
package hostile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/sdk/sandbox"
)

var runtimes []string

func TestMain(m *testing.M) {
	need := "hostile tests need root on the server host, E2B_API_KEY, E2B_API_URL and E2B_SANDBOX_URL of a running airlock serve, and AIRLOCK_TEST_DATA_DIR (its data dir, whose bin/ holds the agent mounted into sandboxes); scripts/test.sh sets them"
	if os.Geteuid() != 0 || os.Getenv("E2B_API_KEY") == "" || os.Getenv("E2B_API_URL") == "" || os.Getenv("AIRLOCK_TEST_DATA_DIR") == "" {
		fmt.Fprintln(os.Stderr, need) // a failure, never a silent skip
		os.Exit(1)
	}
	runtimes = strings.Split(envOr("AIRLOCK_HOSTILE_RUNTIMES", "runsc,runc"), ",")
	os.Exit(m.Run())
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// attack is one hostile case. script runs with bash -l -c as root in the
// attacker sandbox (E2B users have sudo, so root is what a tenant gets);
// env gives it the host's and the victim's coordinates. verdict, when set,
// judges the output further (host data in it is always judged).
type attack struct {
	name    string
	script  string
	user    string // default root
	timeout time.Duration
	verdict func(t *testing.T, h *host, out string)
	// runtimes limits the case to these (nil = all); a case that only
	// makes sense on one says why in its name.
	runtimes []string
	// diesOn names a runtime on which the case may take the attacker's own
	// sandbox down or leave it unable to finish the script (self-harm,
	// stated in the README's threat model); the host checks still judge it.
	diesOn string
	// fresh runs the case in a sandbox of its own, killed after it.
	fresh bool
}

func TestHostile(t *testing.T) {
	ctx := context.Background()
	apiURL := strings.TrimRight(os.Getenv("E2B_API_URL"), "/")
	dataDir := os.Getenv("AIRLOCK_TEST_DATA_DIR")
	agents, _ := filepath.Glob(filepath.Join(dataDir, "bin", "*"))
	if len(agents) == 0 {
		t.Fatal("no agent binary under $AIRLOCK_TEST_DATA_DIR/bin")
	}
	// Template files every sandbox shares (read-only lower layers): a write
	// that reached them would reach every other sandbox.
	shared, _ := filepath.Glob(filepath.Join(dataDir, "templates", "*", "*", "usr", "bin", "*[hp]"))
	h := setupHost(t, apiURL, append(agents, shared...))
	l := setupLAN(t, h)
	// The API refuses to open what the firewall protects, and unknown runtimes.
	for _, bad := range []sandbox.CreateOptions{
		{Network: &sandbox.NetworkConfig{AllowOut: []string{"10.0.0.0/8"}}},
		{Network: &sandbox.NetworkConfig{AllowOut: []string{"169.254.169.254/32"}}},
		{Network: &sandbox.NetworkConfig{AllowOut: []string{l.addrs["CGNAT 100.64/10"] + "/32"}}},
		{Runtime: "kata"},
	} {
		sb, err := sandbox.Create(ctx, bad)
		var e *sandbox.Error
		if err == nil {
			sb.Kill(ctx)
		}
		if !errors.As(err, &e) || e.Status != 400 {
			t.Errorf("create %+v = %v, want a 400", bad, err)
		}
	}
	for _, rt := range runtimes {
		t.Run(rt, func(t *testing.T) {
			newAttacker := func() *sandbox.Sandbox {
				sb, err := sandbox.Create(ctx, sandbox.CreateOptions{
					Runtime: rt, Timeout: 20 * time.Minute,
					// Accepted, but the protected ranges stay closed.
					Network: &sandbox.NetworkConfig{AllowOut: []string{"0.0.0.0/0"}},
				})
				if err != nil {
					t.Fatalf("create attacker on %s: %v", rt, err)
				}
				info, err := sandbox.GetInfo(ctx, sb.ID)
				if err != nil || info.Runtime != rt {
					t.Fatalf("attacker runs on %v (%v), want %s", info, err, rt)
				}
				h.watchCgroup(t, sb.ID)
				return sb
			}
			attacker := newAttacker()
			defer func() { h.unwatchCgroup(attacker.ID); attacker.Kill(ctx) }()
			victim, err := sandbox.Create(ctx, sandbox.CreateOptions{Runtime: rt, Timeout: 20 * time.Minute})
			if err != nil {
				t.Fatalf("create victim on %s: %v", rt, err)
			}
			defer victim.Kill(ctx)
			v := startVictim(t, victim)
			for _, a := range attacks(h, l, v) {
				if a.runtimes != nil && !contains(a.runtimes, rt) {
					continue
				}
				if !alive(attacker) {
					// A memory bomb on runsc takes its whole sandbox down
					// (README, threat model): self-harm, not an escape.
					t.Logf("attacker %s died in the case before; a new one takes over", attacker.ID)
					h.check(t, "after the attacker died")
					h.unwatchCgroup(attacker.ID)
					attacker.Kill(ctx)
					attacker = newAttacker()
				}
				t.Run(a.name, func(t *testing.T) {
					target := attacker
					if a.fresh {
						target = newAttacker()
						defer func() { h.unwatchCgroup(target.ID); target.Kill(ctx) }()
					}
					out, err := run(target, a)
					selfHarm := false
					if err != nil {
						if a.diesOn == rt {
							t.Logf("the attack wrecked its own sandbox on %s (allowed; alive: %v): %v", rt, alive(target), err)
							selfHarm = true
						} else {
							t.Errorf("%v", err)
						}
					}
					if what := h.leaked(out); what != "" {
						t.Errorf("ESCAPE: the sandbox read %s:\n%s", what, clip(out))
					}
					if a.verdict != nil && !selfHarm { // the host checks below still judge it
						a.verdict(t, h, out)
					}
					h.check(t, a.name)
					if t.Failed() {
						t.Logf("output:\n%s", clip(out))
					}
				})
			}
			// The victim's server saw nobody from the attacker.
			if hits := v.hits(t); hits != "" {
				t.Errorf("ESCAPE: the attacker reached the other sandbox's server:\n%s", hits)
			}
			// And both still work: the attacks hurt nobody but the attacker.
			for _, sb := range []*sandbox.Sandbox{attacker, victim} {
				res, err := sb.Commands.Run(ctx, "echo alive", &sandbox.RunOptions{Timeout: time.Minute})
				if err != nil || res.Stdout != "alive\n" {
					t.Errorf("sandbox %s unusable after the attacks: %v %v", sb.ID, res, err)
				}
			}
		})
	}
}

func alive(sb *sandbox.Sandbox) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := sb.Commands.Run(ctx, "echo alive", &sandbox.RunOptions{Timeout: 10 * time.Second})
	return err == nil && res.Stdout == "alive\n"
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// run executes a case and returns stdout and stderr together; a non-zero
// exit is the normal outcome of a blocked attack, an error means the case
// did not run to its end.
func run(sb *sandbox.Sandbox, a attack) (string, error) {
	user := a.user
	if user == "" {
		user = "root"
	}
	timeout := a.timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	// The marker proves the script ran to its end: a case that never ran
	// must not pass for a blocked attack.
	const done = "CASE-DONE"
	res, err := sb.Commands.Run(ctx, a.script+"\necho "+done, &sandbox.RunOptions{User: user, Timeout: timeout})
	if res == nil {
		return "", fmt.Errorf("case did not run: %w", err)
	}
	out := res.Stdout + res.Stderr
	if !strings.Contains(res.Stdout, done) {
		return out, fmt.Errorf("case did not run to its end (%v)", err)
	}
	return strings.Replace(out, done+"\n", "", 1), nil
}

func clip(s string) string {
	if len(s) > 4000 {
		return s[:4000] + "\n…"
	}
	return s
}

// victim is the other sandbox: an HTTP server whose access log the host
// reads through envd.
type victim struct {
	sb   *sandbox.Sandbox
	ip   string
	gw   string // the sandboxes' gateway: the host's address on the bridge
	port int
}

func startVictim(t *testing.T, sb *sandbox.Sandbox) *victim {
	t.Helper()
	ctx := context.Background()
	v := &victim{sb: sb, port: 8000}
	if _, err := sb.Commands.Start(ctx, "cd /tmp && exec python3 -m http.server 8000 --bind 0.0.0.0 >/tmp/access.log 2>&1", &sandbox.RunOptions{Timeout: sandbox.NoTimeout}); err != nil {
		t.Fatal(err)
	}
	res, err := sb.Commands.Run(ctx, "hostname -I; ip route | awk '/^default/ {print $3}'", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(res.Stdout)
	if len(f) < 2 {
		t.Fatalf("victim address and gateway: %q", res.Stdout)
	}
	v.ip, v.gw = f[0], f[len(f)-1]
	if _, err := sb.Commands.Run(ctx, "for i in $(seq 1 100); do curl -fsS -o /dev/null http://127.0.0.1:8000/ && exit 0; sleep 0.2; done; exit 1", nil); err != nil {
		t.Fatalf("victim server not up: %v", err)
	}
	if _, err := sb.Commands.Run(ctx, "truncate -s0 /tmp/access.log", nil); err != nil {
		t.Fatal(err)
	}
	return v
}

func (v *victim) hits(t *testing.T) string {
	res, err := v.sb.Commands.Run(context.Background(), "cat /tmp/access.log", nil)
	if err != nil {
		t.Fatalf("read victim log: %v", err)
	}
	return strings.TrimSpace(res.Stdout)
}
