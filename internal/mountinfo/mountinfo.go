// Package mountinfo reads this process's mount table (/proc/self/mountinfo).
package mountinfo

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mount is one line of the table.
type Mount struct {
	Point     string // mount point, unescaped
	FSType    string
	Source    string
	SuperOpts string // per-superblock options ("rw,prjquota")
}

// HasSuperOpt reports whether opt is one of m's superblock options.
func (m Mount) HasSuperOpt(opt string) bool {
	for _, o := range strings.Split(m.SuperOpts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}

// Read returns every mount, in table order (later mounts on the same point
// are on top).
func Read() ([]Mount, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	defer f.Close()
	var out []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		left, right, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		lf, rf := strings.Fields(left), strings.Fields(right)
		if len(lf) < 5 || len(rf) < 1 {
			continue
		}
		m := Mount{Point: Unescape(lf[4]), FSType: rf[0]}
		if len(rf) > 1 {
			m.Source = Unescape(rf[1])
		}
		if len(rf) > 2 {
			m.SuperOpts = rf[2]
		}
		out = append(out, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("mountinfo: %w", err)
	}
	return out, nil
}

// At returns the topmost mount at point, or false if none.
func At(point string) (Mount, bool, error) {
	ms, err := Read()
	if err != nil {
		return Mount{}, false, err
	}
	var found Mount
	ok := false
	for _, m := range ms {
		if m.Point == point {
			found, ok = m, true
		}
	}
	return found, ok, nil
}

// Unescape undoes the table's octal escapes (\040 for a space and so on).
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
