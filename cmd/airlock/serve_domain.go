package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/airlock-sandbox/airlock/internal/selfsigned"
)

// sandboxDomain is the domain create responses carry, so the SDKs'
// getHost(port) (`{port}-{id}.{domain}`) points at this server and never
// at E2B's cloud, the SDKs' default. An explicit --domain is the public
// name and is used as given: behind a proxy or a port forward the listen
// port is not the one clients dial, so an operator who needs a port writes
// it into the domain (d.test:8443). Without --domain it is "localhost",
// whose subdomains browsers and curl resolve to this machine, with the
// listen port unless it is the scheme's default, because the SDKs put the
// domain into URLs verbatim.
func sandboxDomain(domain, addr string, tls bool) string {
	if domain != "" {
		return domain
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || (port == "443" && tls) || (port == "80" && !tls) {
		return "localhost"
	}
	return "localhost:" + port
}

// domainHost is the domain without a port: what certificates name and
// what the gateway matches a request's host against.
func domainHost(domain string) string {
	if h, _, err := net.SplitHostPort(domain); err == nil {
		return h
	}
	return domain
}

// publicURLHelp is what serve prints at start about sandbox URLs: how
// getHost URLs reach sandboxes now, and how to make them public.
func publicURLHelp(o serveOptions, trust selfsigned.Files) string {
	scheme := "http"
	if o.tlsCert != "" {
		scheme = "https"
	}
	host := sandboxDomain(o.domain, o.addr, o.tlsCert != "")
	var b strings.Builder
	fmt.Fprintf(&b, "Sandbox ports (getHost): %s://{port}-{sandboxID}.%s\n", scheme, host)
	if o.domain == "" {
		b.WriteString("  No --domain: *.localhost resolves only on this machine, in browsers and curl; SDK clients\n" +
			"  reach sandboxes through E2B_SANDBOX_URL (header routing) from anywhere.\n" +
			"  For public URLs: point DNS for D and *.D at this host, then run with --domain D and\n" +
			"  --tls-cert/--tls-key (a certificate for D and *.D), or --self-signed for local use.\n")
	}
	if trust.CA != "" {
		fmt.Fprintf(&b, "  Self-signed: trust the local CA %s, e.g.\n"+
			"    cp %s /usr/local/share/ca-certificates/airlock.crt && update-ca-certificates\n"+
			"    NODE_EXTRA_CA_CERTS=%s (Node)   SSL_CERT_FILE=%s (Python httpx)\n", trust.CA, trust.CA, trust.CA, trust.CA)
	}
	return b.String()
}
