package server

import "net/netip"

var privateV4 = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("127.0.0.0/8"),
}

var globalV6 = netip.MustParsePrefix("2000::/3")

// IsPrivate reports whether a peer counts as private for vlmcsd's public
// address protection (kms-server.md §8): RFC 1918, link-local and loopback
// IPv4; IPv6 loopback and everything outside 2000::/3. IPv4-mapped IPv6
// addresses are judged as IPv4. 100.64.0.0/10 is public, as in vlmcsd.
func IsPrivate(a netip.Addr) bool {
	a = a.Unmap()
	if a.Is4() {
		for _, p := range privateV4 {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return a.IsLoopback() || !globalV6.Contains(a)
}

// PeerPolicy decides which client addresses may connect: a denied network
// always loses; with an allow list only listed networks may connect; with
// PrivateOnly public addresses are refused (vlmcsd -o 2).
type PeerPolicy struct {
	Allow, Deny []netip.Prefix
	PrivateOnly bool
}

// Active reports whether the policy refuses anything at all.
func (p PeerPolicy) Active() bool {
	return len(p.Allow) > 0 || len(p.Deny) > 0 || p.PrivateOnly
}

// Allowed reports whether a may connect.
func (p PeerPolicy) Allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, d := range p.Deny {
		if d.Contains(a) {
			return false
		}
	}
	if len(p.Allow) > 0 {
		ok := false
		for _, n := range p.Allow {
			if n.Contains(a) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return !p.PrivateOnly || IsPrivate(a)
}
