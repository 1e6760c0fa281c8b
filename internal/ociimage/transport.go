package ociimage

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// transport is the HTTP transport for one registry. A tenant names the
// registry, so unless the operator listed it as insecure the server must
// not be made to reach its own network: every connection, redirects to
// blob storage included, is checked after name resolution.
func (s *Store) transport(registry string) http.RoundTripper {
	base := s.cfg.Transport
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	d := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	if !slices.Contains(s.cfg.Insecure, registry) {
		d.Control = refusePrivate
		t.Proxy = nil // a proxy's address would be the one checked
	}
	t.DialContext = d.DialContext
	return t
}

// refusePrivate fails a connection to a non-public address.
func refusePrivate(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrPrivateTarget, address)
	}
	if !Public(ap.Addr()) {
		return fmt.Errorf("%w: %s (list it with --registry-insecure to allow it)", ErrPrivateTarget, ap.Addr())
	}
	return nil
}

var nonPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"), // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"), // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// Public reports whether a is a global unicast address outside the
// private, shared and reserved ranges.
func Public(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
