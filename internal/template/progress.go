package template

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"
)

// A phase is one stretch of a build, mapped onto a slice of the 0–100 bar.
type phase struct {
	name       string
	start, end int // percent range
}

// The phases of building the base template, in order. The ranges reflect
// measured time shares of a build with an empty package cache (debootstrap
// fetches one package at a time, so its download dominates), so the bar
// moves at a roughly even pace.
var buildPhases = []phase{
	{"bootstrap: download", 0, 25},
	{"bootstrap: extract", 25, 30},
	{"bootstrap: unpack", 30, 42},
	{"bootstrap: configure", 42, 55},
	{"packages: index", 55, 57},
	{"packages: download", 57, 65},
	{"packages: install", 65, 97},
	{"npm", 97, 97}, // base installs no npm packages
	{"finalize", 97, 100},
}

// layerPhases are the phases of a template built on top of base's tree
// (code-interpreter-v1): no bootstrap, so its first slot is the copy of
// base and the other bootstrap slots are empty. Ranges are measured time
// shares of a build with an empty package cache.
var layerPhases = []phase{
	{"copy base", 0, 10},
	{"", 10, 10},
	{"", 10, 10},
	{"", 10, 10},
	{"packages: index", 10, 12},
	{"packages: download", 12, 35},
	{"packages: install", 35, 85},
	{"npm", 85, 95},
	{"finalize", 95, 100},
}

const (
	phBootDownload = iota // phCopy in layerPhases
	phBootExtract
	phBootUnpack
	phBootConfigure
	phAptIndex
	phAptDownload
	phAptInstall
	phNpm
	phFinalize

	phCopy = phBootDownload
)

// tracker turns the output lines of debootstrap and apt-get into a phase and
// a percentage. Neither tool announces its package count up front (apt does,
// but only after resolving), so counts start from an estimate and are
// corrected as soon as the real number is known.
type tracker struct {
	phases  []phase
	phase   int
	count   int // items done in the current phase
	total   int // items expected in the current phase
	percent int // never goes backwards

	bootPkgs     int             // packages debootstrap fetched (exact once fetching ends)
	bootEstimate int             // guess for bootPkgs before fetching ends
	seen         map[string]bool // debootstrap packages already counted
	aptPkgs      int             // packages apt-get announced it will install
}

func newTracker(bootEstimate int) *tracker {
	if bootEstimate <= 0 {
		bootEstimate = 1
	}
	return &tracker{phases: buildPhases, bootEstimate: bootEstimate, total: bootEstimate, seen: map[string]bool{}}
}

// newLayerTracker tracks a build on top of base: the copy, then apt-get
// and npm.
func newLayerTracker() *tracker {
	return &tracker{phases: layerPhases, total: 100, seen: map[string]bool{}}
}

// Copied records the progress of the copy of base, frac in [0, 1].
func (t *tracker) Copied(frac float64) bool {
	old := t.percent
	t.enter(phCopy, 1000)
	t.count = int(min(max(frac, 0), 1) * 1000)
	t.recompute()
	return t.percent != old
}

// enter switches to phase p (only forwards) with the given expected total.
func (t *tracker) enter(p, total int) {
	if p < t.phase {
		return
	}
	if p > t.phase {
		t.phase, t.count = p, 0
	}
	t.total = max(total, 1)
}

// step counts one item in phase p, entering it first if needed.
func (t *tracker) step(p, total int) {
	if p != t.phase {
		t.enter(p, total)
	}
	if p == t.phase {
		t.count++
	}
}

// Feed consumes one output line and reports whether phase or percent changed.
func (t *tracker) Feed(line string) bool {
	oldPhase, oldPct := t.phase, t.percent
	line = strings.TrimSpace(line)
	switch {
	case strings.HasPrefix(line, "I: "):
		t.feedDebootstrap(strings.TrimPrefix(line, "I: "))
	case strings.HasPrefix(line, stageMarker):
		switch strings.TrimPrefix(line, stageMarker) {
		case stageAptUpdate:
			t.enter(phAptIndex, 6) // InRelease and Packages of three suites
		case stageNPM:
			t.enter(phNpm, npmFetchEstimate)
		}
	case t.phase == phNpm:
		// npm --loglevel=http logs one "fetch GET 200 <url>" line per request.
		if strings.Contains(line, "fetch GET") {
			t.count++
		}
	default:
		t.feedApt(line)
	}
	t.recompute()
	return t.phase != oldPhase || t.percent != oldPct
}

func (t *tracker) feedDebootstrap(msg string) {
	verb, rest, _ := strings.Cut(msg, " ")
	rest = strings.TrimSuffix(strings.TrimSpace(rest), "...")
	switch verb {
	case "Retrieving", "Validating":
		name, version, _ := strings.Cut(rest, " ")
		if version == "" { // index files: InRelease, Packages
			return
		}
		if t.phase == phBootDownload && !t.seen[name] {
			t.seen[name] = true
			t.bootPkgs++
			t.count = t.bootPkgs
			t.total = max(t.bootEstimate, t.bootPkgs)
		}
	case "Extracting":
		t.step(phBootExtract, t.bootPkgs)
	case "Unpacking":
		if rest == "required packages" || rest == "the base system" {
			return
		}
		t.step(phBootUnpack, t.bootPkgs)
	case "Configuring":
		if rest == "required packages" || rest == "the base system" {
			return
		}
		t.step(phBootConfigure, t.bootPkgs)
	}
}

func (t *tracker) feedApt(line string) {
	switch {
	case strings.HasPrefix(line, "Hit:") || strings.HasPrefix(line, "Get:"):
		if t.phase == phAptIndex {
			t.count++
		} else if t.aptPkgs > 0 && strings.HasPrefix(line, "Get:") {
			t.step(phAptDownload, t.aptPkgs)
		}
	case strings.Contains(line, " newly installed,"):
		// "0 upgraded, 245 newly installed, 0 to remove and 0 not upgraded."
		if _, after, ok := strings.Cut(line, "upgraded, "); ok {
			var n int
			if _, err := fmt.Sscanf(after, "%d newly installed", &n); err == nil && n > 0 {
				t.aptPkgs = n
				t.enter(phAptDownload, n)
			}
		}
	// apt interleaves unpacking and configuring, so both count in one phase.
	case strings.HasPrefix(line, "Unpacking "), strings.HasPrefix(line, "Setting up "):
		t.step(phAptInstall, 2*t.aptPkgs)
	}
}

func (t *tracker) recompute() {
	ph := t.phases[t.phase]
	frac := min(float64(t.count)/float64(max(t.total, 1)), 1)
	pct := ph.start + int(frac*float64(ph.end-ph.start))
	t.percent = max(t.percent, pct)
}

// Phase is the name of the current phase.
func (t *tracker) Phase() string { return t.phases[t.phase].name }

// Percent is the overall progress, 0–100.
func (t *tracker) Percent() int { return t.percent }

// reporter shows build progress to a human: a one-line bar on a terminal,
// otherwise a plain line at every phase change and every 10%. It is only
// called when the percent or phase changes (about a hundred times per
// build), so the bar needs no throttling.
type reporter struct {
	w        io.Writer
	name     string
	bar      *progressbar.ProgressBar
	lastLine int // percent of the last plain line, -1 before the first
	phase    string
}

func newReporter(w io.Writer, name string) *reporter {
	if w == nil {
		w = io.Discard
	}
	r := &reporter{w: w, name: name, lastLine: -1}
	if isTerminal(w) {
		r.bar = progressbar.NewOptions(100,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(fmt.Sprintf("template %s", name)),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(false),
			progressbar.OptionClearOnFinish(),
		)
	}
	return r
}

// Update shows the current phase and percent.
func (r *reporter) Update(phase string, pct int) {
	if r.bar != nil {
		if phase != r.phase {
			r.bar.Describe(fmt.Sprintf("template %s: %-22s", r.name, phase))
		}
		r.phase = phase
		_ = r.bar.Set(pct)
		return
	}
	if phase != r.phase || r.lastLine < 0 || pct/10 > r.lastLine/10 {
		fmt.Fprintf(r.w, "template %s: %3d%% %s\n", r.name, pct, phase)
		r.lastLine, r.phase = pct, phase
	}
}

// Done ends the progress display with a final line.
func (r *reporter) Done(msg string) {
	if r.bar != nil {
		_ = r.bar.Finish()
	}
	fmt.Fprintf(r.w, "template %s: %s\n", r.name, msg)
}

// Fail ends the progress display after an error.
func (r *reporter) Fail(err error) {
	if r.bar != nil {
		_ = r.bar.Exit()
		fmt.Fprintln(r.w)
	}
	fmt.Fprintf(r.w, "template %s: build failed: %v\n", r.name, err)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Finalize moves to the last phase, after the package tools are done.
func (t *tracker) Finalize() {
	t.enter(phFinalize, 1)
	t.recompute()
}
