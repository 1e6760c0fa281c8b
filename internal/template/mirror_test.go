package template

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDetectSources(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string // path under etc/apt → content
		want  aptSources
	}{
		{
			name:  "nothing configured",
			files: nil,
			want:  aptSources{defaultMirror, defaultSecurity},
		},
		{
			name: "deb822 with snapshot comment and security",
			files: map[string]string{"sources.list.d/debian.sources": `Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
`},
			want: aptSources{"http://deb.debian.org/debian", "http://deb.debian.org/debian-security"},
		},
		{
			name: "deb822 skips disabled, deb-src only and non-Debian stanzas",
			files: map[string]string{"sources.list.d/a.sources": `Types: deb
URIs: https://deb.nodesource.com/node_20.x
Suites: nodistro

Types: deb-src
URIs: http://src.example.org/debian

Types: deb
Enabled: no
URIs: http://disabled.example.org/debian

types: deb deb-src
uris: http://mirror.example.org/debian/
  http://second.example.org/debian
suites: bookworm
`},
			want: aptSources{"http://mirror.example.org/debian", defaultSecurity},
		},
		{
			name: "one-line format with options and comments",
			files: map[string]string{"sources.list": `# deb http://commented.example.org/debian bookworm main
deb-src http://src.example.org/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] https://packages.cloud.google.com/apt cloud-sdk main
deb [trusted=yes] http://ftp.de.debian.org/debian/ bookworm main # trailing comment
deb http://security.debian.org/debian-security bookworm-security main
`},
			want: aptSources{"http://ftp.de.debian.org/debian", "http://security.debian.org/debian-security"},
		},
		{
			name: "sources.list comes first, then .d files in name order",
			files: map[string]string{
				"sources.list":                   "deb http://cdn.example.org/ubuntu jammy main\n",
				"sources.list.d/b.list":          "deb http://b.example.org/debian bookworm main\n",
				"sources.list.d/a.sources":       "Types: deb\nURIs: http://a.example.org/debian\nSuites: bookworm\n",
				"sources.list.d/c.list.disabled": "deb http://c.example.org/debian bookworm main\n",
			},
			want: aptSources{"http://a.example.org/debian", defaultSecurity},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for rel, content := range tt.files {
				path := filepath.Join(dir, rel)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := detectSources(dir); got != tt.want {
				t.Errorf("detectSources = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestArchiveKind(t *testing.T) {
	tests := map[string]string{
		"http://deb.debian.org/debian":                    "debian",
		"https://deb.debian.org/debian/":                  "debian",
		"http://localhost:3142/deb.debian.org/debian":     "debian",
		"http://deb.debian.org/debian-security":           "debian-security",
		"http://archive.ubuntu.com/ubuntu":                "",
		"file:///srv/debian":                              "",
		"http://snapshot.debian.org/archive/debian/2025Z": "",
		"not a url": "",
	}
	for uri, want := range tests {
		if got := archiveKind(uri); got != want {
			t.Errorf("archiveKind(%q) = %q, want %q", uri, got, want)
		}
	}
}
