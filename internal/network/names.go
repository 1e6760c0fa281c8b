package network

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
)

const (
	netnsPrefix = "airlock-"
	vethPrefix  = "al"
	// aliasPrefix starts the host veth's ifalias, "airlock:<id>:<ip>", which
	// maps the hashed interface name back to its sandbox after a restart.
	aliasPrefix = "airlock:"
	maxIDLen    = 64
)

// validID reports whether id matches ^[a-z0-9]+$ and is of sane length.
func validID(id string) error {
	if id == "" || len(id) > maxIDLen {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	for _, c := range id {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return fmt.Errorf("%w: %q", ErrInvalidID, id)
		}
	}
	return nil
}

// vethName derives the host-side interface name: interface names are at most
// 15 bytes, sandbox ids are longer, so use a short hash.
func vethName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return vethPrefix + hex.EncodeToString(sum[:6])
}

func (m *Manager) netnsPath(id string) string {
	return filepath.Join(m.cfg.NetnsDir, netnsPrefix+id)
}

func fwdChainName(id string) string  { return "fwd-" + id }
func inChainName(id string) string   { return "in-" + id }
func portChainName(id string) string { return "port-" + id }

func vethAlias(id string, ip netip.Addr) string {
	return aliasPrefix + id + ":" + ip.String()
}

// parseAlias is the inverse of vethAlias.
func parseAlias(alias string) (id string, ip netip.Addr, ok bool) {
	rest, found := strings.CutPrefix(alias, aliasPrefix)
	if !found {
		return "", netip.Addr{}, false
	}
	id, ipStr, found := strings.Cut(rest, ":")
	if !found || validID(id) != nil {
		return "", netip.Addr{}, false
	}
	ip, err := netip.ParseAddr(ipStr)
	if err != nil {
		return "", netip.Addr{}, false
	}
	return id, ip, true
}
