// Package network gives each sandbox its own network namespace, joined to a
// host bridge by a veth pair, with an address from the sandbox subnet, NAT to
// the outside and a per-sandbox egress policy enforced with nftables.
//
// Isolation between sandboxes works without br_netfilter: every sandbox port
// on the bridge is an isolated port (IFLA_BRPORT_ISOLATED), so the bridge
// never forwards a frame from one sandbox to another. The bridge answers ARP
// for the whole subnet on the sandboxes' behalf (proxy_arp_pvlan), so traffic
// between sandboxes, when a policy allows it, is routed through the host where
// the nftables forward chain sees and filters it like any other egress.
package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"sync"

	"github.com/google/nftables"
	"github.com/vishvananda/netns"

	"github.com/airlock-sandbox/airlock/internal/errdefs"
)

// Sentinel errors for callers to test with errors.Is.
var (
	ErrInvalidID      = errors.New("network: invalid sandbox id")
	ErrInvalidConfig  = errors.New("network: invalid config")
	ErrInvalidPolicy  = errdefs.Mark(errdefs.ErrInvalid, errors.New("network: invalid policy"))
	ErrProtected      = errdefs.Mark(errdefs.ErrInvalid, errors.New("network: protected destination"))
	ErrExists         = errors.New("network: endpoint already exists")
	ErrNotFound       = errors.New("network: endpoint not found")
	ErrSubnetFull     = errors.New("network: no free address in subnet")
	ErrEndpointsExist = errors.New("network: endpoints still attached")
)

// Config describes the host side of the sandbox network.
type Config struct {
	Bridge   string       // default "airlock0"; also names the nftables tables
	Subnet   netip.Prefix // default 10.213.0.0/16; gateway = first address, on the bridge
	NetnsDir string       // where earlier versions bind-mounted named netns (default /run/netns), still cleaned up
	// Protected are more destinations no sandbox reaches, whatever its
	// policy, on top of DefaultProtected and the networks of the host's own
	// interfaces (its LAN, as found at New). The host itself and the other
	// sandboxes are always protected.
	Protected []netip.Prefix
	// AllowProtected is the operator's opt-in to let a sandbox's AllowOut
	// open protected ranges, the host and other sandboxes.
	AllowProtected bool
}

// Policy is a sandbox's egress policy.
type Policy struct {
	AllowInternet bool           // false = no egress at all beyond replies to connections made to the sandbox
	AllowOut      []netip.Prefix // explicitly allowed destinations (win over DenyOut; over protected ranges only with Config.AllowProtected)
	DenyOut       []netip.Prefix // denied destinations ("0.0.0.0/0" = everything)
}

// Endpoint is a sandbox's attachment to the network.
type Endpoint struct {
	ID        string
	NetNSPath string // netns to hand to the OCI runtime; "" for endpoints rediscovered after a restart
	IP        netip.Addr
	Gateway   netip.Addr
	PrefixLen int
	HostVeth  string
}

// Manager owns the bridge, the nftables tables and the sandboxes' endpoints.
type Manager struct {
	cfg     Config
	log     *slog.Logger
	gateway netip.Addr
	hostNS  netns.NsHandle
	ipam    *ipam
	closed  []netip.Prefix // what CheckPolicy refuses to open

	// fwMu is held shared by Attach, Detach and SetPolicy and exclusively by
	// the firewall guard, so a rebuild never races a sandbox's own change.
	fwMu  sync.RWMutex
	nftMu sync.Mutex // serialises batches on nft
	nft   *nftables.Conn

	baseRules map[string]int // "family/chain" → rules addBaseChains wrote, for the guard
	cutOff    bool           // the guard took the bridge down (under fwMu)

	mu        sync.Mutex
	endpoints map[string]*entry
}

// entry is one endpoint; its mutex serialises Attach/Detach/SetPolicy per id.
type entry struct {
	mu sync.Mutex
	ep *Endpoint // nil while Attach is in flight or after a failed one
	ns *os.File  // the netns, held from Attach to Detach; nil if rediscovered
	// pol is the policy last installed, for the guard to restore; unknown
	// for endpoints rediscovered after a restart until SetPolicy.
	pol      Policy
	polKnown bool
}

func (c Config) withDefaults() (Config, error) {
	if c.Bridge == "" {
		c.Bridge = "airlock0"
	}
	if !c.Subnet.IsValid() {
		c.Subnet = netip.MustParsePrefix("10.213.0.0/16")
	}
	if c.NetnsDir == "" {
		c.NetnsDir = "/run/netns"
	}
	c.Subnet = c.Subnet.Masked()
	switch {
	case len(c.Bridge) > 15:
		return c, fmt.Errorf("%w: bridge name %q longer than 15 bytes", ErrInvalidConfig, c.Bridge)
	case !c.Subnet.Addr().Is4():
		return c, fmt.Errorf("%w: subnet %s is not IPv4", ErrInvalidConfig, c.Subnet)
	case c.Subnet.Bits() > 30:
		return c, fmt.Errorf("%w: subnet %s too small", ErrInvalidConfig, c.Subnet)
	}
	for _, p := range c.Protected {
		if !p.IsValid() || !p.Addr().Is4() {
			return c, fmt.Errorf("%w: protected %s is not an IPv4 prefix", ErrInvalidConfig, p)
		}
	}
	return c, nil
}

// New prepares the host: bridge, forwarding sysctls and nftables tables. It is
// idempotent and rediscovers endpoints left by a previous process, so their
// addresses are not handed out again and their firewall chains are kept.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Manager, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	m := &Manager{
		cfg:       cfg,
		log:       log.With("component", "network", "bridge", cfg.Bridge),
		gateway:   cfg.Subnet.Addr().Next(),
		endpoints: map[string]*entry{},
		baseRules: map[string]int{},
	}
	m.ipam = newIPAM(cfg.Subnet, m.gateway)
	hostAddrs, lans, err := hostNetworks(cfg.Bridge)
	if err != nil {
		return nil, err
	}
	m.cfg.Protected = minimalPrefixes(slices.Concat(DefaultProtected, lans, cfg.Protected))
	m.closed = closedRanges(m.cfg, hostAddrs)
	if m.hostNS, err = netns.Get(); err != nil {
		return nil, fmt.Errorf("network: open host netns: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	if m.nft, err = nftables.New(nftables.AsLasting()); err != nil {
		return nil, fmt.Errorf("network: nftables: %w", err)
	}
	if err := m.setupBridge(); err != nil {
		return nil, err
	}
	if err := m.setupSysctls(); err != nil {
		return nil, err
	}
	found, err := m.List(ctx)
	if err != nil {
		return nil, err
	}
	for i := range found {
		ep := found[i]
		if ep.IP.IsValid() {
			m.ipam.reserve(ep.IP)
		}
		m.endpoints[ep.ID] = &entry{ep: &ep}
	}
	if err := m.setupFirewall(found, nil); err != nil {
		return nil, err
	}
	m.log.Info("network ready", "subnet", cfg.Subnet, "gateway", m.gateway, "endpoints", len(found),
		"protected", prefixList(m.cfg.Protected), "allow_protected", cfg.AllowProtected)
	ok = true
	return m, nil
}

// Close releases the manager's handles; it leaves the host configuration alone.
func (m *Manager) Close() error {
	var errs []error
	if m.nft != nil {
		errs = append(errs, m.nft.CloseLasting())
		m.nft = nil
	}
	if m.hostNS.IsOpen() {
		errs = append(errs, m.hostNS.Close())
	}
	return errors.Join(errs...)
}

// Gateway is the bridge's address, the sandboxes' default route.
func (m *Manager) Gateway() netip.Addr { return m.gateway }

// Config returns the effective configuration, defaults filled in.
func (m *Manager) Config() Config { return m.cfg }
