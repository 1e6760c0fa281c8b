package network

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The inet table (named after the bridge) holds everything Airlock adds to
// the host firewall:
//
//	prerouting:  traffic from the bridge to another subnet address is judged
//	             early by the sender's fwd-<id> (see addBaseChains)
//	forward:     replies pass; traffic from the bridge jumps by source address
//	             (map @fwd) to that sandbox's chain fwd-<id>; anything else from
//	             or into the bridge is dropped
//	input:       from the bridge only replies pass, plus what in-<id> (map @in)
//	             allows; so sandboxes cannot reach the host's own services
//	output:      no ICMP redirects to sandboxes (all routing stays on the host)
//	postrouting: masquerade the subnet when it leaves by another interface
//
// All base chains have policy accept: they only ever drop sandbox traffic and
// leave the host's other traffic to whatever other tables decide.
const (
	fwdMapName = "fwd"
	inMapName  = "in"
)

var policyAccept = nftables.ChainPolicyAccept

func (m *Manager) table() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyINet, Name: m.cfg.Bridge}
}

func verdictMap(t *nftables.Table, name string) *nftables.Set {
	return &nftables.Set{Table: t, Name: name, IsMap: true, KeyType: nftables.TypeIPAddr, DataType: nftables.TypeVerdict}
}

// setupFirewall (re)builds the base chains atomically in one batch, rewrites
// the chains of endpoints whose policy is known (pols), keeps those of other
// rediscovered endpoints (restoring a deny-all chain if one is missing: fail
// closed) and drops chains of sandboxes that are gone.
func (m *Manager) setupFirewall(found []Endpoint, pols map[string]Policy) error {
	m.nftMu.Lock()
	defer m.nftMu.Unlock()
	c := m.nft
	existing, err := m.sandboxChains()
	if err != nil {
		return err
	}
	t := c.AddTable(m.table())
	fwdMap, inMap := verdictMap(t, fwdMapName), verdictMap(t, inMapName)
	for _, s := range []*nftables.Set{fwdMap, inMap} {
		if err := c.AddSet(s, nil); err != nil {
			return fmt.Errorf("network: nft set %s: %w", s.Name, err)
		}
		c.FlushSet(s)
	}
	m.addBaseChains(t, fwdMap, inMap)
	portChains, err := m.bridgeChains()
	if err != nil {
		return err
	}
	ports, err := m.addBridgeBase()
	if err != nil {
		return err
	}

	keep := map[string]bool{}
	for _, ep := range found {
		keep[fwdChainName(ep.ID)], keep[inChainName(ep.ID)] = true, true
		if !ep.IP.IsValid() {
			continue
		}
		if ep.HostVeth != "" {
			keep[portChainName(ep.ID)] = true
			if err := m.addPortChain(ports, ep.ID, ep.HostVeth, ep.IP); err != nil {
				return err
			}
		}
		if p, ok := pols[ep.ID]; ok {
			m.addPolicyChains(t, ep.ID, p)
		} else if !existing[fwdChainName(ep.ID)] || !existing[inChainName(ep.ID)] {
			m.log.Warn("restoring missing firewall chains as deny-all", "sandbox", ep.ID)
			m.addPolicyChains(t, ep.ID, Policy{})
		}
		if err := m.addPolicyElements(fwdMap, inMap, ep.ID, ep.IP); err != nil {
			return err
		}
	}
	for name := range existing {
		if !keep[name] {
			c.DelChain(&nftables.Chain{Table: t, Name: name})
		}
	}
	for name := range portChains {
		if !keep[name] {
			c.DelChain(&nftables.Chain{Table: ports.Table, Name: name})
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: install nft table %s: %w", m.cfg.Bridge, err)
	}
	return nil
}

// sandboxChains lists the per-sandbox chains present in our table.
func (m *Manager) sandboxChains() (map[string]bool, error) {
	chains, err := m.nft.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return nil, fmt.Errorf("network: list nft chains: %w", err)
	}
	out := map[string]bool{}
	for _, ch := range chains {
		if ch.Table.Name == m.cfg.Bridge && (strings.HasPrefix(ch.Name, "fwd-") || strings.HasPrefix(ch.Name, "in-")) {
			out[ch.Name] = true
		}
	}
	return out, nil
}

func (m *Manager) addBaseChains(t *nftables.Table, fwdMap, inMap *nftables.Set) {
	c, br := m.nft, m.cfg.Bridge
	add := func(ch *nftables.Chain, rules ...[]expr.Any) {
		m.baseRules[baseKey(t, ch.Name)] = len(rules)
		c.AddChain(ch)
		c.FlushChain(ch)
		for _, r := range rules {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: r})
		}
	}
	established := expr.CtStateBitESTABLISHED | expr.CtStateBitRELATED

	add(&nftables.Chain{Name: "forward", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookForward, Priority: nftables.ChainPriorityFilter, Policy: &policyAccept},
		rule(matchCtState(established), one(accept())),
		rule(matchIIF(br), matchIPv4(), one(loadIPv4Saddr()), one(lookupVerdict(fwdMap))),
		rule(matchIIF(br), one(drop())),
		rule(matchOIF(expr.CmpOpEq, br), one(drop())),
	)
	// Sandbox-to-sandbox traffic leaves by the interface it came in on, so
	// the kernel sends the sender an ICMP redirect before the forward hook;
	// that redirect spends the sender's ICMP rate-limit token and the reject
	// that follows is silently not sent, turning it into a 1 s timeout.
	// Judging such traffic here, before routing, rejects it in time. (Allowed
	// sandbox-to-sandbox flows still trigger redirects, dropped in output,
	// that can delay the next reject to either peer by up to 1 s unless the
	// host sets net.ipv4.conf.all.send_redirects=0.)
	add(&nftables.Chain{Name: "prerouting", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityFilter, Policy: &policyAccept},
		rule(matchIIF(br), matchCtState(established), one(accept())),
		rule(matchIIF(br), matchIPv4(), matchPrefix(ipv4DaddrOffset, m.cfg.Subnet),
			one(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: ipv4DaddrOffset, Len: 4}),
			one(&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: m.gateway.AsSlice()}),
			one(loadIPv4Saddr()), one(lookupVerdict(fwdMap))),
	)
	add(&nftables.Chain{Name: "input", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &policyAccept},
		rule(matchIIF(br), matchCtState(established), one(accept())),
		rule(matchIIF(br), matchIPv4(), one(loadIPv4Saddr()), one(lookupVerdict(inMap))),
		rule(matchIIF(br), one(drop())),
	)
	add(&nftables.Chain{Name: "output", Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &policyAccept},
		rule(matchOIF(expr.CmpOpEq, br), matchIPv4(),
			one(&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}),
			one(&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMP}}),
			one(&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1}),
			one(&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{5}}), // redirect
			one(drop())),
	)
	add(&nftables.Chain{Name: "postrouting", Table: t, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource, Policy: &policyAccept},
		rule(matchIPv4(), matchPrefix(ipv4SaddrOffset, m.cfg.Subnet), matchOIF(expr.CmpOpNeq, br), one(&expr.Masq{})),
	)
}

// addPolicyChains queues (re)writing a sandbox's two chains for p.
//
//	fwd-<id>: the subnet (other sandboxes) and the protected ranges reject;
//	          AllowOut accept; DenyOut reject; then accept if AllowInternet,
//	          else reject
//	in-<id>:  reject (the host is off limits)
//
// With Config.AllowProtected, AllowOut comes first in both chains and can
// open protected ranges, other sandboxes and the host too.
func (m *Manager) addPolicyChains(t *nftables.Table, id string, p Policy) {
	c := m.nft
	fwd := c.AddChain(&nftables.Chain{Name: fwdChainName(id), Table: t})
	in := c.AddChain(&nftables.Chain{Name: inChainName(id), Table: t})
	c.FlushChain(fwd)
	c.FlushChain(in)
	daddr := func(ch *nftables.Chain, pfx netip.Prefix, v expr.Any) {
		// The nfproto check is implied by the base chain; it is here so that
		// nft(8) can print "ip daddr" instead of a raw payload offset.
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: rule(matchIPv4(), matchPrefix(ipv4DaddrOffset, pfx), one(v))})
	}
	protect := func() {
		daddr(fwd, m.cfg.Subnet, reject())
		for _, pfx := range m.cfg.Protected {
			daddr(fwd, pfx, reject())
		}
	}
	if !m.cfg.AllowProtected {
		protect()
	}
	for _, pfx := range p.AllowOut {
		daddr(fwd, pfx, accept())
		if m.cfg.AllowProtected {
			daddr(in, pfx, accept())
		}
	}
	for _, pfx := range p.DenyOut {
		daddr(fwd, pfx, reject())
	}
	if m.cfg.AllowProtected {
		protect()
	}
	var last expr.Any = reject()
	if p.AllowInternet {
		last = accept()
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: fwd, Exprs: one(last)})
	c.AddRule(&nftables.Rule{Table: t, Chain: in, Exprs: one(reject())})
}

// addPolicyElements queues the map entries that send ip's traffic to id's chains.
// The element comment carries the id so Detach can find entries without memory.
func (m *Manager) addPolicyElements(fwdMap, inMap *nftables.Set, id string, ip netip.Addr) error {
	key := ip.AsSlice()
	if err := m.nft.SetAddElements(fwdMap, []nftables.SetElement{{Key: key, Comment: id, VerdictData: jump(fwdChainName(id))}}); err != nil {
		return fmt.Errorf("network: nft map %s: %w", fwdMapName, err)
	}
	if err := m.nft.SetAddElements(inMap, []nftables.SetElement{{Key: key, Comment: id, VerdictData: jump(inChainName(id))}}); err != nil {
		return fmt.Errorf("network: nft map %s: %w", inMapName, err)
	}
	return nil
}

// installPolicy writes (or rewrites) a sandbox's chains and map entries in
// one batch; with a veth name it also installs the port's anti-spoofing chain.
func (m *Manager) installPolicy(id string, ip netip.Addr, p Policy, veth string) error {
	m.nftMu.Lock()
	defer m.nftMu.Unlock()
	t := m.table()
	m.addPolicyChains(t, id, p)
	if err := m.addPolicyElements(verdictMap(t, fwdMapName), verdictMap(t, inMapName), id, ip); err != nil {
		return err
	}
	if veth != "" {
		if err := m.addPortChain(portMap(m.bridgeTable()), id, veth, ip); err != nil {
			return err
		}
	}
	if err := m.nft.Flush(); err != nil {
		return fmt.Errorf("network: nft policy for %s: %w", id, err)
	}
	return nil
}

// removePolicy deletes whatever firewall state id has, found by looking at
// the kernel's tables rather than memory, so it also cleans up after a crash.
func (m *Manager) removePolicy(id string) error {
	m.nftMu.Lock()
	defer m.nftMu.Unlock()
	c, t, bt := m.nft, m.table(), m.bridgeTable()
	queued := 0
	for _, set := range []*nftables.Set{verdictMap(t, fwdMapName), verdictMap(t, inMapName), portMap(bt)} {
		name := set.Name
		elems, err := c.GetSetElements(set)
		if err != nil {
			// nftables v0.3.0 formats this error with %v: match the text too.
			if errors.Is(err, unix.ENOENT) || strings.Contains(err.Error(), unix.ENOENT.Error()) {
				continue
			}
			return fmt.Errorf("network: list nft map %s: %w", name, err)
		}
		var del []nftables.SetElement
		for _, e := range elems {
			if e.Comment == id {
				del = append(del, nftables.SetElement{Key: e.Key})
			}
		}
		if len(del) > 0 {
			if err := c.SetDeleteElements(set, del); err != nil {
				return fmt.Errorf("network: nft map %s: %w", name, err)
			}
			queued++
		}
	}
	chains, err := m.sandboxChains()
	if err != nil {
		return err
	}
	for _, name := range []string{fwdChainName(id), inChainName(id)} {
		if chains[name] {
			c.FlushChain(&nftables.Chain{Table: t, Name: name})
			c.DelChain(&nftables.Chain{Table: t, Name: name})
			queued++
		}
	}
	portChains, err := m.bridgeChains()
	if err != nil {
		return err
	}
	if name := portChainName(id); portChains[name] {
		c.FlushChain(&nftables.Chain{Table: bt, Name: name})
		c.DelChain(&nftables.Chain{Table: bt, Name: name})
		queued++
	}
	if queued == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("network: remove nft policy of %s: %w", id, err)
	}
	return nil
}

// deleteTables removes our tables; missing ones are fine.
func (m *Manager) deleteTables() error {
	m.nftMu.Lock()
	defer m.nftMu.Unlock()
	for _, fam := range []nftables.TableFamily{nftables.TableFamilyINet, nftables.TableFamilyBridge} {
		tables, err := m.nft.ListTablesOfFamily(fam)
		if err != nil {
			return fmt.Errorf("network: list nft tables: %w", err)
		}
		for _, t := range tables {
			if t.Name == m.cfg.Bridge {
				m.nft.DelTable(t)
			}
		}
	}
	if err := m.nft.Flush(); err != nil {
		return fmt.Errorf("network: delete nft table %s: %w", m.cfg.Bridge, err)
	}
	return nil
}
