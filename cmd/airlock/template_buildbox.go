package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"

	"github.com/airlock-sandbox/airlock/internal/buildbox"
	"github.com/airlock-sandbox/airlock/internal/network"
	"github.com/airlock-sandbox/airlock/internal/runtime"
	"github.com/airlock-sandbox/airlock/internal/runtime/oci"
)

// The build network: a bridge of its own (not the server's, whose firewall
// state the server keeps in memory), with the same protected ranges, so a
// build reaches the internet and nothing else. One build per host at a
// time holds it (buildNetLock).
const (
	buildBridge  = "airlockbuild0"
	buildSubnet  = "10.215.0.0/24"
	buildNetLock = "/run/airlock/build-network.lock"
)

// buildRunner sets up what runs template build steps in sandboxes: the
// installed runtimes (state under the data dir, apart from the server's
// sandboxes), the build network, and the runner. done undoes all of it.
func buildRunner(ctx context.Context, dataDir string, usernsBase int, log *slog.Logger) (*buildbox.Runner, func(), error) {
	var undo []func()
	done := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	fail := func(err error) (*buildbox.Runner, func(), error) {
		done()
		return nil, nil, err
	}
	if err := os.MkdirAll(filepath.Dir(buildNetLock), 0o755); err != nil {
		return fail(err)
	}
	lock, err := os.OpenFile(buildNetLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fail(err)
	}
	undo = append(undo, func() { lock.Close() })
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fail(fmt.Errorf("lock %s: %w", buildNetLock, err))
	}

	subnet := netip.MustParsePrefix(buildSubnet)
	nm, err := network.New(ctx, network.Config{Bridge: buildBridge, Subnet: subnet}, log)
	if err != nil {
		return fail(fmt.Errorf("build network: %w", err))
	}
	undo = append(undo, func() {
		if err := nm.Destroy(context.WithoutCancel(ctx), true); err != nil {
			log.Warn("remove the build network", "err", err)
		}
		nm.Close()
	})

	drivers := map[string]runtime.Driver{}
	for _, name := range []string{oci.RuntimeRunsc, oci.RuntimeRunc} {
		cfg := oci.Config{
			Runtime:      name,
			StateDir:     filepath.Join(dataDir, "builds"),
			RuntimeRoot:  filepath.Join(filepath.Dir(runtimeRoot(dataDir, name)), "build-"+name),
			CgroupParent: "airlock-build",
			DiskCacheDir: filepath.Join(dataDir, "sandboxes.disks"), // the server's blank images
		}
		if name == oci.RuntimeRunc && usernsBase > 0 {
			cfg.UserNS = &oci.IDRange{HostID: uint32(usernsBase), Size: 65536}
		}
		d, err := oci.New(cfg, log)
		if errors.Is(err, oci.ErrNoBinary) {
			continue
		}
		if err != nil {
			return fail(fmt.Errorf("build runtime %s: %w", name, err))
		}
		drivers[name] = d
	}
	def := oci.RuntimeRunsc
	if _, ok := drivers[def]; !ok {
		def = oci.RuntimeRunc
	}
	ca := ""
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		ca = "/etc/ssl/certs/ca-certificates.crt"
	}
	r, err := buildbox.New(buildbox.Config{
		Drivers:  drivers,
		Default:  def,
		Network:  nm,
		Policy:   network.Policy{AllowInternet: true},
		CABundle: ca,
		PidsMax:  1024,
		Log:      log,
	})
	if err != nil {
		return fail(err)
	}
	return r, done, nil
}
