package sqlite

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// timeLayout is fixed-width (nanoseconds always written, always UTC) so
// that comparing the text compares the times, which keyset pagination and
// "since" filters rely on. The zero time is 0001-01-01… and sorts first.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// encoder turns Go values into column values, keeping the first error.
type encoder struct{ err error }

func (e *encoder) time(t time.Time) string {
	t = t.UTC()
	if y := t.Year(); y < 1 || y > 9999 {
		if e.err == nil {
			e.err = fmt.Errorf("time %v out of range", t)
		}
		return ""
	}
	return t.Format(timeLayout)
}

func (e *encoder) strMap(m map[string]string) string {
	if m == nil {
		return "{}"
	}
	b, err := json.Marshal(m)
	if err != nil && e.err == nil {
		e.err = err
	}
	return string(b)
}

// decoder turns column values into Go values, keeping the first error.
type decoder struct{ err error }

func (d *decoder) time(s string) time.Time {
	t, err := time.Parse(timeLayout, s)
	if err != nil && d.err == nil {
		d.err = fmt.Errorf("bad time %q: %w", s, err)
	}
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func (d *decoder) strMap(s string) map[string]string {
	m := map[string]string{}
	if err := json.Unmarshal([]byte(s), &m); err != nil && d.err == nil {
		d.err = fmt.Errorf("bad JSON map: %w", err)
	}
	return m
}

func (d *decoder) strSlice(s string) []string {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil && d.err == nil {
		d.err = fmt.Errorf("bad JSON list: %w", err)
	}
	return v
}

// isUniqueViolation reports whether err is a primary key or UNIQUE clash.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}
