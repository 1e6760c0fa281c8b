package template

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Debian's /etc/profile sets PATH outright; after keepPath a login shell
// keeps the PATH it was given and sets Debian's only when it has none.
func TestKeepPath(t *testing.T) {
	const debian = `# /etc/profile: system-wide .profile file for the Bourne shell (sh(1))

if [ "$(id -u)" -eq 0 ]; then
  PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
else
  PATH="/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
fi
export PATH
`
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(root, "etc", "profile")
	if err := os.WriteFile(p, []byte(debian), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keepPath(root); err != nil {
		t.Fatal(err)
	}
	sh := func(env ...string) string {
		cmd := exec.Command("/bin/sh", "-c", `. "$1"; printf %s "$PATH"`, "sh", p)
		cmd.Env = env
		out, err := cmd.Output() // with no PATH, id is not found: its complaint goes to stderr
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		return string(out)
	}
	if got := sh("PATH=/opt/tools:/usr/bin:/bin"); got != "/opt/tools:/usr/bin:/bin" {
		t.Errorf("given PATH became %q", got)
	}
	if got := sh("PATH="); !strings.HasPrefix(got, "/usr/local/") {
		t.Errorf("empty PATH became %q, want Debian's default", got)
	}
	if err := os.WriteFile(p, []byte("export PATH=/x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := keepPath(root); err == nil {
		t.Error("a profile without Debian's block was accepted silently")
	}
}
