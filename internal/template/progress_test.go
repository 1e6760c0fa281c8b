package template

import (
	"bufio"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/creack/pty"
)

func feedFile(t *testing.T, tr *tracker, path string, each func(line string)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		tr.Feed(sc.Text())
		each(sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestTrackerRecordedBuild replays the recorded output of a real build:
// debootstrap (packages from the cache) then apt-get in the rootfs.
func TestTrackerRecordedBuild(t *testing.T) {
	tr := newTracker(90)
	last := 0
	var phases []string
	check := func(line string) {
		if tr.Percent() < last {
			t.Fatalf("percent went back from %d to %d at %q", last, tr.Percent(), line)
		}
		last = tr.Percent()
		if len(phases) == 0 || phases[len(phases)-1] != tr.Phase() {
			phases = append(phases, tr.Phase())
		}
	}
	feedFile(t, tr, "testdata/debootstrap-cached.log", check)
	if tr.bootPkgs != 88 {
		t.Errorf("counted %d debootstrap packages, want 88", tr.bootPkgs)
	}
	if tr.Phase() != "bootstrap: configure" || tr.Percent() != 55 {
		t.Errorf("after debootstrap: %s %d%%, want bootstrap: configure 55%%", tr.Phase(), tr.Percent())
	}
	feedFile(t, tr, "testdata/apt-install.log", check)
	if tr.aptPkgs != 428 {
		t.Errorf("apt packages = %d, want 428", tr.aptPkgs)
	}
	if tr.Percent() != 97 {
		t.Errorf("after apt-get: %d%%, want 97%%", tr.Percent())
	}
	tr.Finalize()
	check("")
	want := []string{"bootstrap: download", "bootstrap: extract", "bootstrap: unpack", "bootstrap: configure",
		"packages: index", "packages: download", "packages: install", "finalize"}
	if strings.Join(phases, ",") != strings.Join(want, ",") {
		t.Errorf("phases = %v, want %v", phases, want)
	}
}

func TestTrackerLines(t *testing.T) {
	repeat := func(format string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, strings.ReplaceAll(format, "N", string(rune('a'+i%26))+strings.Repeat("x", i/26)))
		}
		return out
	}
	concat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name      string
		lines     []string
		wantPhase string
		wantPct   int
	}{
		{"start", []string{"I: Target architecture can be executed"}, "bootstrap: download", 0},
		{"index files are not packages", []string{"I: Retrieving InRelease ", "I: Retrieving Packages ", "I: Validating Packages "}, "bootstrap: download", 0},
		{"cold download half way", concat(repeat("I: Retrieving pkgN 1.0", 45), repeat("I: Validating pkgN 1.0", 45)), "bootstrap: download", 12},
		{"cached download (Validating only) half way", repeat("I: Validating pkgN 1.0", 45), "bootstrap: download", 12},
		{"retries count once", []string{"I: Retrieving a 1", "I: Retrieving a 1", "I: Retrieving a 1"}, "bootstrap: download", 0},
		{"more packages than estimated", repeat("I: Validating pkgN 1.0", 120), "bootstrap: download", 25},
		{"extract", concat(repeat("I: Validating pkgN 1.0", 90), repeat("I: Extracting pkgN...", 45)), "bootstrap: extract", 27},
		{"section headers are not packages", concat(repeat("I: Validating pkgN 1.0", 90), []string{
			"I: Installing core packages...", "I: Unpacking required packages...", "I: Configuring required packages...",
		}), "bootstrap: download", 25},
		{"unpack", concat(repeat("I: Validating pkgN 1.0", 90), []string{"I: Unpacking required packages..."}, repeat("I: Unpacking pkgN...", 90)), "bootstrap: unpack", 42},
		{"warnings are ignored", []string{"W: Failure while configuring base packages.", "E: something"}, "bootstrap: download", 0},
		{"configure", concat(repeat("I: Validating pkgN 1.0", 90), repeat("I: Configuring pkgN...", 45)), "bootstrap: configure", 48},
		{"apt update", []string{"airlock-stage: apt-update", "Get:1 http://deb.debian.org/debian bookworm InRelease [151 kB]", "Get:2 http://deb.debian.org/debian bookworm/main amd64 Packages [8792 kB]", "Hit:3 http://deb.debian.org/debian bookworm-updates InRelease"}, "packages: index", 56},
		{"apt announces its count", []string{"airlock-stage: apt-update", "Hit:1 http://x bookworm InRelease", "airlock-stage: apt-install", "0 upgraded, 10 newly installed, 0 to remove and 0 not upgraded."}, "packages: download", 57},
		{"apt download", concat([]string{"0 upgraded, 10 newly installed, 0 to remove and 0 not upgraded."}, repeat("Get:N http://deb.debian.org/debian bookworm/main amd64 pkg all 1 [5 kB]", 5)), "packages: download", 61},
		{"apt install interleaves unpack and setup", concat([]string{"0 upgraded, 10 newly installed, 0 to remove and 0 not upgraded."},
			repeat("Unpacking pkgN (1.0) ...", 4), repeat("Setting up pkgN (1.0) ...", 2), repeat("Unpacking pkgN (1.0) ...", 4)), "packages: install", 81},
		{"Get before the count is update output", []string{"Get:1 http://x bookworm InRelease"}, "bootstrap: download", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTracker(90)
			for _, l := range tt.lines {
				tr.Feed(l)
			}
			if tr.Phase() != tt.wantPhase || tr.Percent() != tt.wantPct {
				t.Errorf("got %s %d%%, want %s %d%%", tr.Phase(), tr.Percent(), tt.wantPhase, tt.wantPct)
			}
		})
	}
}

func TestReporterPlainLines(t *testing.T) {
	var out strings.Builder
	r := newReporter(&out, "base")
	if r.bar != nil {
		t.Fatal("a strings.Builder is not a terminal")
	}
	for pct := 0; pct <= 25; pct++ {
		r.Update("bootstrap: download", pct)
	}
	r.Update("bootstrap: extract", 25)
	r.Done("built in 1s, 10 MB")
	want := "template base:   0% bootstrap: download\n" +
		"template base:  10% bootstrap: download\n" +
		"template base:  20% bootstrap: download\n" +
		"template base:  25% bootstrap: extract\n" +
		"template base: built in 1s, 10 MB\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestReporterBarOnTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("open pty: %v", err)
	}
	defer ptmx.Close()
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once the tty side is closed
		done <- string(b)
	}()

	r := newReporter(tty, "base")
	if r.bar == nil {
		t.Fatal("no progress bar on a terminal")
	}
	r.Update("bootstrap: download", 0)
	r.Update("packages: install", 70)
	r.Done("built in 1s, 10 MB")
	tty.Close()
	out := <-done
	for _, want := range []string{"packages: install", "70%", "\r", "built in 1s, 10 MB"} {
		if !strings.Contains(out, want) {
			t.Errorf("terminal output lacks %q:\n%q", want, out)
		}
	}
}
