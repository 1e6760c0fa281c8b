package network

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// Guard re-checks the firewall every interval until ctx ends. Anything else
// on the host may rewrite nftables (an "nft flush ruleset", a firewall
// service reloading): when one of our tables, base chains' rules or map
// entries is gone, Guard logs it and rebuilds everything from memory. A
// flushed map alone already fails closed (the base chains drop unknown
// sources); a deleted table or base chain would fail open, which is why the
// check runs often. If a rebuild fails, Guard takes the bridge down, cutting
// every sandbox off rather than leaving it unfiltered, and brings it back up
// once a rebuild succeeds.
func (m *Manager) Guard(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := m.CheckFirewall(); err != nil {
			m.log.Error("firewall check", "err", err)
		}
	}
}

// CheckFirewall compares the kernel's tables with what the manager wrote and
// repairs them; it reports what was wrong (nil if nothing).
func (m *Manager) CheckFirewall() ([]string, error) {
	m.fwMu.Lock()
	defer m.fwMu.Unlock()
	found, pols := m.snapshot()
	problems, err := m.inspect(found)
	if err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) == 0 && !m.cutOff {
		return nil, nil
	}
	m.log.Warn("firewall tampered with or incomplete, restoring", "problems", strings.Join(problems, "; "))
	if err := m.setupFirewall(found, pols); err != nil {
		return problems, m.cutOffAll(fmt.Errorf("network: restore firewall: %w", err))
	}
	if m.cutOff {
		if err := m.setupBridge(); err != nil {
			return problems, fmt.Errorf("network: bring %s back up: %w", m.cfg.Bridge, err)
		}
		m.cutOff = false
		m.log.Warn("firewall restored; sandboxes reconnected", "bridge", m.cfg.Bridge)
	} else {
		m.log.Warn("firewall restored")
	}
	return problems, nil
}

// cutOffAll fails closed: with the bridge down no sandbox traffic moves.
func (m *Manager) cutOffAll(cause error) error {
	link, err := netlink.LinkByName(m.cfg.Bridge)
	if err == nil {
		err = netlink.LinkSetDown(link)
	}
	if err != nil {
		return errors.Join(cause, fmt.Errorf("network: take %s down: %w", m.cfg.Bridge, err))
	}
	m.cutOff = true
	m.log.Error("firewall could not be restored; all sandboxes cut off", "bridge", m.cfg.Bridge, "err", cause)
	return cause
}

// snapshot copies the attached endpoints and their known policies.
func (m *Manager) snapshot() ([]Endpoint, map[string]Policy) {
	m.mu.Lock()
	entries := make([]*entry, 0, len(m.endpoints))
	for _, e := range m.endpoints {
		entries = append(entries, e)
	}
	m.mu.Unlock()
	var found []Endpoint
	pols := map[string]Policy{}
	for _, e := range entries {
		e.mu.Lock()
		if e.ep != nil {
			found = append(found, *e.ep)
			if e.polKnown {
				pols[e.ep.ID] = e.pol
			}
		}
		e.mu.Unlock()
	}
	return found, pols
}

// inspect lists what differs between the kernel and what found needs.
func (m *Manager) inspect(found []Endpoint) ([]string, error) {
	var problems []string
	c := m.nft
	for _, t := range []*nftables.Table{m.table(), m.bridgeTable()} {
		chains, err := c.ListChainsOfTableFamily(t.Family)
		if err != nil {
			return nil, fmt.Errorf("list nft chains: %w", err)
		}
		have := map[string]*nftables.Chain{}
		for _, ch := range chains {
			if ch.Table.Name == t.Name {
				have[ch.Name] = ch
			}
		}
		for key, want := range m.baseRules {
			fam, name, _ := strings.Cut(key, "/")
			if fam != familyName(t.Family) {
				continue
			}
			ch, ok := have[name]
			if !ok {
				problems = append(problems, "missing chain "+key)
				continue
			}
			rules, err := c.GetRules(t, ch)
			if err != nil {
				return nil, fmt.Errorf("list rules of %s: %w", key, err)
			}
			if len(rules) != want {
				problems = append(problems, fmt.Sprintf("chain %s has %d rules, want %d", key, len(rules), want))
			}
		}
		for _, ep := range found {
			if !ep.IP.IsValid() {
				continue
			}
			names := []string{fwdChainName(ep.ID), inChainName(ep.ID)}
			if t.Family == nftables.TableFamilyBridge {
				names = nil
				if ep.HostVeth != "" {
					names = []string{portChainName(ep.ID)}
				}
			}
			for _, n := range names {
				if _, ok := have[n]; !ok {
					problems = append(problems, "missing chain "+familyName(t.Family)+"/"+n)
				}
			}
		}
	}
	want := map[string]int{}
	for _, ep := range found {
		if ep.IP.IsValid() {
			want[fwdMapName]++
			want[inMapName]++
			if ep.HostVeth != "" {
				want[portMapName]++
			}
		}
	}
	for _, set := range []*nftables.Set{verdictMap(m.table(), fwdMapName), verdictMap(m.table(), inMapName), portMap(m.bridgeTable())} {
		elems, err := c.GetSetElements(set)
		if err != nil {
			problems = append(problems, fmt.Sprintf("map %s: %v", set.Name, err))
			continue
		}
		if len(elems) != want[set.Name] {
			problems = append(problems, fmt.Sprintf("map %s has %d entries, want %d", set.Name, len(elems), want[set.Name]))
		}
	}
	return problems, nil
}

func baseKey(t *nftables.Table, chain string) string { return familyName(t.Family) + "/" + chain }

func familyName(f nftables.TableFamily) string {
	if f == nftables.TableFamilyBridge {
		return "bridge"
	}
	return "inet"
}
