package main

import (
	"strings"
	"testing"

	"github.com/airlock-sandbox/airlock/internal/selfsigned"
)

func TestSandboxDomain(t *testing.T) {
	for _, c := range []struct {
		domain, addr string
		tls          bool
		want         string
	}{
		{"", ":3000", false, "localhost:3000"},
		{"", "127.0.0.1:80", false, "localhost"},
		{"", "127.0.0.1:443", false, "localhost:443"},
		{"", "[::1]:443", true, "localhost"},
		{"", "[::1]:80", true, "localhost:80"},
		// An explicit domain is the public name: behind a proxy the
		// listen port is not what clients dial.
		{"sbx.example.com", ":443", true, "sbx.example.com"},
		{"sbx.example.com", ":3000", true, "sbx.example.com"},
		{"sbx.example.com:8443", ":3000", true, "sbx.example.com:8443"},
	} {
		if got := sandboxDomain(c.domain, c.addr, c.tls); got != c.want {
			t.Errorf("sandboxDomain(%q, %q, %v) = %q, want %q", c.domain, c.addr, c.tls, got, c.want)
		}
	}
}

func TestDomainHost(t *testing.T) {
	for in, want := range map[string]string{"d.test": "d.test", "d.test:8443": "d.test", "localhost:3000": "localhost"} {
		if got := domainHost(in); got != want {
			t.Errorf("domainHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPublicURLHelpSaysHowToGetPublicURLs(t *testing.T) {
	got := publicURLHelp(serveOptions{addr: ":3000"}, selfsigned.Files{})
	for _, want := range []string{"http://{port}-{sandboxID}.localhost:3000", "--domain D", "--self-signed", "E2B_SANDBOX_URL"} {
		if !strings.Contains(got, want) {
			t.Errorf("help lacks %q:\n%s", want, got)
		}
	}
	got = publicURLHelp(serveOptions{addr: ":443", domain: "d.test", tlsCert: "c"}, selfsigned.Files{CA: "/x/ca.pem"})
	if !strings.Contains(got, "https://{port}-{sandboxID}.d.test\n") || !strings.Contains(got, "update-ca-certificates") ||
		strings.Contains(got, "No --domain") {
		t.Errorf("help with a self-signed domain:\n%s", got)
	}
}
