package network

import (
	"net/netip"
	"sync"
)

// ipam hands out addresses of an IPv4 subnet, skipping the network address,
// the gateway and the broadcast address. It allocates next-fit so that a
// just-released address is not reused at once (stale ARP/conntrack entries).
type ipam struct {
	mu      sync.Mutex
	subnet  netip.Prefix
	gateway netip.Addr
	last    netip.Addr // broadcast address
	next    netip.Addr
	used    map[netip.Addr]struct{}
}

func newIPAM(subnet netip.Prefix, gateway netip.Addr) *ipam {
	return &ipam{
		subnet:  subnet,
		gateway: gateway,
		last:    lastAddr(subnet),
		next:    gateway.Next(),
		used:    map[netip.Addr]struct{}{},
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (a *ipam) usable(ip netip.Addr) bool {
	return a.subnet.Contains(ip) && ip != a.subnet.Addr() && ip != a.gateway && ip != a.last
}

func (a *ipam) allocate() (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ip := a.next
	for range 1 << (32 - a.subnet.Bits()) {
		if !a.usable(ip) {
			ip = a.gateway.Next()
		}
		if _, taken := a.used[ip]; !taken {
			a.used[ip] = struct{}{}
			a.next = ip.Next()
			return ip, nil
		}
		ip = ip.Next()
	}
	return netip.Addr{}, ErrSubnetFull
}

func (a *ipam) reserve(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.used[ip] = struct{}{}
}

func (a *ipam) release(ip netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.used, ip)
}
