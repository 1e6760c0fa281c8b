package network

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultProtected are the destinations no sandbox reaches unless the
// operator allows it (Config.AllowProtected): "this network", private
// (RFC 1918), shared/CGNAT (RFC 6598, which also holds the 100.100.100.200
// metadata address some clouds use), loopback, link-local (169.254.169.254
// and friends), IETF protocol assignments, multicast and reserved space.
// IPv6 needs no list: sandboxes are IPv4-only and the bridge drops the rest.
var DefaultProtected = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("240.0.0.0/4"),
}

// hostNetworks lists the host's IPv4 addresses and the networks they sit on
// (its LAN, whatever range it is in). Loopback, veths (namespaces and
// containers on this host, reached only through their own routes) and the
// sandbox bridge itself are left out.
func hostNetworks(bridge string) (addrs, lans []netip.Prefix, err error) {
	links, err := listLinks()
	if err != nil {
		return nil, nil, fmt.Errorf("network: list host links: %w", err)
	}
	for _, l := range links {
		a := l.Attrs()
		if a.Name == bridge || l.Type() == "veth" || a.Flags&unix.IFF_LOOPBACK != 0 {
			continue
		}
		list, err := netlink.AddrList(l, unix.AF_INET)
		if err != nil {
			return nil, nil, fmt.Errorf("network: addresses of %s: %w", a.Name, err)
		}
		for _, ad := range list {
			ip, ok := netip.AddrFromSlice(ad.IP.To4())
			if !ok {
				continue
			}
			bits, _ := ad.Mask.Size()
			addrs = append(addrs, netip.PrefixFrom(ip, 32))
			lans = append(lans, netip.PrefixFrom(ip, bits).Masked())
		}
	}
	return addrs, lans, nil
}

// minimalPrefixes sorts ps and drops the ones another one already covers,
// so the firewall gets one rule per disjoint range.
func minimalPrefixes(ps []netip.Prefix) []netip.Prefix {
	ps = slices.Clone(ps)
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	var out []netip.Prefix
	for _, p := range ps {
		if len(out) > 0 && covers(out[len(out)-1], p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// covers reports whether every address of inner is in outer.
func covers(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// CheckPolicy validates p against this host: every prefix IPv4, and, unless
// the operator allowed it, no AllowOut entry that lies inside a protected
// range, the sandbox subnet or the host's own addresses. (A wider entry such
// as 0.0.0.0/0 is accepted; its protected part stays closed.)
func (m *Manager) CheckPolicy(p Policy) error {
	if err := validPolicy(p); err != nil {
		return err
	}
	if m.cfg.AllowProtected {
		return nil
	}
	for _, pfx := range p.AllowOut {
		for _, q := range m.closed {
			if covers(q, pfx.Masked()) {
				return fmt.Errorf("%w: allowOut %s is inside %s, which sandboxes may not reach (private, link-local, "+
					"the host or other sandboxes); the server's operator can allow it with --allow-private-egress",
					ErrProtected, pfx, q)
			}
		}
	}
	return nil
}

// closedRanges is what CheckPolicy refuses to open: the protected ranges,
// the subnet and the host's own addresses.
func closedRanges(cfg Config, hostAddrs []netip.Prefix) []netip.Prefix {
	all := append(slices.Clone(cfg.Protected), cfg.Subnet)
	return minimalPrefixes(append(all, hostAddrs...))
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
