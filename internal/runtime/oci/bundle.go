package oci

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/internal/diskimg"
)

// bundle is the on-disk layout of one sandbox under StateDir/<id>.
type bundle struct{ dir string }

func (d *Driver) bundle(id string) bundle { return bundle{dir: filepath.Join(d.cfg.StateDir, id)} }

func (b bundle) rootfs() string { return filepath.Join(b.dir, "rootfs") }

// disk holds everything the sandbox can grow (its upper layer, and the
// runtime's log): a mount of the sandbox's size-limited image when it has a
// disk limit, else a plain directory.
func (b bundle) disk() string       { return filepath.Join(b.dir, "disk") }
func (b bundle) diskImage() string  { return filepath.Join(b.dir, "disk.img") }
func (b bundle) upper() string      { return filepath.Join(b.disk(), "upper") }
func (b bundle) work() string       { return filepath.Join(b.disk(), "work") }
func (b bundle) etc() string        { return filepath.Join(b.dir, "etc") }
func (b bundle) lower() string      { return filepath.Join(b.dir, "lower") } // idmapped template, during create
func (b bundle) meta() string       { return filepath.Join(b.dir, "meta.json") }
func (b bundle) config() string     { return filepath.Join(b.dir, "config.json") }
func (b bundle) runtimeLog() string { return filepath.Join(b.disk(), "runtime.log") }
func (b bundle) pidFile() string    { return filepath.Join(b.dir, "init.pid") }
func (b bundle) exists() bool       { _, err := os.Stat(b.dir); return err == nil }
func (b bundle) hostsFile() string  { return filepath.Join(b.etc(), "hosts") }
func (b bundle) hostnameFile() string {
	return filepath.Join(b.etc(), "hostname")
}

// meta is what Info and List need after a server restart.
type meta struct {
	ID       string            `json:"id"`
	Runtime  string            `json:"runtime"`
	Created  time.Time         `json:"created"`
	Labels   map[string]string `json:"labels,omitempty"`
	Hostname string            `json:"hostname,omitempty"`
	// ExportLayer: all its changes are in upper(), see runtime.LayerExporter.
	ExportLayer bool `json:"exportLayer,omitempty"`
}

func (b bundle) writeMeta(m meta) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return writeFileAtomic(b.meta(), data, 0o600)
}

func (b bundle) readMeta() (meta, error) {
	var m meta
	data, err := os.ReadFile(b.meta())
	if err != nil {
		return m, err
	}
	return m, json.Unmarshal(data, &m)
}

// foreign reports whether id's bundle was made by another runtime's driver
// sharing the state dir (one server runs runc and runsc sandboxes side by
// side); such a bundle is not this driver's to report, stop or remove.
func (d *Driver) foreign(id string) bool {
	m, err := d.bundle(id).readMeta()
	return err == nil && m.Runtime != "" && m.Runtime != d.cfg.Runtime
}

// readPid reads the init's host PID from the pid file the runtime wrote.
func (b bundle) readPid() (int, error) {
	data, err := os.ReadFile(b.pidFile())
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("bad pid file %q", data)
	}
	return pid, nil
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// overlayOptions are the mount options of a sandbox's root: the template
// read-only under a per-sandbox upper dir.
func (b bundle) overlayOptions(lower string) (string, error) {
	for _, s := range []string{lower, b.upper(), b.work()} {
		if strings.ContainsAny(s, ",:\\") {
			return "", fmt.Errorf("oci: overlay path %q contains a reserved character", s)
		}
	}
	return fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", lower, b.upper(), b.work()), nil
}

// mountOverlay mounts the sandbox's root on the host, for runtimes that
// read the rootfs from the host side (runsc's gofer).
func (b bundle) mountOverlay(lower string) error {
	opts, err := b.overlayOptions(lower)
	if err != nil {
		return err
	}
	if err := unix.Mount("overlay", b.rootfs(), "overlay", unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("oci: mount overlay on %s: %w", b.rootfs(), err)
	}
	return nil
}

// unmountOverlay unmounts the rootfs (retrying while busy, detaching
// lazily as the last resort).
func (b bundle) unmountOverlay() error { return diskimg.Unmount(b.rootfs()) }

// writeEtc writes the files the sandbox sees as /etc/hostname and
// /etc/hosts (bind-mounted read-only) and seeds /etc/resolv.conf in the
// upper layer, so the sandbox may edit its own copy.
func (b bundle) writeEtc(hostname string) error {
	if err := os.MkdirAll(b.etc(), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(b.hostnameFile(), []byte(hostname+"\n"), 0o644); err != nil {
		return err
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + hostname + "\n"
	if err := os.WriteFile(b.hostsFile(), []byte(hosts), 0o644); err != nil {
		return err
	}
	resolv, err := hostResolvConf()
	if err != nil {
		return err
	}
	etc := filepath.Join(b.upper(), "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(etc, "resolv.conf"), resolv, 0o644)
}

// tmpMarker is the entry that keeps a sandbox's /tmp non-empty.
const tmpMarker = ".airlock-disk"

// keepTmpOnDisk puts an entry in the sandbox's /tmp (in its upper layer,
// with the template's mode) so that a runtime that would mount a tmpfs on
// an empty /tmp leaves it on the sandbox's disk.
func (b bundle) keepTmpOnDisk(lower string) error {
	mode := os.FileMode(0o1777)
	if fi, err := os.Stat(filepath.Join(lower, "tmp")); err == nil && fi.IsDir() {
		mode = fi.Mode()&os.ModePerm | fi.Mode()&os.ModeSticky
	}
	tmp := filepath.Join(b.upper(), "tmp")
	if err := os.Mkdir(tmp, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode); err != nil { // Mkdir's mode passes the umask
		return err
	}
	return os.WriteFile(filepath.Join(tmp, tmpMarker), nil, 0o444)
}

// hostResolvConf returns the host's resolver config. With systemd-resolved
// /etc/resolv.conf names 127.0.0.53, which is unreachable from a sandbox's
// netns, so prefer the upstream list resolved keeps.
func hostResolvConf() ([]byte, error) {
	for _, p := range []string{"/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"} {
		if data, err := os.ReadFile(p); err == nil {
			return data, nil
		}
	}
	return []byte{}, nil
}
