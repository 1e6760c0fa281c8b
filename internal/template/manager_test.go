package template

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-sandbox/airlock/internal/roottest"
	"github.com/airlock-sandbox/airlock/internal/store"
)

var errFakeBuild = errors.New("fake build failed")

// fakePopulate writes a tiny Debian-like tree and some debootstrap and apt
// output. With failAfter it stops with errFakeBuild after writing part of it.
type fakePopulate struct {
	calls     int
	failAfter bool

	installs    []layerOptions
	failInstall bool
}

// install is the fake installFunc: it checks that it got a copy of base,
// adds a few files and writes apt and npm output.
func (f *fakePopulate) install(ctx context.Context, o layerOptions, out io.Writer) error {
	f.installs = append(f.installs, o)
	if _, err := os.Stat(filepath.Join(o.Target, "etc/os-release")); err != nil {
		return fmt.Errorf("install target is not a copy of base: %w", err)
	}
	files := map[string]string{
		"usr/bin/R":                "#!/bin/sh\n",
		"etc/matplotlibrc":         "#backend: Agg\nbackend: TkAgg\nfont.family: sans-serif\n",
		"root/.npm/_cacache/index": "x",
		"var/cache/apt/archives/r-base-core_4.2_amd64.deb": "deb",
	}
	for rel, content := range files {
		if err := writeFile(o.Target, rel, 0o644, content); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "airlock-stage: apt-update")
	fmt.Fprintln(out, "0 upgraded, 2 newly installed, 0 to remove and 0 not upgraded.")
	fmt.Fprintln(out, "Unpacking r-base-core (4.2.2.20221110-2) ...")
	fmt.Fprintln(out, "Setting up r-base-core (4.2.2.20221110-2) ...")
	if f.failInstall {
		fmt.Fprintln(out, "E: Unable to locate package r-cran-irkernel")
		return errFakeBuild
	}
	fmt.Fprintln(out, "airlock-stage: npm")
	fmt.Fprintln(out, "npm http fetch GET 200 https://registry.npmjs.org/typescript 80ms")
	return ctx.Err()
}

func (f *fakePopulate) run(ctx context.Context, o populateOptions, out io.Writer) error {
	f.calls++
	files := map[string]string{
		"etc/os-release":                        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n",
		"etc/passwd":                            "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
		"etc/group":                             "root:x:0:\nsudo:x:27:\nusers:x:100:\n",
		"etc/shadow":                            "root:*:20000:0:99999:7:::\n",
		"etc/gshadow":                           "root:*::\nsudo:*::\n",
		"etc/skel/.bashrc":                      "# bashrc\n",
		"etc/profile":                           "if [ \"$(id -u)\" -eq 0 ]; then\n  PATH=\"/usr/sbin:/usr/bin\"\nelse\n  PATH=\"/usr/bin\"\nfi\nexport PATH\n",
		"etc/resolv.conf":                       "nameserver 192.0.2.1\n",
		"etc/apt/sources.list":                  "deb " + o.Mirror + " " + o.Suite + " main\n",
		"usr/lib/python3.11/EXTERNALLY-MANAGED": "[externally-managed]\n",
		"var/cache/apt/archives/bash_5.2_amd64.deb":                                         "deb",
		"usr/share/doc/bash/copyright":                                                      "GPL\n",
		"usr/share/doc/bash/README.gz":                                                      "readme",
		"usr/share/man/man1/bash.1.gz":                                                      "man",
		"usr/share/locale/locale.alias":                                                     "C.UTF-8 C.UTF-8\n",
		"usr/share/locale/de/LC_MESSAGES/bash.mo":                                           "mo",
		"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages": "Package: bash\n",
	}
	for rel, content := range files {
		path := filepath.Join(o.Target, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintln(out, "I: Retrieving InRelease ")
	for i := range 5 {
		fmt.Fprintf(out, "I: Retrieving pkg%d 1.0\nI: Validating pkg%d 1.0\n", i, i)
	}
	if f.failAfter {
		fmt.Fprintln(out, "E: Couldn't download package pkg5")
		return errFakeBuild
	}
	fmt.Fprintln(out, "airlock-stage: apt-update")
	fmt.Fprintln(out, "0 upgraded, 3 newly installed, 0 to remove and 0 not upgraded.")
	fmt.Fprintln(out, "Unpacking python3 (3.11.2-1+b1) ...")
	fmt.Fprintln(out, "Setting up python3 (3.11.2-1+b1) ...")
	return ctx.Err()
}

func newTestManager(t *testing.T, st store.Store, f *fakePopulate) (*Manager, string) {
	t.Helper()
	roottest.Require(t, "template builds (they chown the rootfs to the sandbox user)")
	dataDir := t.TempDir()
	m := NewManager(Config{DataDir: dataDir, Mirror: "http://mirror.test/debian/"}, st,
		slog.New(slog.NewTextHandler(testLogWriter{t}, nil)))
	m.populate = f.run
	m.install = f.install
	return m, dataDir
}

func TestEnsureDefaultsBuildsAndRecords(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	f := &fakePopulate{}
	m, dataDir := newTestManager(t, st, f)

	var progress syncBuffer
	if err := m.EnsureDefaults(ctx, &progress); err != nil {
		t.Fatalf("EnsureDefaults: %v", err)
	}
	if f.calls != 1 {
		t.Fatalf("populate called %d times, want 1", f.calls)
	}
	base, err := m.Resolve(ctx, BaseAlias)
	if err != nil {
		t.Fatalf("Resolve(base): %v", err)
	}
	if base.ID != stableID(BaseAlias) || !regexp.MustCompile(`^[a-z0-9]{20}$`).MatchString(base.ID) {
		t.Errorf("base ID = %q", base.ID)
	}
	if want := filepath.Join(dataDir, "templates", base.ID, "rootfs-"+baseRecipe); base.RootfsDir != want {
		t.Errorf("RootfsDir = %s, want %s", base.RootfsDir, want)
	}
	byID, err := m.Resolve(ctx, base.ID)
	if err != nil || byID.ID != base.ID {
		t.Errorf("Resolve by ID = %v, %v", byID, err)
	}
	ci, err := m.Resolve(ctx, CodeInterpreterAlias)
	if err != nil {
		t.Fatalf("Resolve(code-interpreter-v1): %v", err)
	}
	if ci.ID == base.ID || ci.BuildStatus != StatusReady || ci.StartCmd != InterpreterStartCmd || base.StartCmd != "" {
		t.Errorf("code-interpreter-v1 = %+v (base start cmd %q)", ci, base.StartCmd)
	}
	if want := filepath.Join(dataDir, "templates", ci.ID, "rootfs-"+baseRecipe+"."+ciRecipe); ci.RootfsDir != want {
		t.Errorf("code-interpreter-v1 RootfsDir = %s, want %s", ci.RootfsDir, want)
	}
	if len(f.installs) != 1 || !slices.Equal(f.installs[0].Packages, ciPackages) ||
		!slices.Equal(f.installs[0].NPM, []string{"typescript@" + typescriptVersion}) {
		t.Errorf("installs = %+v", f.installs)
	}
	// code-interpreter-v1 is base's tree plus its own files; base is untouched.
	ciChecks := map[string]string{
		"etc/passwd":                        "user:x:1000:1000::/home/user:/bin/bash\n",
		"etc/hostname":                      "sandbox\n",
		"usr/bin/R":                         "#!/bin/sh",
		"etc/matplotlibrc":                  "#backend: Agg\nfont.family: sans-serif\nbackend: Agg",
		"etc/profile.d/code-interpreter.sh": "export NODE_PATH=/usr/local/lib/node_modules\n",
	}
	for rel, want := range ciChecks {
		if got := readFile(t, ci.RootfsDir, rel); !strings.Contains(got, want) {
			t.Errorf("code-interpreter-v1 %s = %q, want it to contain %q", rel, got, want)
		}
	}
	if got := readFile(t, ci.RootfsDir, "etc/matplotlibrc"); strings.Contains(got, "TkAgg") {
		t.Errorf("matplotlibrc still selects TkAgg:\n%s", got)
	}
	for _, gone := range []string{"root/.npm", "var/cache/apt/archives/r-base-core_4.2_amd64.deb"} {
		if _, err := os.Lstat(filepath.Join(ci.RootfsDir, gone)); !os.IsNotExist(err) {
			t.Errorf("code-interpreter-v1 %s should be removed (err %v)", gone, err)
		}
	}
	if _, err := os.Lstat(filepath.Join(base.RootfsDir, "usr/bin/R")); !os.IsNotExist(err) {
		t.Errorf("building code-interpreter-v1 changed base (usr/bin/R: %v)", err)
	}

	root := base.RootfsDir
	checks := map[string]string{
		"etc/passwd":                            "user:x:1000:1000::/home/user:/bin/bash\n",
		"etc/group":                             "sudo:x:27:user\n",
		"etc/gshadow":                           "sudo:*::user\n",
		"etc/sudoers.d/user":                    "user ALL=(ALL:ALL) NOPASSWD: ALL\n",
		"etc/default/locale":                    "LANG=C.UTF-8\n",
		"etc/profile.d/airlock.sh":              "export LANG=C.UTF-8\n",
		"etc/hostname":                          "sandbox\n",
		"etc/profile":                           "keep the PATH the shell was given",
		"etc/apt/sources.list.d/debian.sources": "URIs: http://mirror.test/debian\nSuites: bookworm bookworm-updates\n",
		"home/user/.bashrc":                     "# bashrc\n",
		"usr/share/doc/bash/copyright":          "GPL\n",
		"usr/share/locale/locale.alias":         "C.UTF-8",
	}
	for rel, want := range checks {
		if got := readFile(t, root, rel); !strings.Contains(got, want) {
			t.Errorf("%s = %q, want it to contain %q", rel, got, want)
		}
	}
	if got := readFile(t, root, "etc/resolv.conf"); got != "" {
		t.Errorf("resolv.conf = %q, want empty", got)
	}
	for _, gone := range []string{
		"etc/apt/sources.list",
		"usr/lib/python3.11/EXTERNALLY-MANAGED",
		"var/cache/apt/archives/bash_5.2_amd64.deb",
		"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages",
		"usr/share/doc/bash/README.gz",
		"usr/share/man/man1",
		"usr/share/locale/de",
	} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !os.IsNotExist(err) {
			t.Errorf("%s should be removed (err %v)", gone, err)
		}
	}
	if info, err := os.Stat(filepath.Join(root, "etc/sudoers.d/user")); err != nil || info.Mode().Perm() != 0o440 {
		t.Errorf("sudoers file mode: %v %v", info, err)
	}

	// Plain progress: a line per phase change or 10%, ending in a summary.
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	if len(lines) < 3 || len(lines) > 25 || !strings.Contains(lines[len(lines)-1], "built in") {
		t.Errorf("progress output:\n%s", progress.String())
	}
	if !strings.Contains(progress.String(), "finalize") {
		t.Errorf("progress never reached the finalize phase:\n%s", progress.String())
	}

	// Second start: ready and on disk, so no work, quickly.
	start := time.Now()
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatalf("second EnsureDefaults: %v", err)
	}
	// No rebuild is what matters (asserted by what ran); the time is only logged.
	t.Logf("second EnsureDefaults took %s", time.Since(start))
	if f.calls != 1 || len(f.installs) != 1 {
		t.Errorf("second EnsureDefaults rebuilt (populate calls = %d, installs = %d)", f.calls, len(f.installs))
	}
}

// A failed code-interpreter build leaves base ready, the server startable,
// no half-built tree and an error record; the next start builds only
// code-interpreter-v1.
func TestCodeInterpreterFailedBuild(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	f := &fakePopulate{failInstall: true}
	m, dataDir := newTestManager(t, st, f)

	var progress syncBuffer
	if err := m.EnsureDefaults(ctx, &progress); err != nil {
		t.Fatalf("EnsureDefaults err = %v; a failed code-interpreter-v1 must not stop the server", err)
	}
	if !strings.Contains(progress.String(), "template code-interpreter-v1: build failed") ||
		!strings.Contains(progress.String(), "Unable to locate package r-cran-irkernel") {
		t.Errorf("progress does not report the failure:\n%s", progress.String())
	}
	if _, err := m.Resolve(ctx, BaseAlias); err != nil {
		t.Errorf("base after a failed code-interpreter build: %v", err)
	}
	if _, err := m.Resolve(ctx, CodeInterpreterAlias); !errors.Is(err, ErrNotFound) {
		t.Errorf("Resolve(code-interpreter-v1) err = %v, want ErrNotFound", err)
	}
	if rec, err := st.GetTemplate(ctx, CodeInterpreterAlias); err != nil || rec.BuildStatus != StatusError {
		t.Errorf("code-interpreter-v1 record = %+v, %v; want status error", rec, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dataDir, "templates", stableID(CodeInterpreterAlias), "*")); len(left) != 0 {
		t.Errorf("failed build left %v", left)
	}

	f.failInstall = false
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if f.calls != 1 || len(f.installs) != 2 {
		t.Errorf("retry: populate calls = %d, installs = %d; want 1, 2", f.calls, len(f.installs))
	}
	if ci, err := m.Resolve(ctx, CodeInterpreterAlias); err != nil || ci.StartCmd != InterpreterStartCmd {
		t.Errorf("Resolve after retry = %+v, %v", ci, err)
	}
}

// A data dir from before code-interpreter-v1 had its own rootfs (an alias
// record sharing base's tree, no start command) gets it built.
func TestCodeInterpreterReplacesAlias(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	f := &fakePopulate{}
	m, _ := newTestManager(t, st, f)
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	base, err := m.Resolve(ctx, BaseAlias)
	if err != nil {
		t.Fatal(err)
	}
	old := &store.Template{ID: stableID(CodeInterpreterAlias), Aliases: []string{CodeInterpreterAlias},
		RootfsDir: base.RootfsDir, BuildStatus: StatusReady}
	if err := st.PutTemplate(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	ci, err := m.Resolve(ctx, CodeInterpreterAlias)
	if err != nil || ci.RootfsDir == base.RootfsDir || ci.StartCmd != InterpreterStartCmd {
		t.Errorf("code-interpreter-v1 = %+v, %v; want its own rootfs and start command", ci, err)
	}
	if f.calls != 1 {
		t.Errorf("base rebuilt: populate calls = %d", f.calls)
	}
	if _, err := os.Stat(filepath.Join(base.RootfsDir, "etc/os-release")); err != nil {
		t.Errorf("base rootfs gone: %v", err)
	}
}

func TestEnsureDefaultsFailedBuildLeavesNothing(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	f := &fakePopulate{failAfter: true}
	m, dataDir := newTestManager(t, st, f)

	var progress syncBuffer
	err := m.EnsureDefaults(ctx, &progress)
	if !errors.Is(err, errFakeBuild) {
		t.Fatalf("EnsureDefaults err = %v, want errFakeBuild", err)
	}
	if !strings.Contains(err.Error(), "Couldn't download package pkg5") {
		t.Errorf("error lacks the tool's last output: %v", err)
	}
	if !strings.Contains(progress.String(), "build failed") {
		t.Errorf("progress does not report the failure:\n%s", progress.String())
	}
	for _, ref := range []string{BaseAlias, CodeInterpreterAlias} {
		if _, err := m.Resolve(ctx, ref); !errors.Is(err, ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Resolve(%s) err = %v, want ErrNotFound", ref, err)
		}
	}
	rec, err := st.GetTemplate(ctx, BaseAlias)
	if err != nil || rec.BuildStatus != StatusError {
		t.Errorf("base record = %+v, %v; want status error", rec, err)
	}
	entries, _ := filepath.Glob(filepath.Join(dataDir, "templates", "*", "*"))
	if len(entries) != 0 {
		t.Errorf("failed build left %v", entries)
	}

	// The next start retries and succeeds.
	f.failAfter = false
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if _, err := m.Resolve(ctx, BaseAlias); err != nil {
		t.Errorf("Resolve after retry: %v", err)
	}
}

func TestEnsureDefaultsCancelled(t *testing.T) {
	st := openStore(t)
	m, dataDir := newTestManager(t, st, &fakePopulate{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := m.EnsureDefaults(ctx, io.Discard); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if entries, _ := filepath.Glob(filepath.Join(dataDir, "templates", "*", "*")); len(entries) != 0 {
		t.Errorf("cancelled build left %v", entries)
	}
}

func TestEnsureDefaultsRecoversAfterCrash(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	f := &fakePopulate{}
	m, dataDir := newTestManager(t, st, f)
	id := stableID(BaseAlias)

	// A crash mid-build leaves a temp dir with mounts-free junk and a
	// "building" record; it must be cleaned and rebuilt.
	stale := filepath.Join(dataDir, "templates", id, tmpPrefix+"123")
	if err := os.MkdirAll(filepath.Join(stale, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "etc/os-release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.PutTemplate(ctx, &store.Template{ID: id, Aliases: []string{BaseAlias}, BuildStatus: StatusBuilding}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Resolve(ctx, BaseAlias); !errors.Is(err, ErrNotFound) {
		t.Errorf("a building template resolved: %v", err)
	}
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatalf("EnsureDefaults: %v", err)
	}
	if f.calls != 1 {
		t.Errorf("populate calls = %d, want 1", f.calls)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale build dir not removed: %v", err)
	}

	// A crash after the rename but before the store write: the finished
	// rootfs is found and recorded without rebuilding.
	st2 := openStore(t)
	m2 := NewManager(Config{DataDir: dataDir}, st2, slog.New(slog.NewTextHandler(testLogWriter{t}, nil)))
	m2.populate = func(context.Context, populateOptions, io.Writer) error {
		t.Error("rebuilt a template that was already on disk")
		return errFakeBuild
	}
	if err := m2.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatalf("EnsureDefaults with fresh store: %v", err)
	}
	if tpl, err := m2.Resolve(ctx, BaseAlias); err != nil || tpl.ID != id {
		t.Errorf("Resolve = %+v, %v", tpl, err)
	}

	// Rootfs deleted behind the store's back: rebuilt.
	if err := os.RemoveAll(filepath.Join(dataDir, "templates")); err != nil {
		t.Fatal(err)
	}
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatalf("EnsureDefaults after rm: %v", err)
	}
	if f.calls != 2 {
		t.Errorf("populate calls = %d, want 2 after the rootfs was deleted", f.calls)
	}
}

func TestResolveUnknown(t *testing.T) {
	m, _ := newTestManager(t, openStore(t), &fakePopulate{})
	_, err := m.Resolve(context.Background(), "nope")
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, store.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}

func TestStableID(t *testing.T) {
	re := regexp.MustCompile(`^[a-z0-9]{20}$`)
	a, b := stableID(BaseAlias), stableID(CodeInterpreterAlias)
	if !re.MatchString(a) || !re.MatchString(b) || a == b || a != stableID(BaseAlias) {
		t.Errorf("stableID: %q %q", a, b)
	}
}

// A rootfs built by an older recipe is rebuilt, and the old tree is removed
// once no sandbox overlay uses it.
func TestOldRecipeIsRebuiltAndPruned(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	f := &fakePopulate{}
	m, dataDir := newTestManager(t, st, f)
	id := stableID(BaseAlias)
	old := filepath.Join(dataDir, "templates", id, "rootfs")
	if err := os.MkdirAll(filepath.Join(old, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(old, "etc", "os-release"), []byte("ID=debian\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.PutTemplate(ctx, &store.Template{ID: id, Aliases: []string{BaseAlias}, RootfsDir: old, BuildStatus: StatusReady}); err != nil {
		t.Fatal(err)
	}
	if err := m.EnsureDefaults(ctx, io.Discard); err != nil {
		t.Fatal(err)
	}
	if f.calls != 1 {
		t.Fatalf("old recipe not rebuilt: populate called %d times", f.calls)
	}
	base, err := m.Resolve(ctx, BaseAlias)
	if err != nil || base.RootfsDir != m.rootfsDir(id, baseRecipe) {
		t.Fatalf("base after rebuild: %+v, %v", base, err)
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("old rootfs %s was not pruned: %v", old, err)
	}
}

func TestRemoveFiles(t *testing.T) {
	m, dataDir := newTestManager(t, openStore(t), &fakePopulate{})
	dir := filepath.Join(dataDir, "templates", "tplgone")
	rootfs := filepath.Join(dir, "rootfs-d-12345678")
	if err := os.MkdirAll(filepath.Join(rootfs, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc", "x"), []byte("x"), 0o444); err != nil {
		t.Fatal(err)
	}
	outside := t.TempDir()
	tests := []struct {
		name    string
		tpl     store.Template
		wantErr bool
	}{
		{"id escaping", store.Template{ID: "../tplgone", RootfsDir: rootfs}, true},
		{"no id", store.Template{RootfsDir: rootfs}, true},
		{"its own dir", store.Template{ID: "tplgone", RootfsDir: rootfs}, false},
	}
	for _, tc := range tests {
		err := m.RemoveFiles(&tc.tpl)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%s: RemoveFiles = %v, want error %v", tc.name, err, tc.wantErr)
		}
		_, statErr := os.Stat(dir)
		if gone := errors.Is(statErr, os.ErrNotExist); gone == tc.wantErr {
			t.Fatalf("%s: template dir gone = %v after RemoveFiles(%v)", tc.name, gone, err)
		}
	}
	// A template on another's tree (a build that changed nothing uses its
	// base's): its own directory goes, the other tree stays.
	if err := os.MkdirAll(filepath.Join(dir, "rootfs-c-1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.RemoveFiles(&store.Template{ID: "tplgone", RootfsDir: outside}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the template's own dir stays: %v", err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("directory outside templates/ touched: %v", err)
	}
	if err := m.RemoveFiles(&store.Template{ID: "tplgone", RootfsDir: outside}); err != nil {
		t.Errorf("removing a template without a directory: %v", err)
	}
}
