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

// buildNet is where build sandboxes run: a bridge of their own (not the
// server's, whose firewall state the server keeps in memory), with the same
// protected ranges, so a build reaches the internet and nothing else.
type buildNet struct {
	bridge, subnet string
	// lock, if set, is held while the runner lives: one user of the
	// bridge per host at a time.
	lock string
	// tag keeps the runtimes' state apart from other build runners'.
	tag string
}

// cliBuildNet is `airlock template build`'s (one at a time per host);
// serveBuildNet is the server's, for the build API (its builds share it).
var (
	cliBuildNet   = buildNet{bridge: "airlockbuild0", subnet: "10.215.0.0/24", lock: "/run/airlock/build-network.lock", tag: "build"}
	serveBuildNet = buildNet{bridge: "airlockbuild1", subnet: "10.215.1.0/24", tag: "serve-build"}
)

// buildRunner sets up what runs template build steps in sandboxes: the
// installed runtimes (state under the data dir, apart from the server's
// sandboxes), the build network, and the runner. done undoes all of it.
func buildRunner(ctx context.Context, dataDir string, usernsBase int, bn buildNet, log *slog.Logger) (*buildbox.Runner, func(), error) {
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
	if bn.lock != "" {
		if err := os.MkdirAll(filepath.Dir(bn.lock), 0o755); err != nil {
			return fail(err)
		}
		lock, err := os.OpenFile(bn.lock, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return fail(err)
		}
		undo = append(undo, func() { lock.Close() })
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			return fail(fmt.Errorf("lock %s: %w", bn.lock, err))
		}
	}

	subnet := netip.MustParsePrefix(bn.subnet)
	nm, err := network.New(ctx, network.Config{Bridge: bn.bridge, Subnet: subnet}, log)
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
			StateDir:     filepath.Join(dataDir, bn.tag+"s"),
			RuntimeRoot:  filepath.Join(filepath.Dir(runtimeRoot(dataDir, name)), bn.tag+"-"+name),
			CgroupParent: "airlock-" + bn.tag,
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
