package network

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// Anti-spoofing lives in a bridge-family table (named after the bridge too):
// a frame entering from a sandbox's port jumps, by input port (map @ports),
// to port-<id>, which lets through only IPv4 and ARP carrying the sandbox's
// own address and drops everything else (IPv6 included). The inet rules
// pick a sandbox's chains by source address, so without this a sandbox could
// borrow another's policy by forging its address. (A port missing from the
// map is not dropped: bridge-family hooks see every bridge on the host, and
// this kernel has no meta ibrname to tell ours apart; the guard restores a
// flushed map within its interval.)
const portMapName = "ports"

func (m *Manager) bridgeTable() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyBridge, Name: m.cfg.Bridge}
}

func portMap(t *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: t, Name: portMapName, IsMap: true, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict}
}

var bridgePriorityFilter = nftables.ChainPriorityRef(-200) // NF_BR_PRI_FILTER_BRIDGED

// addBridgeBase queues the bridge table, its map (flushed) and base chain.
func (m *Manager) addBridgeBase() (*nftables.Set, error) {
	c := m.nft
	t := c.AddTable(m.bridgeTable())
	ports := portMap(t)
	if err := c.AddSet(ports, nil); err != nil {
		return nil, fmt.Errorf("network: nft set %s: %w", portMapName, err)
	}
	c.FlushSet(ports)
	ch := c.AddChain(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: bridgePriorityFilter, Policy: &policyAccept})
	c.FlushChain(ch)
	m.baseRules[baseKey(t, ch.Name)] = 1
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		lookupVerdict(ports),
	}})
	return ports, nil
}

// addPortChain queues port-<id> and its map entry for veth.
func (m *Manager) addPortChain(ports *nftables.Set, id, veth string, ip netip.Addr) error {
	c, t := m.nft, ports.Table
	ch := c.AddChain(&nftables.Chain{Name: portChainName(id), Table: t})
	c.FlushChain(ch)
	ret := &expr.Verdict{Kind: expr.VerdictReturn}
	ethertype := func(v uint16) []expr.Any {
		return []expr.Any{
			&expr.Meta{Key: expr.MetaKeyPROTOCOL, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{byte(v >> 8), byte(v)}},
		}
	}
	own := netip.PrefixFrom(ip, 32)
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rule(ethertype(unix.ETH_P_IP), matchPrefix(ipv4SaddrOffset, own), one(ret))})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rule(ethertype(unix.ETH_P_ARP), matchPrefix(arpSpaOffset, own), one(ret))})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: one(drop())})
	err := c.SetAddElements(ports, []nftables.SetElement{{Key: ifname(veth), Comment: id, VerdictData: jump(portChainName(id))}})
	if err != nil {
		return fmt.Errorf("network: nft map %s: %w", portMapName, err)
	}
	return nil
}

// bridgeChains lists the port-<id> chains present in the bridge table.
func (m *Manager) bridgeChains() (map[string]bool, error) {
	chains, err := m.nft.ListChainsOfTableFamily(nftables.TableFamilyBridge)
	if err != nil {
		return nil, fmt.Errorf("network: list nft chains: %w", err)
	}
	out := map[string]bool{}
	for _, ch := range chains {
		if ch.Table.Name == m.cfg.Bridge && strings.HasPrefix(ch.Name, "port-") {
			out[ch.Name] = true
		}
	}
	return out, nil
}
