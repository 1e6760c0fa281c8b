// Package bench measures Airlock end to end through its wire protocol and
// compares every figure with a baseline measured on the same machine in the
// same run (bare runc/runsc, unshare+chroot, fork+exec, loopback HTTP,
// local disk).
package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Options selects what to measure and how often.
type Options struct {
	// Either URL+APIKey of a running server, or Server to start one per runtime.
	URL      string
	APIKey   string
	Server   ServerConfig // Runtime is taken from Runtimes
	Runtimes []string     // runc, runsc; with URL, the one runtime the server uses (label and baseline)
	DataDir  string       // server data dir, for the template rootfs and cgroup memory; "" with URL if unknown
	Rootfs   string       // baseline rootfs; default DATA/templates/<id>/rootfs
	Template string       // default "base"

	// Code interpreter scenarios; skipped with NoCode or when CodeTemplate
	// is not ready on the server.
	NoCode       bool
	CodeTemplate string // default "code-interpreter-v1"
	CodeN        int    // runCode round-trips
	CodeColdN    int    // creates (and host kernel starts) for first runCode

	N           int     // measured iterations of the serial scenarios
	Warmup      int     // unmeasured iterations first
	ExecN       int     // command round-trips
	Concurrency []int   // concurrent create levels
	ConcTotal   int     // sandboxes per concurrency level; 0 ⇒ 2×level
	FileSizes   []int64 // bytes
	IdleMax     int     // 0 disables the idle-density scenario
	Interval    time.Duration
	Progress    io.Writer
}

// Defaults fills unset fields; quick picks sizes that finish in minutes.
func (o *Options) Defaults(quick bool) {
	if o.Template == "" {
		o.Template = "base"
	}
	if len(o.Runtimes) == 0 {
		o.Runtimes = []string{"runc", "runsc"}
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	def := func(p *int, full, q int) {
		if *p == 0 {
			if quick {
				*p = q
			} else {
				*p = full
			}
		}
	}
	def(&o.N, 50, 10)
	def(&o.Warmup, 3, 2)
	def(&o.ExecN, 500, 100)
	def(&o.CodeN, 200, 50)
	def(&o.CodeColdN, 20, 5)
	if o.CodeTemplate == "" {
		o.CodeTemplate = "code-interpreter-v1"
	}
	if len(o.Concurrency) == 0 {
		if quick {
			o.Concurrency = []int{10}
		} else {
			o.Concurrency = []int{10, 50}
		}
	}
	if len(o.FileSizes) == 0 {
		o.FileSizes = []int64{1 << 10, 10 << 20, 100 << 20}
	}
}

// Run executes the benchmark for every runtime.
func Run(ctx context.Context, o Options) (*Report, error) {
	rep := &Report{Started: time.Now().UTC(), Machine: DescribeMachine()}
	for _, rt := range o.Runtimes {
		rr := RuntimeReport{Runtime: rt, PoolSize: o.Server.PoolSize}
		err := runRuntime(ctx, o, rt, &rr)
		if err != nil {
			rr.Errors = append(rr.Errors, err.Error())
		}
		rep.Runtimes = append(rep.Runtimes, rr)
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
	}
	return rep, nil
}

func runRuntime(ctx context.Context, o Options, rt string, rr *RuntimeReport) error {
	url, key, dataDir := o.URL, o.APIKey, o.DataDir
	if url == "" {
		sc := o.Server
		sc.Runtime = rt
		fmt.Fprintf(o.Progress, "[%s] starting airlock serve on %s (data dir %s)\n", rt, sc.Addr, sc.DataDir)
		srv, err := StartServer(ctx, sc)
		if err != nil {
			return err
		}
		defer srv.Stop()
		url, key, dataDir = srv.URL, srv.APIKey, sc.DataDir
	}
	r := &runner{o: o, rt: rt, c: newClient(url, key), dataDir: dataDir, rr: rr}
	defer r.cleanup()
	if err := r.prepare(ctx); err != nil {
		return err
	}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"create", r.createSerial},
		{"concurrent", r.createConcurrent},
		{"exec", r.execRoundTrip},
		{"files", r.files},
		{"code", r.codeInterpreter},
		{"idle", r.idle},
	}
	for _, s := range steps {
		fmt.Fprintf(o.Progress, "[%s] %s\n", rt, s.name)
		if err := s.fn(ctx); err != nil {
			rr.Errors = append(rr.Errors, fmt.Sprintf("%s: %v", s.name, err))
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	return nil
}

// templateRootfs finds the rootfs of the benchmark template in the data dir.
func (r *runner) templateRootfs(ctx context.Context) (string, error) {
	if r.o.Rootfs != "" {
		return r.o.Rootfs, nil
	}
	if r.dataDir == "" {
		return "", errors.New("baselines need --rootfs or --data-dir with --url")
	}
	tpls, err := r.c.Templates(ctx)
	if err != nil {
		return "", err
	}
	for _, t := range tpls {
		if t.TemplateID == r.o.Template || contains(t.Aliases, r.o.Template) {
			return findRootfs(filepath.Join(r.dataDir, "templates", t.TemplateID))
		}
	}
	return "", fmt.Errorf("template %q not found on the server", r.o.Template)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// findRootfs returns the newest rootfs* directory of a template that looks
// like a root filesystem (the name carries a recipe version).
func findRootfs(dir string) (string, error) {
	matches, _ := filepath.Glob(filepath.Join(dir, "rootfs*"))
	var best string
	var bestTime time.Time
	for _, m := range matches {
		fi, err := os.Stat(m)
		if err != nil || !fi.IsDir() || strings.Contains(filepath.Base(m), ".tmp") {
			continue
		}
		if _, err := os.Stat(filepath.Join(m, "bin", "echo")); err != nil {
			continue
		}
		if best == "" || fi.ModTime().After(bestTime) {
			best, bestTime = m, fi.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("no template rootfs under %s", dir)
	}
	return best, nil
}
