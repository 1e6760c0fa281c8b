package template

import (
	"bufio"
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const (
	defaultMirror   = "http://deb.debian.org/debian"
	defaultSecurity = "http://deb.debian.org/debian-security"
)

// aptSources are the archive URIs a host's apt configuration points at.
type aptSources struct {
	Archive  string // main Debian archive, e.g. http://deb.debian.org/debian
	Security string // security archive, e.g. http://deb.debian.org/debian-security
}

// detectSources reads etcApt/sources.list and etcApt/sources.list.d/*.{list,sources}
// in apt's order and returns the first Debian archive and security URIs it finds,
// falling back to deb.debian.org. Using the host's mirror keeps builds working on
// hosts that may only reach a local mirror or proxy.
func detectSources(etcApt string) aptSources {
	files := []string{filepath.Join(etcApt, "sources.list")}
	entries, _ := os.ReadDir(filepath.Join(etcApt, "sources.list.d"))
	var names []string
	for _, e := range entries {
		n := e.Name()
		if !e.IsDir() && (strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources")) {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		files = append(files, filepath.Join(etcApt, "sources.list.d", n))
	}

	var found aptSources
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var uris []string
		if strings.HasSuffix(f, ".sources") {
			uris = parseDeb822URIs(data)
		} else {
			uris = parseOneLineURIs(data)
		}
		for _, u := range uris {
			switch archiveKind(u) {
			case "debian":
				if found.Archive == "" {
					found.Archive = strings.TrimRight(u, "/")
				}
			case "debian-security":
				if found.Security == "" {
					found.Security = strings.TrimRight(u, "/")
				}
			}
		}
	}
	if found.Archive == "" {
		found.Archive = defaultMirror
	}
	if found.Security == "" {
		found.Security = defaultSecurity
	}
	return found
}

// archiveKind returns "debian" or "debian-security" when uri is an http(s) URI
// whose last path element names a Debian archive, else "".
func archiveKind(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	switch last := filepath.Base(strings.TrimRight(u.Path, "/")); last {
	case "debian", "debian-security":
		return last
	}
	return ""
}

// parseOneLineURIs returns the URIs of the binary ("deb") lines of a
// one-line-style sources.list.
func parseOneLineURIs(data []byte) []string {
	var uris []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || fields[0] != "deb" {
			continue
		}
		rest := fields[1:]
		// Skip an options block: "[arch=amd64 signed-by=…]", possibly spread over fields.
		if strings.HasPrefix(rest[0], "[") {
			for len(rest) > 0 && !strings.HasSuffix(rest[0], "]") {
				rest = rest[1:]
			}
			if len(rest) > 0 {
				rest = rest[1:]
			}
		}
		if len(rest) > 0 {
			uris = append(uris, rest[0])
		}
	}
	return uris
}

// parseDeb822URIs returns the URIs of the enabled "deb" stanzas of a
// deb822-style .sources file.
func parseDeb822URIs(data []byte) []string {
	var uris []string
	flush := func(st map[string]string) {
		if len(st) == 0 {
			return
		}
		if strings.EqualFold(strings.TrimSpace(st["enabled"]), "no") {
			return
		}
		if !containsField(st["types"], "deb") {
			return
		}
		uris = append(uris, strings.Fields(st["uris"])...)
	}

	stanza := map[string]string{}
	last := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
			continue
		case strings.TrimSpace(line) == "":
			flush(stanza)
			stanza, last = map[string]string{}, ""
		case line[0] == ' ' || line[0] == '\t':
			if last != "" {
				stanza[last] += " " + strings.TrimSpace(line)
			}
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			last = strings.ToLower(strings.TrimSpace(k))
			stanza[last] = strings.TrimSpace(v)
		}
	}
	flush(stanza)
	return uris
}

func containsField(list, want string) bool {
	for _, f := range strings.Fields(list) {
		if f == want {
			return true
		}
	}
	return false
}
