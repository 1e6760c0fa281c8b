package oci

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/airlock-sandbox/airlock/internal/runtime"
)

// ErrCheckpointUnsupported is returned by Checkpoint and Restore when the
// runtime is runc: that needs CRIU, which fails on these kernels. It wraps
// runtime.ErrNotSupported.
var ErrCheckpointUnsupported = fmt.Errorf("oci: checkpoint/restore needs runsc: %w", runtime.ErrNotSupported)

// Checkpoint saves the sandbox's memory and filesystem state to imageDir.
// runsc stops the sandbox once the image is written.
func (d *Driver) Checkpoint(ctx context.Context, id, imageDir string) error {
	if !d.Capabilities().Checkpoint {
		return ErrCheckpointUnsupported
	}
	if err := validID(id); err != nil {
		return fmt.Errorf("%w: %v", runtime.ErrNotFound, err)
	}
	unlock := d.lock(id)
	defer unlock()
	if err := os.MkdirAll(imageDir, 0o700); err != nil {
		return fmt.Errorf("oci: %w", err)
	}
	if _, err := d.run(ctx, "checkpoint", "--image-path", imageDir, id); err != nil {
		if notExist(err) && !d.bundle(id).exists() {
			return fmt.Errorf("oci: %s: %w", id, runtime.ErrNotFound)
		}
		return err
	}
	return nil
}

// Restore starts a new sandbox from spec with the state saved in imageDir.
// Restoring one image more than once forks it.
func (d *Driver) Restore(ctx context.Context, spec runtime.Spec, imageDir string) (info runtime.Info, err error) {
	if !d.Capabilities().Checkpoint {
		return runtime.Info{}, ErrCheckpointUnsupported
	}
	if err := validID(spec.ID); err != nil {
		return runtime.Info{}, err
	}
	if _, err := os.Stat(imageDir); err != nil {
		return runtime.Info{}, fmt.Errorf("oci: checkpoint image: %w", err)
	}
	unlock := d.lock(spec.ID)
	defer unlock()
	b := d.bundle(spec.ID)
	if err := os.Mkdir(b.dir, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return runtime.Info{}, fmt.Errorf("oci: %s: %w", spec.ID, runtime.ErrAlreadyExists)
		}
		return runtime.Info{}, fmt.Errorf("oci: %w", err)
	}
	defer func() {
		if err != nil {
			if cerr := d.cleanup(context.WithoutCancel(ctx), spec.ID); cerr != nil {
				d.log.Warn("oci: cleanup after failed restore", "id", spec.ID, "err", cerr)
			}
		}
	}()
	if _, err := d.prepareBundle(ctx, spec, b); err != nil {
		return runtime.Info{}, err
	}
	if err := d.runDetached(ctx, b.runtimeLog(), nil, nil, d.diskArgs(spec), "restore", "--detach", "--bundle", b.dir, "--image-path", imageDir, spec.ID); err != nil {
		return runtime.Info{}, err
	}
	return d.info(ctx, spec.ID)
}
