package template

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-sandbox/airlock/internal/store"
)

// tmpPrefix names the directory a rootfs is built in, next to its final place.
const tmpPrefix = "rootfs.tmp-"

// fillFunc fills dir, an empty directory, with a template's rootfs,
// reporting progress on rep.
type fillFunc func(ctx context.Context, dir string, rep *reporter) error

// build creates rec.RootfsDir with fill: it fills a temporary directory
// beside it and renames it into place only when everything succeeded, so a
// crash or error never leaves something that looks like a finished template.
func (m *Manager) build(ctx context.Context, rec *store.Template, progress io.Writer, fill fillFunc) (err error) {
	name := rec.Aliases[0]
	final := rec.RootfsDir
	start := time.Now()
	rep := newReporter(progress, name)
	defer func() {
		if err != nil {
			rep.Fail(err)
		}
	}()

	// A tree without the commit mark is a leftover; clear it so rename works.
	if _, err := os.Lstat(final); err == nil {
		if err := removeTree(final); err != nil {
			return err
		}
	}
	parent := filepath.Dir(final)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create template dir: %w", err)
	}
	if err := os.MkdirAll(m.cacheDir(), 0o755); err != nil {
		return fmt.Errorf("create apt cache: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, tmpPrefix)
	if err != nil {
		return fmt.Errorf("create build dir: %w", err)
	}
	defer func() {
		if err != nil {
			if rerr := removeTree(tmp); rerr != nil {
				m.log.Error("remove failed build", "dir", tmp, "err", rerr)
			}
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it 0700
		return fmt.Errorf("chmod build dir: %w", err)
	}

	m.log.Info("building template", "template", name, "id", rec.ID, "mirror", m.cfg.Mirror, "suite", m.cfg.Suite)
	if err := fill(ctx, tmp, rep); err != nil {
		return fmt.Errorf("build template %s: %w", name, err)
	}
	size, err := dirSize(tmp)
	if err != nil {
		return fmt.Errorf("measure template %s: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("move template %s into place: %w", name, err)
	}
	syncDir(parent)

	elapsed := time.Since(start).Round(100 * time.Millisecond)
	m.log.Info("template built", "template", name, "id", rec.ID, "size_mb", size>>20,
		"duration", elapsed.String(), slog.String("rootfs", final))
	rep.Done(fmt.Sprintf("built in %s, %d MB", elapsed, size>>20))
	return nil
}

// fillBase is the fillFunc of the base template: debootstrap and apt-get,
// then the sandbox configuration.
func (m *Manager) fillBase(ctx context.Context, dir string, rep *reporter) error {
	tr := newTracker(m.bootEstimate)
	out := m.progressWriter(BaseAlias, tr, rep)
	rep.Update(tr.Phase(), 0)
	opts := populateOptions{
		Target:   dir,
		Mirror:   m.cfg.Mirror,
		Security: m.sources.Security,
		Suite:    m.cfg.Suite,
		CacheDir: m.cacheDir(),
		Extra:    basePackages,
	}
	if err := m.populate(ctx, opts, out); err != nil {
		out.Flush()
		return fmt.Errorf("%w (last output: %s)", err, out.Tail())
	}
	out.Flush()

	tr.Finalize()
	rep.Update(tr.Phase(), tr.Percent())
	return configureRootfs(dir, aptSources{Archive: m.cfg.Mirror, Security: m.sources.Security}, m.cfg.Suite)
}

// progressWriter feeds a build tool's output lines to tr and shows the
// progress on rep; the lines also go to the debug log.
func (m *Manager) progressWriter(name string, tr *tracker, rep *reporter) *lineWriter {
	return &lineWriter{fn: func(line string) {
		m.log.Debug("build output", "template", name, "line", line)
		if tr.Feed(line) {
			rep.Update(tr.Phase(), tr.Percent())
		}
	}}
}

// removeStale deletes build directories left by a crashed build. The caller
// holds the templates lock, so no build is running.
func (m *Manager) removeStale() error {
	matches, err := filepath.Glob(filepath.Join(m.templatesDir(), "*", tmpPrefix+"*"))
	if err != nil {
		return err
	}
	for _, dir := range matches {
		m.log.Info("removing stale template build", "dir", dir)
		if err := removeTree(dir); err != nil {
			return err
		}
	}
	return nil
}

// syncDir makes a rename in dir durable; failure only weakens crash safety.
func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		_ = f.Sync()
		f.Close()
	}
}

// lineWriter calls fn for each complete line written to it and remembers
// the last lines for error messages. os/exec serialises writes when Stdout
// and Stderr are the same writer.
type lineWriter struct {
	fn   func(string)
	buf  []byte
	tail []string
}

const tailLines = 8

func (w *lineWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Flush hands on a last line that had no newline.
func (w *lineWriter) Flush() {
	if len(w.buf) > 0 {
		w.line(string(w.buf))
		w.buf = nil
	}
}

func (w *lineWriter) line(s string) {
	s = strings.TrimRight(s, "\r")
	if strings.TrimSpace(s) == "" {
		return
	}
	w.tail = append(w.tail, s)
	if len(w.tail) > tailLines {
		w.tail = w.tail[1:]
	}
	w.fn(s)
}

// Tail returns the last lines written, joined with " | ".
func (w *lineWriter) Tail() string { return strings.Join(w.tail, " | ") }
