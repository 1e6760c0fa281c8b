package main

import (
	"fmt"
	"net"
	"strings"

	"github.com/airlock-sandbox/airlock/internal/selfsigned"
)

// sandboxDomain is the domain create responses carry, so the SDKs'
// getHost(port) (`{port}-{id}.{domain}`) points at this server and never
// at E2B's cloud, the SDKs' default. Without --domain it is "localhost",
// whose subdomains browsers and curl resolve to this machine. The listen
// port is appended unless it is the scheme's default, because the SDKs
// put the domain into URLs verbatim.
func sandboxDomain(domain, addr string, tls bool) string {
	if domain == "" {
		domain = "localhost"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" || (port == "443" && tls) || (port == "80" && !tls) {
		return domain
	}
	return domain + ":" + port
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
