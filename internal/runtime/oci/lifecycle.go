package oci

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"golang.org/x/sys/unix"

	"github.com/airlock-sandbox/airlock/internal/diskimg"
	"github.com/airlock-sandbox/airlock/internal/mountinfo"
	"github.com/airlock-sandbox/airlock/internal/runtime"
)

// Create mounts the overlay rootfs, writes the bundle and starts the init
// process. On any error everything it made is undone.
func (d *Driver) Create(ctx context.Context, spec runtime.Spec) (info runtime.Info, err error) {
	if err := validID(spec.ID); err != nil {
		return runtime.Info{}, err
	}
	if len(spec.Args) == 0 {
		return runtime.Info{}, errors.New("oci: spec has no Args")
	}
	if fi, err := os.Stat(spec.RootfsDir); err != nil || !fi.IsDir() {
		return runtime.Info{}, fmt.Errorf("oci: rootfs %q is not a directory: %v", spec.RootfsDir, err)
	}
	unlock := d.lock(spec.ID)
	defer unlock()

	b := d.bundle(spec.ID)
	// Mkdir (not MkdirAll) is the atomic claim on the ID.
	if err := os.Mkdir(b.dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return runtime.Info{}, fmt.Errorf("oci: %s: %w", spec.ID, runtime.ErrAlreadyExists)
		}
		return runtime.Info{}, fmt.Errorf("oci: %w", err)
	}
	defer func() {
		if err != nil {
			if cerr := d.cleanup(context.WithoutCancel(ctx), spec.ID); cerr != nil {
				d.log.Warn("oci: cleanup after failed create", "id", spec.ID, "err", cerr)
			}
		}
	}()
	m, err := d.prepareBundle(ctx, spec, b)
	if err != nil {
		return runtime.Info{}, err
	}
	runtime.MarkPhase(ctx, "rootfs")
	// One `run --detach` instead of `create` + `start`, and no `state`
	// afterwards: each runtime invocation costs a process start on the
	// create hot path.
	args := []string{"run", "--detach", "--bundle", b.dir, "--pid-file", b.pidFile()}
	var extra []*os.File
	if spec.ReadyFile != nil {
		extra = []*os.File{spec.ReadyFile} // descriptor 3 of the runtime
		args = append(args, d.flavor.passFD(runtime.ReadyFD)...)
	}
	err = d.runDetached(ctx, b.runtimeLog(), spec.Stdio, extra, d.diskArgs(spec), append(args, spec.ID)...)
	if d.userns != nil {
		// The overlay is mounted (or never will be): it holds the idmapped
		// view itself.
		if uerr := unmountLower(b.lower()); err == nil {
			err = uerr
		}
	}
	if err != nil {
		return runtime.Info{}, err
	}
	pid, err := b.readPid()
	if err != nil {
		return runtime.Info{}, fmt.Errorf("oci: %s started without a pid file: %w", spec.ID, err)
	}
	if d.userns != nil {
		if err := d.userns.limitSandbox(ctx, pid); err != nil {
			return runtime.Info{}, err
		}
	}
	return runtime.Info{ID: spec.ID, PID: pid, State: runtime.StateRunning, Created: m.Created, Labels: spec.Labels}, nil
}

// prepareBundle makes the directories, mounts the rootfs and writes the
// metadata and config.json.
func (d *Driver) prepareBundle(ctx context.Context, spec runtime.Spec, b bundle) (meta, error) {
	for _, dir := range []string{b.rootfs(), b.disk()} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return meta{}, fmt.Errorf("oci: %w", err)
		}
	}
	// meta.json first: from here on List sees the bundle and can clean it.
	m := meta{ID: spec.ID, Runtime: d.cfg.Runtime, Created: time.Now().UTC(), Labels: spec.Labels, Hostname: spec.Hostname, ExportLayer: spec.ExportLayer}
	if err := b.writeMeta(m); err != nil {
		return meta{}, fmt.Errorf("oci: write meta: %w", err)
	}
	if err := d.mountDisk(ctx, spec, b); err != nil {
		return meta{}, err
	}
	for _, dir := range []string{b.upper(), b.work()} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return meta{}, fmt.Errorf("oci: %w", err)
		}
	}
	if d.userns != nil {
		if err := d.userns.letPass(b.dir); err != nil {
			return meta{}, err
		}
	}
	hostname := spec.Hostname
	if hostname == "" {
		hostname = spec.ID
	}
	spec.Hostname = hostname
	if err := b.writeEtc(hostname); err != nil {
		return meta{}, fmt.Errorf("oci: write /etc files: %w", err)
	}
	if d.flavor.tmpfsOnEmptyTmp {
		if err := b.keepTmpOnDisk(spec.RootfsDir); err != nil {
			return meta{}, fmt.Errorf("oci: keep /tmp on disk: %w", err)
		}
	}
	if d.userns != nil {
		for _, dir := range []string{b.upper(), b.work()} {
			if err := d.userns.chownTree(dir); err != nil {
				return meta{}, fmt.Errorf("oci: give the sandbox's root its upper layer: %w", err)
			}
		}
		if err := d.userns.mountLower(spec.RootfsDir, b.lower()); err != nil {
			return meta{}, err
		}
	}
	// runc mounts the overlay itself, inside the container's mount
	// namespace (the first entry of config.json's mounts): a host mount per
	// sandbox would make every later create slower, as runc and the kernel
	// walk the host's whole mount table (measured: +40 ms at 500 sandboxes).
	if _, err := b.overlayOptions(d.lowerDir(spec, b)); err != nil {
		return meta{}, err
	}
	if d.flavor.hostOverlay {
		if err := b.mountOverlay(spec.RootfsDir); err != nil {
			return meta{}, err
		}
	}
	data, err := marshalSpec(d.ociSpec(spec, b))
	if err != nil {
		return meta{}, err
	}
	if err := writeFileAtomic(b.config(), data, 0o600); err != nil {
		return meta{}, fmt.Errorf("oci: write config.json: %w", err)
	}
	return m, nil
}

// mountDisk gives the sandbox its own filesystem of spec's DiskMB for
// everything it can write; with no limit the disk is a plain directory.
func (d *Driver) mountDisk(ctx context.Context, spec runtime.Spec, b bundle) error {
	mb := spec.Resources.DiskMB
	if mb <= 0 {
		return nil
	}
	if d.flavor.diskSlackMB != nil {
		mb += d.flavor.diskSlackMB(mb)
	}
	if low, free, err := d.hostDisk(); err != nil {
		return err
	} else if low {
		return fmt.Errorf("oci: %d MiB free in %s, reserve %d MiB: %w", free>>20, d.cfg.StateDir, d.cfg.DiskReserveMB, runtime.ErrHostDiskLow)
	}
	if err := d.disks.Make(ctx, b.diskImage(), mb); err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	if err := diskimg.Mount(b.diskImage(), b.disk()); err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	return nil
}

// HostDiskLow reports whether the state dir's filesystem, which holds every
// sandbox's disk image, is below the reserve kept for the server.
func (d *Driver) HostDiskLow() (bool, error) {
	low, _, err := d.hostDisk()
	return low, err
}

func (d *Driver) hostDisk() (low bool, free uint64, err error) {
	if d.cfg.DiskReserveMB <= 0 {
		return false, 0, nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(d.cfg.StateDir, &st); err != nil {
		return false, 0, fmt.Errorf("oci: %w", err)
	}
	free = st.Bavail * uint64(st.Bsize)
	return free < uint64(d.cfg.DiskReserveMB)<<20, free, nil
}

// lowerDir is the overlay's lower layer: the template, or its idmapped
// view when sandboxes have user namespaces.
func (d *Driver) lowerDir(spec runtime.Spec, b bundle) string {
	if d.userns != nil {
		return b.lower()
	}
	return spec.RootfsDir
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// diskArgs are the runtime's flags for spec's disk limit.
func (d *Driver) diskArgs(spec runtime.Spec) []string {
	if spec.ExportLayer && d.flavor.ownKernel {
		// Writes go through the gofer to the host's overlay, on the image.
		return []string{"--overlay2=none"}
	}
	if spec.Resources.DiskMB <= 0 || d.flavor.diskArgs == nil {
		return nil
	}
	return d.flavor.diskArgs(spec.Resources.DiskMB)
}

// Kill stops every process of the sandbox and removes its mounts, cgroups
// and bundle.
func (d *Driver) Kill(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	unlock := d.lock(id)
	defer unlock()
	defer d.forget(id)
	b := d.bundle(id)
	if d.foreign(id) {
		return fmt.Errorf("oci: %s belongs to another runtime: %w", id, runtime.ErrNotFound)
	}
	if !b.exists() {
		if _, err := d.state(ctx, id); err != nil {
			return fmt.Errorf("oci: %s: %w", id, runtime.ErrNotFound)
		}
	}
	return d.cleanup(ctx, id)
}

// cleanup removes everything Create may have made, tolerating parts that
// are already gone (crashed container, half-done create).
func (d *Driver) cleanup(ctx context.Context, id string) error {
	var errs []error
	d.stop(ctx, id)
	if _, err := d.run(ctx, "delete", "--force", id); err != nil && !notExist(err) {
		errs = append(errs, err)
	}
	b := d.bundle(id)
	if err := b.unmountOverlay(); err != nil {
		errs = append(errs, err)
	}
	if err := unmountLower(b.lower()); err != nil {
		errs = append(errs, err)
	}
	if err := diskimg.Unmount(b.disk()); err != nil {
		errs = append(errs, err)
	}
	// A dead init can leave its cgroup behind (or still-exiting tasks in
	// it); retry briefly before calling it a leak.
	path := d.cgroupsPath(id)
	var cgErr error
	for i := 0; i < 50; i++ {
		if cgErr = d.cgroups.remove(path); cgErr == nil && !d.cgroups.exists(path) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if cgErr != nil {
		errs = append(errs, fmt.Errorf("oci: remove cgroups: %w", cgErr))
	}
	if len(errs) == 0 || !isMounted(b.rootfs()) && !isMounted(b.disk()) {
		if err := os.RemoveAll(b.dir); err != nil {
			errs = append(errs, fmt.Errorf("oci: remove bundle: %w", err))
		}
	}
	return errors.Join(errs...)
}

// stop kills a runc container's init and waits for it to exit, so that the
// `delete --force` after it finds the container stopped: on a running one,
// runc's delete sleeps 100 ms before its first look. The init is PID 1 of
// its pid namespace, so everything else in the sandbox dies with it. The
// wait uses a pidfd opened before the kill, so a recycled PID cannot fool
// it. runsc is left to `delete --force`: its init's host PID is the
// sandbox process, which outlives the container's processes.
func (d *Driver) stop(ctx context.Context, id string) {
	if !d.flavor.killInitFirst {
		return
	}
	pid, err := d.bundle(id).readPid()
	if err != nil {
		return
	}
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // already gone
	}
	defer unix.Close(pidfd)
	if _, err := d.run(ctx, "kill", id, "KILL"); err != nil {
		return // not running (or not ours): delete --force sorts it out
	}
	fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		n, err := unix.Poll(fds, 100)
		if n > 0 || (err != nil && !errors.Is(err, unix.EINTR)) {
			return
		}
	}
}

// Info reports one sandbox.
func (d *Driver) Info(ctx context.Context, id string) (runtime.Info, error) {
	if err := validID(id); err != nil {
		return runtime.Info{}, fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	return d.info(ctx, id)
}

func (d *Driver) info(ctx context.Context, id string) (runtime.Info, error) {
	b := d.bundle(id)
	m, merr := b.readMeta()
	if merr == nil && m.Runtime != "" && m.Runtime != d.cfg.Runtime {
		return runtime.Info{}, fmt.Errorf("oci: %s belongs to runtime %s: %w", id, m.Runtime, runtime.ErrNotFound)
	}
	st, serr := d.state(ctx, id)
	if merr != nil && serr != nil {
		if !b.exists() {
			return runtime.Info{}, fmt.Errorf("oci: %s: %w", id, runtime.ErrNotFound)
		}
		// A bundle without metadata is a create that died half-way: report
		// it stopped so the caller can Kill (clean) it.
		return runtime.Info{ID: id, State: runtime.StateStopped}, nil
	}
	if serr != nil {
		if !notExist(serr) {
			return runtime.Info{}, serr
		}
		st = containerState{ID: id, Status: "stopped"}
	}
	return makeInfo(id, m, st), nil
}

func makeInfo(id string, m meta, st containerState) runtime.Info {
	info := runtime.Info{ID: id, Labels: m.Labels, Created: m.Created, State: runtime.StateStopped}
	if info.Created.IsZero() {
		info.Created = st.Created
	}
	switch st.Status {
	case "created":
		info.State = runtime.StateCreated
	case "running":
		info.State = runtime.StateRunning
	case "paused", "pausing":
		info.State = runtime.StatePaused
	}
	if info.State != runtime.StateStopped {
		info.PID = st.PID
	}
	return info
}

// List reports every bundle under StateDir and every container the runtime
// knows under RuntimeRoot. Bundles whose container is gone are StateStopped
// so the orchestrator can Kill (clean) them.
func (d *Driver) List(ctx context.Context) ([]runtime.Info, error) {
	states, err := d.list(ctx)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(d.cfg.StateDir)
	if err != nil {
		return nil, fmt.Errorf("oci: %w", err)
	}
	seen := map[string]bool{}
	var out []runtime.Info
	for _, e := range entries {
		if !e.IsDir() || validID(e.Name()) != nil {
			continue
		}
		id := e.Name()
		seen[id] = true
		m, _ := d.bundle(id).readMeta()
		if m.Runtime != "" && m.Runtime != d.cfg.Runtime {
			continue // another runtime's driver on this state dir reports it
		}
		st, ok := states[id]
		if !ok {
			st = containerState{ID: id, Status: "stopped"}
		}
		out = append(out, makeInfo(id, m, st))
	}
	// Containers without a bundle (bundle dir removed by hand) still hold
	// cgroups and processes; report them so they can be killed too.
	for id, st := range states {
		if !seen[id] && validID(id) == nil {
			out = append(out, makeInfo(id, meta{}, st))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Stats samples the sandbox's cgroup.
func (d *Driver) Stats(ctx context.Context, id string) (runtime.Stats, error) {
	if err := validID(id); err != nil {
		return runtime.Stats{}, fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	if !d.bundle(id).exists() || d.foreign(id) {
		return runtime.Stats{}, fmt.Errorf("oci: %s: %w", id, runtime.ErrNotFound)
	}
	s, err := d.cgroups.stats(d.cgroupsPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return runtime.Stats{}, fmt.Errorf("oci: %s has no cgroup (not running): %w", id, runtime.ErrNotFound)
	}
	if err != nil {
		return runtime.Stats{}, fmt.Errorf("oci: stats %s: %w", id, err)
	}
	if b := d.bundle(id); fileExists(b.diskImage()) {
		if used, total, err := diskimg.Usage(b.disk()); err == nil {
			s.DiskUsed, s.DiskTotal = used, total
		}
	}
	return s, nil
}

// Pause freezes every process of the sandbox.
// LayerDir names the upper layer of a sandbox created with ExportLayer.
func (d *Driver) LayerDir(ctx context.Context, id string) (string, uint32, error) {
	if err := validID(id); err != nil {
		return "", 0, fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	b := d.bundle(id)
	m, err := b.readMeta()
	if err != nil {
		return "", 0, fmt.Errorf("oci: %s: %w", id, runtime.ErrNotFound)
	}
	if !m.ExportLayer {
		return "", 0, fmt.Errorf("oci: %s was not created with ExportLayer: %w", id, runtime.ErrNotSupported)
	}
	var base uint32
	if d.userns != nil {
		base = d.userns.ids.HostID
	}
	return b.upper(), base, nil
}

func (d *Driver) Pause(ctx context.Context, id string) error {
	return d.simple(ctx, id, "pause")
}

// Resume thaws a paused sandbox.
func (d *Driver) Resume(ctx context.Context, id string) error {
	return d.simple(ctx, id, "resume")
}

func (d *Driver) simple(ctx context.Context, id, verb string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	unlock := d.lock(id)
	defer unlock()
	if _, err := d.run(ctx, verb, id); err != nil {
		if notExist(err) {
			return fmt.Errorf("oci: %s: %w", id, runtime.ErrNotFound)
		}
		return err
	}
	return nil
}

func isMounted(path string) bool {
	_, ok, err := mountinfo.At(path)
	return err == nil && ok
}

// Runtime logs are capped at runtimeLogMax; a rotation keeps the newest
// runtimeLogKeep bytes. The log is on the sandbox's own disk, but a guest
// making the runtime complain (gVisor logs each unsupported syscall) must
// not fill that disk with it.
const (
	runtimeLogMax  = 4 << 20
	runtimeLogKeep = 512 << 10
)

// RotateLogs trims every sandbox's runtime log past runtimeLogMax to its
// newest runtimeLogKeep bytes. The runtime appends (O_APPEND), so its
// writes land after the kept part; lines written during the rotation may
// be lost, as with any copy-truncate rotation.
func (d *Driver) RotateLogs(ctx context.Context) error {
	logs, err := filepath.Glob(filepath.Join(d.cfg.StateDir, "*", "disk", "runtime.log"))
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range logs {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err := rotateLog(p, runtimeLogMax, runtimeLogKeep); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func rotateLog(p string, maxSize, keep int64) error {
	f, err := os.OpenFile(p, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() <= maxSize || !fi.Mode().IsRegular() {
		return err
	}
	tail := make([]byte, keep)
	n, err := f.ReadAt(tail, fi.Size()-keep)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("oci: rotate %s: %w", p, err)
	}
	tail = tail[:n]
	if i := bytes.IndexByte(tail, '\n'); i >= 0 {
		tail = tail[i+1:] // start at a whole line
	}
	note := fmt.Sprintf("[airlock: %d bytes of older log dropped]\n", fi.Size()-int64(len(tail)))
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("oci: rotate %s: %w", p, err)
	}
	if _, err := f.WriteAt(append([]byte(note), tail...), 0); err != nil {
		return fmt.Errorf("oci: rotate %s: %w", p, err)
	}
	return nil
}
