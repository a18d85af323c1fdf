package egress

import (
	"net/netip"
)

// metadata are the cloud instance-metadata addresses: AWS, GCP and Azure
// (169.254.169.254, inside link-local), Alibaba (100.100.100.200, inside
// CGNAT), Azure's wire server (168.63.129.16, a public address) and AWS's
// IPv6 endpoint (fd00:ec2::254, inside fc00::/7). They are refused even on
// routes that allow private addresses.
var metadata = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("100.100.100.200"),
	netip.MustParseAddr("168.63.129.16"),
	netip.MustParseAddr("fd00:ec2::254"),
}

// privateRanges are what a route with AllowPrivate may reach: RFC 1918,
// IPv6 unique local addresses and CGNAT (100.64/10), minus metadata.
var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("100.64.0.0/10"),
}

// reserved are further ranges no public host lives in.
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),      // "this network"
	netip.MustParsePrefix("192.0.0.0/24"),   // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),  // benchmarking
	netip.MustParsePrefix("240.0.0.0/4"),    // reserved, and broadcast
	netip.MustParsePrefix("fec0::/10"),      // deprecated site-local
	netip.MustParsePrefix("100::/64"),       // discard-only
	netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
	netip.MustParsePrefix("2001:10::/28"),   // ORCHID
	netip.MustParsePrefix("2001::/32"),      // Teredo: embeds any IPv4 address
	netip.MustParsePrefix("ff00::/8"),       // multicast
	netip.MustParsePrefix("224.0.0.0/4"),    // multicast
	netip.MustParsePrefix("255.255.255.255/32"),
}

// DefaultBlocked reports whether the gateway refuses to dial a: loopback,
// link-local (169.254/16, fe80::/10), unspecified, multicast, private
// (10/8, 172.16/12, 192.168/16, fc00::/7, 100.64/10 CGNAT), reserved
// ranges, the cloud metadata addresses, and each of these in IPv4-mapped,
// IPv4-compatible, NAT64 (64:ff9b::/96) or 6to4 (2002::/16) form.
func DefaultBlocked(a netip.Addr) bool {
	a = a.WithZone("").Unmap()
	if v4, ok := embeddedIPv4(a); ok {
		return DefaultBlocked(v4) || a.IsUnspecified() || a.IsLoopback()
	}
	if a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() || !a.IsValid() {
		return true
	}
	if isMetadata(a) || isPrivate(a) {
		return true
	}
	for _, p := range reserved {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

var (
	compat4   = netip.MustParsePrefix("::/96")
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// embeddedIPv4 returns the IPv4 address an IPv6 address carries in the
// IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d) or 6to4
// (2002:AABB:CCDD::) form.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case compat4.Contains(a), nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

func isMetadata(a netip.Addr) bool {
	for _, m := range metadata {
		if a == m {
			return true
		}
	}
	return false
}

func isPrivate(a netip.Addr) bool {
	for _, p := range privateRanges {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// addrAllowed reports whether a route may be dialled at a. blocked is the
// gateway's blocklist; own holds the gateway's own interface addresses,
// which AllowPrivate never opens.
func addrAllowed(r *route, a netip.Addr, blocked func(netip.Addr) bool, own map[netip.Addr]bool) bool {
	a = a.WithZone("").Unmap()
	if !blocked(a) {
		return true
	}
	return r.AllowPrivate && isPrivate(a) && !isMetadata(a) && !own[a]
}

// checkAddrs checks every address a host resolved to and refuses the host
// if any of them is refused: a name with one private answer is not dialled
// at its public one either. The addresses returned are the ones to dial,
// in order.
func checkAddrs(r *route, addrs []netip.Addr, blocked func(netip.Addr) bool, own map[netip.Addr]bool) ([]netip.Addr, reason) {
	if len(addrs) == 0 {
		return nil, reasonResolve
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if !addrAllowed(r, a, blocked, own) {
			return nil, reasonBlockedAddress
		}
		out = append(out, a.WithZone("").Unmap())
	}
	return out, reasonGranted
}
