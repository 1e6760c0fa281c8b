package template

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ErrToolMissing means a host tool the build needs (debootstrap, chroot) is not installed.
var ErrToolMissing = errors.New("template: build tool missing")

// populateOptions says what to put into a fresh rootfs.
type populateOptions struct {
	Target   string // empty directory to fill
	Mirror   string
	Security string // security archive, for the -security suite
	Suite    string
	CacheDir string   // shared .deb cache, survives template deletion
	Extra    []string // installed by apt-get inside the rootfs after debootstrap
}

// populateFunc fills opts.Target with a Debian system, writing progress
// lines (debootstrap and apt-get output) to out. Tests replace it.
type populateFunc func(ctx context.Context, opts populateOptions, out io.Writer) error

const (
	stageMarker     = "airlock-stage: "
	stageAptUpdate  = "apt-update"
	stageAptInstall = "apt-install"
	stageNPM        = "npm"
)

// dpkgConfig makes dpkg skip fsync, which sandboxes (disposable, like
// containers) do not need and which dominates install time on VM disks, and
// leave out documentation nobody reads in a sandbox. Docker's Debian images
// ship the same settings. It stays in the template so apt-get inside a
// sandbox is fast and lean too.
const (
	dpkgConfig        = "etc/dpkg/dpkg.cfg.d/airlock"
	dpkgConfigContent = `# Written by Airlock.
force-unsafe-io
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
`
)

// aptScript runs apt-get inside the new rootfs: it adds the updates and
// security suites, installs the packages and applies pending updates to
// what debootstrap installed. It runs in a private mount namespace, so the
// proc and cache mounts vanish with it even if it is killed.
const aptScript = `set -eu
printf 'deb %s %s main\ndeb %s %s-updates main\ndeb %s %s-security main\n' \
	"$MIRROR" "$SUITE" "$MIRROR" "$SUITE" "$SECURITY" "$SUITE" >"$R/etc/apt/sources.list"
mount -t proc proc "$R/proc"
mkdir -p "$R/var/cache/apt/archives"
mount --bind "$CACHE" "$R/var/cache/apt/archives"
apt() { chroot "$R" apt-get -q -y -o APT::Sandbox::User=root -o Dpkg::Progress-Fancy=0 -o Dpkg::Use-Pty=0 "$@"; }
echo "` + stageMarker + stageAptUpdate + `"
apt update
echo "` + stageMarker + stageAptInstall + `"
apt install --no-install-recommends "$@"
apt upgrade
`

// populateDebootstrap is the real populateFunc: debootstrap for the minimal
// system, then apt-get for packages whose dependencies debootstrap's simple
// resolver gets wrong (virtual packages, e.g. most of npm's).
func populateDebootstrap(ctx context.Context, o populateOptions, out io.Writer) error {
	for _, tool := range []string{"debootstrap", "chroot", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %s not found in PATH (apt-get install debootstrap)", ErrToolMissing, tool)
		}
	}
	if err := os.MkdirAll(filepath.Join(o.CacheDir, "partial"), 0o755); err != nil {
		return fmt.Errorf("create apt cache: %w", err)
	}
	// dpkg inside the target reads this from the start of debootstrap's
	// second stage on; the first stage's plain extraction ignores it.
	if err := writeFile(o.Target, dpkgConfig, 0o644, dpkgConfigContent); err != nil {
		return fmt.Errorf("write dpkg config: %w", err)
	}
	args := []string{"--variant=minbase", "--cache-dir=" + o.CacheDir, o.Suite, o.Target, o.Mirror}
	if err := runIsolated(ctx, out, nil, "debootstrap", args...); err != nil {
		return fmt.Errorf("debootstrap: %w", err)
	}
	if len(o.Extra) == 0 {
		return nil
	}
	script := append([]string{"-c", aptScript, "apt-stage"}, o.Extra...)
	env := []string{"R=" + o.Target, "CACHE=" + o.CacheDir,
		"MIRROR=" + o.Mirror, "SECURITY=" + o.Security, "SUITE=" + o.Suite}
	if err := runIsolated(ctx, out, env, "sh", script...); err != nil {
		return fmt.Errorf("apt-get install %s: %w", strings.Join(o.Extra, " "), err)
	}
	return nil
}

// runIsolated runs a command in its own mount namespace and process group,
// so its mounts die with it and cancelling ctx kills all of its children.
func runIsolated(ctx context.Context, out io.Writer, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = append(os.Environ(),
		"DEBIAN_FRONTEND=noninteractive",
		"LC_ALL=C.UTF-8",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	)
	cmd.Env = append(cmd.Env, env...)
	// Go makes the new mount namespace's mounts private before exec.
	// Pdeathsig stops the tool if airlock itself dies mid-build.
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Unshareflags: syscall.CLONE_NEWNS,
		Setpgid:      true,
		Pdeathsig:    syscall.SIGKILL,
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd.Run()
}
