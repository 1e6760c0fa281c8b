package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Attach creates the sandbox's network: a netns (held open until Detach,
// reachable at Endpoint.NetNSPath) with lo up and eth0 (the peer of a veth
// whose host side is an isolated port of the bridge) holding a subnet
// address and a default route via the gateway, plus permanent neighbour and
// bridge FDB entries and the firewall chains for p. On any error everything
// done so far is undone.
func (m *Manager) Attach(ctx context.Context, id string, p Policy) (*Endpoint, error) {
	if err := validID(id); err != nil {
		return nil, err
	}
	if err := m.CheckPolicy(p); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.fwMu.RLock()
	defer m.fwMu.RUnlock()
	m.mu.Lock()
	if _, ok := m.endpoints[id]; ok {
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %s", ErrExists, id)
	}
	e := &entry{}
	e.mu.Lock()
	defer e.mu.Unlock()
	m.endpoints[id] = e
	m.mu.Unlock()

	start := time.Now()
	ep, ns, err := m.attach(id, p)
	if err != nil {
		m.mu.Lock()
		delete(m.endpoints, id)
		m.mu.Unlock()
		return nil, err
	}
	e.ep, e.ns, e.pol, e.polKnown = ep, ns, p, true
	m.log.Debug("attached", "sandbox", id, "ip", ep.IP, "took", time.Since(start))
	cp := *ep
	return &cp, nil
}

func (m *Manager) attach(id string, p Policy) (_ *Endpoint, _ *os.File, err error) {
	ip, err := m.ipam.allocate()
	if err != nil {
		return nil, nil, err
	}
	ep := &Endpoint{
		ID:        id,
		IP:        ip,
		Gateway:   m.gateway,
		PrefixLen: m.cfg.Subnet.Bits(),
		HostVeth:  vethName(id),
	}
	var undo []func() error
	defer func() {
		if err == nil {
			return
		}
		for _, f := range slices.Backward(undo) {
			if uerr := f(); uerr != nil {
				m.log.Warn("attach rollback", "sandbox", id, "err", uerr)
			}
		}
		m.ipam.release(ip)
	}()

	br, err := m.bridgeLink()
	if err != nil {
		return nil, nil, err
	}
	brIndex := br.Attrs().Index
	ns, err := newNetns(m.hostNS, func() error { return m.setupInside(ep, br.Attrs().HardwareAddr) })
	if err != nil {
		return nil, nil, err
	}
	ep.NetNSPath = netnsFilePath(ns)
	undo = append(undo, ns.Close)
	undo = append(undo, func() error { return deleteLink(ep.HostVeth) })

	host, err := netlink.LinkByName(ep.HostVeth)
	if err != nil {
		return nil, nil, fmt.Errorf("network: host veth %s: %w", ep.HostVeth, err)
	}
	// Isolate before joining the bridge so no frame ever crosses unisolated.
	if err := netlink.LinkSetMasterByIndex(host, brIndex); err != nil {
		return nil, nil, fmt.Errorf("network: attach %s to %s: %w", ep.HostVeth, m.cfg.Bridge, err)
	}
	if err := netlink.LinkSetIsolated(host, true); err != nil {
		return nil, nil, fmt.Errorf("network: isolate port %s: %w", ep.HostVeth, err)
	}
	// The sandbox never ARPs (its gateway entry is pinned), so the bridge
	// would not learn its MAC before its first reply and would flood the
	// host's first packets to it out of every port. Say where it is.
	fdb := &netlink.Neigh{LinkIndex: host.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_MASTER,
		State: netlink.NUD_NOARP, HardwareAddr: sandboxMAC(ip)}
	if err := netlink.NeighSet(fdb); err != nil {
		return nil, nil, fmt.Errorf("network: bridge fdb entry on %s: %w", ep.HostVeth, err)
	}
	if err := netlink.LinkSetAlias(host, vethAlias(id, ip)); err != nil {
		return nil, nil, fmt.Errorf("network: alias %s: %w", ep.HostVeth, err)
	}
	// Up before the policy exists is safe: the base chains drop traffic from
	// addresses without an entry in the maps. It gives the kernel's linkwatch
	// time to put the port into forwarding state while nft is programmed.
	if err := netlink.LinkSetUp(host); err != nil {
		return nil, nil, fmt.Errorf("network: bring up %s: %w", ep.HostVeth, err)
	}
	undo = append(undo, func() error { return m.unpinNeighbour(ip) })
	if err := pinNeighbour(brIndex, ip, sandboxMAC(ip)); err != nil {
		return nil, nil, err
	}
	undo = append(undo, func() error { return m.removePolicy(id) })
	if err := m.installPolicy(id, ip, p, ep.HostVeth); err != nil {
		return nil, nil, err
	}
	m.waitForwarding(ep.HostVeth)
	return ep, ns, nil
}

// waitForwarding waits until the bridge forwards on port. The bridge enables
// a port only once linkwatch has marked it operationally up, asynchronously
// after "link up"; a frame in between (the sandbox's first ARP, or the
// host's ARP for the sandbox) is dropped and costs a 1 s ARP retry.
func (m *Manager) waitForwarding(port string) {
	const forwarding = "3\n" // BR_STATE_FORWARDING
	path := "/sys/class/net/" + port + "/brport/state"
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && string(b) == forwarding {
			return
		}
		if time.Now().After(deadline) {
			m.log.Warn("bridge port not forwarding yet", "port", port, "state", string(b), "err", err)
			return
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// setupInside runs on a thread inside the new netns. It creates the veth
// there, sending the peer to the host netns, so eth0 never needs renaming or
// moving; the host side is configured by the caller.
// The gateway's neighbour entry is pinned to the bridge's MAC, so the
// sandbox never has to ARP for it.
func (m *Manager) setupInside(ep *Endpoint, gatewayMAC net.HardwareAddr) error {
	// IPv4 only: no IPv6 link-local path around the firewall.
	for _, k := range []string{"all", "default"} {
		err := writeSysctl("/proc/sys/net/ipv6/conf/"+k+"/disable_ipv6", "1")
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("network: lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("network: bring up lo: %w", err)
	}
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: "eth0", HardwareAddr: sandboxMAC(ep.IP)},
		PeerName:      ep.HostVeth,
		PeerNamespace: netlink.NsFd(int(m.hostNS)),
	}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("network: create veth %s: %w", ep.HostVeth, err)
	}
	eth0, err := netlink.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("network: eth0: %w", err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: ep.IP.AsSlice(), Mask: net.CIDRMask(ep.PrefixLen, 32)}}
	if err := netlink.AddrAdd(eth0, addr); err != nil {
		return fmt.Errorf("network: address %s on eth0: %w", addr, err)
	}
	if err := netlink.LinkSetUp(eth0); err != nil {
		return fmt.Errorf("network: bring up eth0: %w", err)
	}
	if err := pinNeighbour(eth0.Attrs().Index, ep.Gateway, gatewayMAC); err != nil {
		return err
	}
	route := &netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: ep.Gateway.AsSlice()}
	if err := netlink.RouteAdd(route); err != nil {
		return fmt.Errorf("network: default route via %s: %w", ep.Gateway, err)
	}
	return nil
}

func deleteLink(name string) error {
	link, err := netlink.LinkByName(name)
	var notFound netlink.LinkNotFoundError
	if errors.As(err, &notFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("network: link %s: %w", name, err)
	}
	if err := netlink.LinkDel(link); err != nil {
		return fmt.Errorf("network: delete link %s: %w", name, err)
	}
	return nil
}

// Detach removes the sandbox's netns, veth and firewall state. It works from
// what is on the host, not only memory, and returns nil when all is gone.
func (m *Manager) Detach(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return err
	}
	m.fwMu.RLock()
	defer m.fwMu.RUnlock()
	m.mu.Lock()
	e, ok := m.endpoints[id]
	m.mu.Unlock()
	if ok {
		e.mu.Lock()
		defer e.mu.Unlock()
	}
	// The address, for its neighbour entry: from memory, or after a restart
	// from the alias of the host veth.
	var ip netip.Addr
	if ok && e.ep != nil {
		ip = e.ep.IP
	} else if l, err := netlink.LinkByName(vethName(id)); err == nil {
		_, ip, _ = parseAlias(l.Attrs().Alias)
	}
	// Remove the firewall chains first: once the link is gone the address
	// could be reused, and it must not inherit this sandbox's rules.
	errs := []error{m.removePolicy(id), m.unpinNeighbour(ip), deleteLink(vethName(id)), deleteNetns(m.netnsPath(id))}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ok && e.ns != nil {
		e.ns.Close()
		e.ns = nil
	}
	if ok {
		m.mu.Lock()
		if m.endpoints[id] == e {
			delete(m.endpoints, id)
		}
		m.mu.Unlock()
		if e.ep != nil {
			m.ipam.release(e.ep.IP)
		}
	}
	m.log.Debug("detached", "sandbox", id)
	return nil
}

// SetPolicy replaces the sandbox's egress policy atomically.
func (m *Manager) SetPolicy(ctx context.Context, id string, p Policy) error {
	if err := validID(id); err != nil {
		return err
	}
	if err := m.CheckPolicy(p); err != nil {
		return err
	}
	m.fwMu.RLock()
	defer m.fwMu.RUnlock()
	m.mu.Lock()
	e, ok := m.endpoints[id]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ep == nil || !e.ep.IP.IsValid() {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err := m.installPolicy(id, e.ep.IP, p, ""); err != nil {
		return err
	}
	e.pol, e.polKnown = p, true
	return nil
}

// Endpoint returns the endpoint of a sandbox attached by or rediscovered by m.
func (m *Manager) Endpoint(id string) (*Endpoint, bool) {
	m.mu.Lock()
	e, ok := m.endpoints[id]
	m.mu.Unlock()
	if !ok {
		return nil, false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ep == nil {
		return nil, false
	}
	cp := *e.ep
	return &cp, true
}

// List discovers endpoints from the host: every port of our bridge whose
// alias names a sandbox and its address (its netns is held by the sandbox's
// processes), plus named netns "airlock-<id>" left by earlier versions,
// including orphans whose veth is gone but whose eth0 address is in our
// subnet (Detach cleans those). A named netns with neither is not ours.
func (m *Manager) List(ctx context.Context) ([]Endpoint, error) {
	links, err := listLinks()
	if err != nil {
		return nil, fmt.Errorf("network: list links: %w", err)
	}
	brIndex, err := m.bridgeIndex()
	if err != nil {
		return nil, err
	}
	found := map[string]*Endpoint{}
	for _, l := range links {
		a := l.Attrs()
		if a.MasterIndex != brIndex {
			continue
		}
		if id, ip, ok := parseAlias(a.Alias); ok && a.Name == vethName(id) {
			found[id] = &Endpoint{ID: id, IP: ip, HostVeth: a.Name, Gateway: m.gateway, PrefixLen: m.cfg.Subnet.Bits()}
		}
	}
	dirents, err := os.ReadDir(m.cfg.NetnsDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("network: read %s: %w", m.cfg.NetnsDir, err)
	}
	for _, d := range dirents {
		id, ok := strings.CutPrefix(d.Name(), netnsPrefix)
		if !ok || validID(id) != nil {
			continue
		}
		path := m.netnsPath(id)
		if ep, ok := found[id]; ok {
			ep.NetNSPath = path
		} else if ip, err := addrInNetns(path); err == nil && m.cfg.Subnet.Contains(ip) {
			found[id] = &Endpoint{ID: id, IP: ip, NetNSPath: path, Gateway: m.gateway, PrefixLen: m.cfg.Subnet.Bits()}
		}
	}
	out := make([]Endpoint, 0, len(found))
	for _, ep := range found {
		out = append(out, *ep)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// addrInNetns reads eth0's IPv4 address inside a named netns.
func addrInNetns(path string) (netip.Addr, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return netip.Addr{}, err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return netip.Addr{}, err
	}
	defer h.Close()
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return netip.Addr{}, err
	}
	addrs, err := h.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("no IPv4 address on eth0: %w", err)
	}
	ip, _ := netip.AddrFromSlice(addrs[0].IP.To4())
	return ip, nil
}

// Destroy removes the bridge and the nft table (tests, uninstall). With
// endpoints still present it fails with ErrEndpointsExist unless force is
// set, in which case it detaches them first.
func (m *Manager) Destroy(ctx context.Context, force bool) error {
	eps, err := m.List(ctx)
	if err != nil {
		return err
	}
	if len(eps) > 0 && !force {
		return fmt.Errorf("%w: %d", ErrEndpointsExist, len(eps))
	}
	for _, ep := range eps {
		if err := m.Detach(ctx, ep.ID); err != nil {
			return err
		}
	}
	if err := m.deleteTables(); err != nil {
		return err
	}
	return deleteLink(m.cfg.Bridge)
}

func validPolicy(p Policy) error {
	for _, list := range [][]netip.Prefix{p.AllowOut, p.DenyOut} {
		for _, pfx := range list {
			if !pfx.IsValid() || !pfx.Addr().Is4() {
				return fmt.Errorf("%w: %s is not an IPv4 prefix", ErrInvalidPolicy, pfx)
			}
		}
	}
	return nil
}

// listLinks dumps the host's links, again if a concurrent change (another
// sandbox coming or going) interrupted the dump and made it inconsistent.
func listLinks() ([]netlink.Link, error) {
	for try := 1; ; try++ {
		links, err := netlink.LinkList()
		if !errors.Is(err, netlink.ErrDumpInterrupted) || try == 20 {
			return links, err
		}
	}
}
