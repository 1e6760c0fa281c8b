package network

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// setupBridge creates the bridge if needed, gives it the gateway address and
// a fixed MAC (so sandboxes' ARP caches stay valid as ports come and go) and
// brings it up.
func (m *Manager) setupBridge() error {
	link, err := netlink.LinkByName(m.cfg.Bridge)
	var notFound netlink.LinkNotFoundError
	switch {
	case errors.As(err, &notFound):
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: m.cfg.Bridge, HardwareAddr: bridgeMAC(m.cfg.Bridge)}}
		if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("network: create bridge %s: %w", m.cfg.Bridge, err)
		}
		if link, err = netlink.LinkByName(m.cfg.Bridge); err != nil {
			return fmt.Errorf("network: bridge %s: %w", m.cfg.Bridge, err)
		}
	case err != nil:
		return fmt.Errorf("network: bridge %s: %w", m.cfg.Bridge, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("%w: %s exists and is a %s, not a bridge", ErrInvalidConfig, m.cfg.Bridge, link.Type())
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{
		IP:   m.gateway.AsSlice(),
		Mask: net.CIDRMask(m.cfg.Subnet.Bits(), 32),
	}}
	if err := netlink.AddrReplace(link, addr); err != nil {
		return fmt.Errorf("network: address %s on %s: %w", addr, m.cfg.Bridge, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("network: bring up %s: %w", m.cfg.Bridge, err)
	}
	return nil
}

// bridgeMAC is a stable, locally administered unicast MAC for a bridge name.
func bridgeMAC(name string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("airlock-bridge:" + name))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}

// setupSysctls turns on forwarding, makes the bridge answer ARP for every
// address of the subnet back onto the port it came from (the other half of
// port isolation), and turns IPv6 off on the bridge: sandboxes are IPv4-only,
// and a link-local IPv6 path to the host would bypass the IPv4 rules.
func (m *Manager) setupSysctls() error {
	br := m.cfg.Bridge
	if err := writeSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
		return err
	}
	if err := writeSysctl("/proc/sys/net/ipv4/conf/"+br+"/proxy_arp_pvlan", "1"); err != nil {
		return err
	}
	// Proxy ARP replies to broadcasts are delayed by a random 0-800 ms by
	// default, which a sandbox would pay on its first packet to a neighbour.
	if err := writeSysctl("/proc/sys/net/ipv4/neigh/"+br+"/proxy_delay", "0"); err != nil {
		return err
	}
	// Only the host routes between sandboxes; tell no sandbox to go direct
	// (all.send_redirects may still be on; the output chain drops them too).
	if err := writeSysctl("/proc/sys/net/ipv4/conf/"+br+"/send_redirects", "0"); err != nil {
		return err
	}
	err := writeSysctl("/proc/sys/net/ipv6/conf/"+br+"/disable_ipv6", "1")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func (m *Manager) bridgeIndex() (int, error) {
	link, err := m.bridgeLink()
	if err != nil {
		return 0, err
	}
	return link.Attrs().Index, nil
}

func (m *Manager) bridgeLink() (netlink.Link, error) {
	link, err := netlink.LinkByName(m.cfg.Bridge)
	if err != nil {
		return nil, fmt.Errorf("network: bridge %s: %w", m.cfg.Bridge, err)
	}
	return link, nil
}

// sandboxMAC is the MAC of a sandbox's eth0, derived from its address so the
// host can pin a permanent neighbour entry for it: no ARP on a sandbox's
// first packets, and no neighbour-table garbage collection (which starts
// evicting and re-resolving entries at 512 by default) however many
// sandboxes run.
func sandboxMAC(ip netip.Addr) net.HardwareAddr {
	a := ip.As4()
	return net.HardwareAddr{0x02, 0xa1, a[0], a[1], a[2], a[3]}
}

// pinNeighbour adds or replaces a permanent IPv4 neighbour entry in the
// calling thread's netns.
func pinNeighbour(linkIndex int, ip netip.Addr, mac net.HardwareAddr) error {
	n := &netlink.Neigh{LinkIndex: linkIndex, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac}
	if err := netlink.NeighSet(n); err != nil {
		return fmt.Errorf("network: neighbour %s: %w", ip, err)
	}
	return nil
}

// unpinNeighbour removes the bridge's entry for a sandbox address; a missing
// entry is not an error.
func (m *Manager) unpinNeighbour(ip netip.Addr) error {
	if !ip.IsValid() {
		return nil
	}
	brIndex, err := m.bridgeIndex()
	if err != nil {
		return err
	}
	n := &netlink.Neigh{LinkIndex: brIndex, Family: netlink.FAMILY_V4, IP: ip.AsSlice()}
	if err := netlink.NeighDel(n); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("network: delete neighbour %s: %w", ip, err)
	}
	return nil
}
