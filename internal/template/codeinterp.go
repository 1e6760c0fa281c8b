package template

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/javakernel"
)

// InterpreterStartCmd is code-interpreter-v1's start command: envd runs it
// (through bash -l -c) in every new sandbox. The binary is Airlock's own,
// bind-mounted at /.airlock/envd; the server listens on port 49999.
const InterpreterStartCmd = "/.airlock/envd interpreter"

// ciRecipe names the current way code-interpreter-v1 is built on top of
// base; bump it whenever that changes. Its rootfs path carries base's
// recipe too, so a new base rebuilds it.
// The Java kernel's source hash is part of it, so a changed kernel is
// compiled into a new tree.
var ciRecipe = "ci-2-" + javakernel.SourceHash()

// typescriptVersion is the npm typescript installed globally for the
// TypeScript kernel. 5.x: the last line with the JavaScript compiler API
// (transpileModule) that runs on bookworm's Node 18.
const typescriptVersion = "5.9.3"

// ciPackages go into code-interpreter-v1 on top of base: Jupyter's Python
// kernel with the data stack E2B users expect, and R with its kernel.
var ciPackages = []string{
	"python3-ipykernel", "python3-numpy", "python3-pandas", "python3-matplotlib",
	// python3-fonttools (for matplotlib) depends on "python3-scipy |
	// python3-munkres"; naming munkres keeps scipy, pythran, Boost and
	// OpenBLAS headers (~250 MB) out.
	"python3-munkres",
	"r-base-core", "r-cran-irkernel",
	// The Java kernel (internal/javakernel) compiles and runs on it; JShell
	// is part of the JDK.
	"openjdk-17-jdk-headless",
}

// ciNPM are the npm packages installed globally (under /usr/local).
var ciNPM = []string{"typescript@" + typescriptVersion}

// npmFetchEstimate is how many HTTP requests npm makes for ciNPM (the
// package document and the tarball), for the progress bar.
const npmFetchEstimate = 2

// layerOptions says what to install into a copy of base's tree.
type layerOptions struct {
	Target   string // the copy of base to install into
	CacheDir string // shared .deb cache
	Packages []string
	NPM      []string // npm install -g arguments
	// JavaJars, when set, is the cache of the Java kernel's pinned jars:
	// the kernel is staged into the tree and compiled there.
	JavaJars string
}

// installFunc installs packages into an existing rootfs, writing progress
// lines to out. Tests replace it.
type installFunc func(ctx context.Context, opts layerOptions, out io.Writer) error

// layerScript installs Debian and npm packages into the rootfs $R, in a
// private mount namespace like aptScript. The rootfs keeps base's apt
// sources; its resolv.conf is an empty mount target, so the host's is
// bound over it for the downloads. --loglevel=http makes npm log one line
// per request, for the progress bar.
const layerScript = `set -eu
mount -t proc proc "$R/proc"
mkdir -p "$R/var/cache/apt/archives"
mount --bind "$CACHE" "$R/var/cache/apt/archives"
mount --bind /etc/resolv.conf "$R/etc/resolv.conf"
apt() { chroot "$R" apt-get -q -y -o APT::Sandbox::User=root -o Dpkg::Progress-Fancy=0 -o Dpkg::Use-Pty=0 "$@"; }
echo "` + stageMarker + stageAptUpdate + `"
apt update
echo "` + stageMarker + stageAptInstall + `"
# base trims man pages, but OpenJDK's postinst registers alternatives for
# them and fails without the directory.
mkdir -p "$R/usr/share/man/man1"
apt install --no-install-recommends "$@"
echo "` + stageMarker + stageNPM + `"
if [ -n "$NPM" ]; then
	# Node in the rootfs trusts only Debian's CAs; a host behind a TLS
	# proxy trusts its CA too, so lend npm the host's bundle for the download.
	ca=
	if [ -s /etc/ssl/certs/ca-certificates.crt ]; then
		ca=/tmp/airlock-host-ca.crt
		: >"$R$ca"
		mount --bind /etc/ssl/certs/ca-certificates.crt "$R$ca"
	fi
	chroot "$R" env HOME=/root NODE_EXTRA_CA_CERTS="$ca" npm_config_cache=/tmp/airlock-npm-cache \
		npm install --global --no-audit --no-fund --no-update-notifier --loglevel=http $NPM
	if [ -n "$ca" ]; then umount "$R$ca" && rm -f "$R$ca"; fi
	rm -rf "$R/tmp/airlock-npm-cache"
fi
if [ -n "$JAVA" ]; then
	(set -f; chroot "$R" $JAVA) # no globbing: the class path ends in /*
fi
# Build matplotlib's font cache now, as the sandbox user, instead of on
# every sandbox's first plot.
if [ -x "$R/usr/bin/python3" ] && chroot "$R" python3 -c 'import matplotlib' 2>/dev/null; then
	chroot --userspec=1000:1000 "$R" env HOME=/home/user MPLBACKEND=Agg python3 -c 'import matplotlib.pyplot'
fi
`

// installLayer is the real installFunc.
func installLayer(ctx context.Context, o layerOptions, out io.Writer) error {
	for _, tool := range []string{"chroot", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found in PATH", ErrToolMissing, tool)
		}
	}
	if err := os.MkdirAll(filepath.Join(o.CacheDir, "partial"), 0o755); err != nil {
		return fmt.Errorf("create apt cache: %w", err)
	}
	var javac string
	if o.JavaJars != "" {
		jars, err := javakernel.Fetch(ctx, o.JavaJars, javakernel.Repository())
		if err != nil {
			return err
		}
		if err := javakernel.Stage(filepath.Join(o.Target, javakernel.Dir), jars); err != nil {
			return err
		}
		javac = strings.Join(javakernel.CompileArgs(javakernel.Dir), " ")
	}
	args := append([]string{"-c", layerScript, "layer-stage"}, o.Packages...)
	env := []string{"R=" + o.Target, "CACHE=" + o.CacheDir, "NPM=" + strings.Join(o.NPM, " "), "JAVA=" + javac}
	if err := runIsolated(ctx, out, env, "sh", args...); err != nil {
		return fmt.Errorf("install %s: %w", strings.Join(append(o.Packages, o.NPM...), " "), err)
	}
	return nil
}

// fillCodeInterpreter builds code-interpreter-v1 in dir from a copy of the
// base rootfs at baseDir, so base is never rebuilt for it.
func (m *Manager) fillCodeInterpreter(ctx context.Context, baseDir, dir string, rep *reporter) error {
	tr := newLayerTracker()
	rep.Update(tr.Phase(), 0)
	start := time.Now()
	err := copyTree(ctx, baseDir, dir, func(frac float64) {
		if tr.Copied(frac) {
			rep.Update(tr.Phase(), tr.Percent())
		}
	})
	if err != nil {
		return err
	}
	m.log.Info("copied base rootfs", "template", CodeInterpreterAlias, "duration", time.Since(start).Round(time.Millisecond).String())

	out := m.progressWriter(CodeInterpreterAlias, tr, rep)
	opts := layerOptions{Target: dir, CacheDir: m.cacheDir(), Packages: ciPackages, NPM: ciNPM,
		JavaJars: filepath.Join(m.cfg.DataDir, "cache", "maven")}
	if err := m.install(ctx, opts, out); err != nil {
		out.Flush()
		return fmt.Errorf("%w (last output: %s)", err, out.Tail())
	}
	out.Flush()
	tr.Finalize()
	rep.Update(tr.Phase(), tr.Percent())
	return configureCodeInterpreter(dir)
}

// configureCodeInterpreter adds the interpreter's settings to the tree and
// trims what the installs left behind.
func configureCodeInterpreter(root string) error {
	steps := []struct {
		name string
		fn   func() error
	}{
		// Let `node`/`require('typescript')` find the global modules. The
		// matplotlib backend is deliberately not set here: ipykernel picks
		// its inline backend (what renders plt.show() as PNG results) only
		// when MPLBACKEND is unset.
		{"profile", func() error {
			return writeFile(root, "etc/profile.d/code-interpreter.sh", 0o644,
				"# Set by Airlock for the code interpreter.\nexport NODE_PATH=/usr/local/lib/node_modules\n")
		}},
		// Outside a kernel (python3 script.py) there is no display: plot
		// to files with Agg instead of failing to open Tk.
		{"matplotlibrc", func() error { return setMatplotlibBackend(root, "Agg") }},
		{"clean", func() error {
			if err := removeGlob(root, "root/.npm"); err != nil {
				return err
			}
			return cleanCaches(root)
		}},
		{"docs", func() error { return trimDocs(root) }},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return fmt.Errorf("configure %s: %w", s.name, err)
		}
	}
	return nil
}

// setMatplotlibBackend sets the backend in Debian's system-wide
// /etc/matplotlibrc, if matplotlib is installed.
func setMatplotlibBackend(root, backend string) error {
	const rel = "etc/matplotlibrc"
	data, err := os.ReadFile(filepath.Join(root, rel))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if k, _, ok := strings.Cut(strings.TrimSpace(l), ":"); ok && strings.TrimSpace(k) == "backend" {
			continue // an active backend line; commented ones start with '#'
		}
		lines = append(lines, l)
	}
	lines = append(lines, "backend: "+backend+" # set by Airlock: sandboxes have no display")
	return writeFile(root, rel, 0o644, strings.Join(lines, "\n")+"\n")
}

// copyTree copies the tree at src into the existing directory dst with
// `cp -a` (owners, modes, hard links, xattrs, device nodes), cloning file
// data where the filesystem can. progress gets the share copied so far,
// sampled twice a second from dst's size.
func copyTree(ctx context.Context, src, dst string, progress func(float64)) error {
	total, err := dirSize(src)
	if err != nil {
		return fmt.Errorf("measure %s: %w", src, err)
	}
	cmd := exec.CommandContext(ctx, "cp", "-a", "--reflink=auto", src+"/.", dst+"/")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return fmt.Errorf("copy %s: %w: %s", src, err, strings.TrimSpace(stderr.String()))
			}
			progress(1)
			return nil
		case <-tick.C:
			// Files vanish and appear under the walk; a failed sample is skipped.
			if n, err := dirSize(dst); err == nil && total > 0 {
				progress(float64(n) / float64(total))
			}
		}
	}
}
