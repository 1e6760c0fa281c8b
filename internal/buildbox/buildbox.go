// Package buildbox runs template build steps inside a throwaway sandbox,
// on its own network endpoint with the build's egress policy, and hands
// the sandbox's changes (its upper layer) to the template builder.
package buildbox

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/network"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/template"
)

// ErrSandboxEnded means the build sandbox stopped before its steps did
// (killed by a limit, or its init died).
var ErrSandboxEnded = errors.New("the build sandbox ended before its steps finished")

// Network attaches build sandboxes (network.Manager does).
type Network interface {
	Attach(ctx context.Context, id string, p network.Policy) (*network.Endpoint, error)
	Detach(ctx context.Context, id string) error
}

// Config wires a Runner.
type Config struct {
	// Drivers by runtime name; each must be a runtime.LayerExporter and a
	// runtime.Pauser. Default names the one used when a request names none.
	Drivers map[string]runtime.Driver
	Default string
	Network Network
	// Policy is the build's egress policy; the zero value has no
	// internet. Protected ranges stay closed whatever it says.
	Policy network.Policy
	// CABundle is the host's CA bundle, lent read-only for downloads (a
	// host behind a TLS proxy trusts its CA; the template may not); "" for none.
	CABundle string
	PidsMax  int64         // per build sandbox; 0 = the runtime's default
	Timeout  time.Duration // for all steps of a build; default DefaultTimeout
	Log      *slog.Logger
}

// DefaultTimeout bounds one build's steps.
const DefaultTimeout = time.Hour

// Runner implements template.StepRunner.
type Runner struct{ cfg Config }

// New checks the drivers can run builds.
func New(cfg Config) (*Runner, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if _, ok := cfg.Drivers[cfg.Default]; !ok {
		return nil, fmt.Errorf("buildbox: default runtime %q has no driver", cfg.Default)
	}
	for name, d := range cfg.Drivers {
		_, exp := d.(runtime.LayerExporter)
		_, pause := d.(runtime.Pauser)
		if !exp || !pause {
			return nil, fmt.Errorf("buildbox: runtime %s cannot export a sandbox's layer: %w", name, runtime.ErrNotSupported)
		}
	}
	if cfg.Network == nil {
		return nil, errors.New("buildbox: no network")
	}
	return &Runner{cfg: cfg}, nil
}

// The mount point of what the build borrows from the host; never part of
// the template (see the template package's layer skip list).
const hostDir = "/.airlock-build"

// wrapper runs each step ("$@") with /bin/sh -c and reports on stdout,
// between lines of the steps' own output, with lines carrying a nonce the
// steps are not told. A step's last line may lack its newline: each report
// starts on a line of its own.
const wrapper = `n=0
for step do
	printf '\n@@airlock %s step %d\n' "$AIRLOCK_NONCE" "$n"
	(cd /root 2>/dev/null || cd /; exec env -u AIRLOCK_NONCE /bin/sh -c "$step") </dev/null 2>&1
	rc=$?
	if [ "$rc" -ne 0 ]; then
		printf '\n@@airlock %s fail %d %d\n' "$AIRLOCK_NONCE" "$n" "$rc"
		exit 0
	fi
	n=$((n+1))
done
printf '\n@@airlock %s done\n' "$AIRLOCK_NONCE"
sleep 3600
`

// RunSteps runs req's steps in a sandbox on req.Lower and, when all
// succeed, pauses it and applies its layer with req.Apply.
func (r *Runner) RunSteps(ctx context.Context, req template.StepRequest) (err error) {
	name := req.Runtime
	if name == "" {
		name = r.cfg.Default
	}
	d, ok := r.cfg.Drivers[name]
	if !ok {
		return fmt.Errorf("buildbox: runtime %q is not installed: %w", name, runtime.ErrNotSupported)
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	id, nonce, err := newIDs()
	if err != nil {
		return err
	}
	log := r.cfg.Log.With("build", id, "runtime", name)

	ep, err := r.cfg.Network.Attach(ctx, id, r.cfg.Policy)
	if err != nil {
		return fmt.Errorf("buildbox: network: %w", err)
	}
	defer func() {
		if derr := r.cfg.Network.Detach(context.WithoutCancel(ctx), id); derr != nil {
			log.Warn("buildbox: detach", "err", derr)
			err = errors.Join(err, derr)
		}
	}()

	rd, wr, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("buildbox: %w", err)
	}
	defer rd.Close()
	env := []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root", "USER=root", "LOGNAME=root", "LANG=C.UTF-8",
		"DEBIAN_FRONTEND=noninteractive", "AIRLOCK_NONCE=" + nonce,
	}
	var mounts []runtime.Mount
	if r.cfg.CABundle != "" {
		ca := hostDir + "/ca-certificates.crt"
		mounts = append(mounts, runtime.Mount{Source: r.cfg.CABundle, Destination: ca, ReadOnly: true})
		for _, k := range []string{"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "PIP_CERT", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS"} {
			env = append(env, k+"="+ca)
		}
	}
	for _, l := range req.Lend {
		if !strings.HasPrefix(l.Dest, hostDir+"/") || strings.Contains(l.Dest, "..") {
			return fmt.Errorf("buildbox: lent path %q is not under %s", l.Dest, hostDir)
		}
		mounts = append(mounts, runtime.Mount{Source: l.Source, Destination: l.Dest, ReadOnly: true})
	}
	spec := runtime.Spec{
		ID:        id,
		RootfsDir: req.Lower,
		Args:      append([]string{"/bin/sh", "-c", wrapper, "airlock-build"}, req.Steps...),
		Env:       env,
		Hostname:  "build",
		NetNSPath: ep.NetNSPath,
		Mounts:    mounts,
		Resources: runtime.Resources{
			CPUCount: req.CPUCount, MemoryMB: req.MemoryMB, DiskMB: req.DiskMB, PidsMax: r.cfg.PidsMax,
		},
		Labels:      map[string]string{"airlock.build": id},
		Stdio:       wr,
		ExportLayer: true,
	}
	_, err = d.Create(ctx, spec)
	wr.Close() // the sandbox holds the write end now
	if err != nil {
		return fmt.Errorf("buildbox: start the build sandbox: %w", err)
	}
	defer func() {
		if kerr := d.Kill(context.WithoutCancel(ctx), id); kerr != nil {
			log.Warn("buildbox: kill", "err", kerr)
			err = errors.Join(err, kerr)
		}
	}()
	// A cancelled build must not wait for a step that never writes again.
	stop := context.AfterFunc(ctx, func() { _ = rd.SetReadDeadline(time.Now()) })
	defer stop()

	if err := follow(rd, nonce, req); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("buildbox: %w", ctx.Err())
		}
		return err
	}
	// Freeze what the steps left running so the layer holds still.
	if err := d.(runtime.Pauser).Pause(ctx, id); err != nil {
		return fmt.Errorf("buildbox: pause the build sandbox: %w", err)
	}
	upper, idBase, err := d.(runtime.LayerExporter).LayerDir(ctx, id)
	if err != nil {
		return err
	}
	return req.Apply(upper, idBase)
}

// follow copies the steps' output to req.Output and reports step starts
// until the wrapper says all succeeded (nil) or one failed.
func follow(rd io.Reader, nonce string, req template.StepRequest) error {
	prefix := "@@airlock " + nonce + " "
	br := bufio.NewReaderSize(rd, 64<<10)
	blank := false // an empty line held back: the newline before a report
	emit := func(line string) {
		if req.Output != nil {
			_, _ = io.WriteString(req.Output, line+"\n")
		}
	}
	for {
		// Lines longer than the buffer arrive in pieces: output only.
		raw, more, err := br.ReadLine()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) {
				return ErrSandboxEnded
			}
			return fmt.Errorf("buildbox: read the build's output: %w", err)
		}
		line := string(raw)
		rest, report := strings.CutPrefix(line, prefix)
		if !report || more {
			if blank {
				emit("")
			}
			blank = line == ""
			if !blank {
				emit(line)
			}
			continue
		}
		blank = false
		f := strings.Fields(rest)
		switch {
		case len(f) == 2 && f[0] == "step":
			if i, err := strconv.Atoi(f[1]); err == nil && req.Step != nil && i >= 0 && i < len(req.Steps) {
				req.Step(i)
			}
		case len(f) == 3 && f[0] == "fail":
			i, _ := strconv.Atoi(f[1])
			code, _ := strconv.Atoi(f[2])
			step := ""
			if i >= 0 && i < len(req.Steps) {
				step = req.Steps[i]
			}
			return &template.StepError{Index: i, Cmd: step, ExitCode: code}
		case len(f) == 1 && f[0] == "done":
			return nil
		}
	}
}

func newIDs() (id, nonce string, err error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("buildbox: %w", err)
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	ids := make([]byte, 12)
	for i := range ids {
		ids[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return "build" + string(ids), hex.EncodeToString(b[12:]), nil
}
