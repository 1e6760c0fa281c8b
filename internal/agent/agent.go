// Package agent carries the small in-sandbox agent binary (cmd/envd) inside
// airlock when the build embeds it (build tag airlock_agent, see
// scripts/build.sh) and installs it where sandboxes can bind-mount it.
package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotEmbedded means this airlock was built without the agent; the server
// then bind-mounts its own binary, which runs `envd` and `interpreter` too.
var ErrNotEmbedded = errors.New("agent: not embedded in this build")

// Install writes the embedded agent to dir as envd-<hash>, unless it is
// already there, and returns its path.
func Install(dir string) (string, error) {
	if len(embedded) == 0 {
		return "", ErrNotEmbedded
	}
	return install(dir, embedded)
}

// install writes data to dir/envd-<sha256 prefix> atomically. The name
// changes with the content, so a file that sandboxes have bind-mounted is
// never rewritten in place.
func install(dir string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	path := filepath.Join(dir, "envd-"+hex.EncodeToString(sum[:6]))
	if fi, err := os.Stat(path); err == nil && fi.Size() == int64(len(data)) && fi.Mode().Perm() == 0o755 {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".envd-*")
	if err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename it is gone anyway
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return "", fmt.Errorf("agent: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return "", fmt.Errorf("agent: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("agent: %w", err)
	}
	return path, nil
}
