package template

import (
	"path/filepath"
	"strings"
	"testing"
)

// Template names are aliases in URL paths and host-like labels: whatever
// the pattern accepts has no separators, no "..", and joins under a
// directory without leaving it.
func FuzzTemplateName(f *testing.F) {
	for _, s := range []string{"base", "code-interpreter-v1", "a.b_c-d", "..", "a/b", "A", "-x", "x:tag", strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if !namePattern.MatchString(name) {
			return
		}
		if len(name) > 63 || strings.ContainsAny(name, "/\\:% \t\n\x00") || strings.ToLower(name) != name || name == "." || name == ".." || strings.HasPrefix(name, "-") || strings.HasPrefix(name, ".") {
			t.Fatalf("accepted template name %q", name)
		}
		if got := filepath.Join("/data/templates", name); filepath.Dir(got) != "/data/templates" {
			t.Fatalf("name %q escapes its directory: %s", name, got)
		}
	})
}
