package spec

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/pipit-dev/pipit/api/v1alpha1"
)

// TrustedProxy parses one entry of spec.service.trustedProxies: an IP
// address, which stands for itself (a /32 or /128 prefix), or a CIDR
// prefix. The prefix comes back in one canonical form, so that entries
// meaning the same peers compare equal: host bits cleared (10.0.0.1/8 is
// 10.0.0.0/8), and an IPv4-mapped IPv6 entry (::ffff:10.0.0.1) turned
// into the IPv4 one, the form in which such peers' addresses arrive.
func TrustedProxy(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if !strings.Contains(s, "/") {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil && a.Zone() != "" {
			// A zone names an interface of this host, not a peer.
			return netip.Prefix{}, fmt.Errorf("%q has an IPv6 zone; write the address without %%%s", clip(s), clip(a.Zone()))
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix, such as 10.0.0.7 or 10.0.0.0/8", clip(s))
	}
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

// listener checks the settings of the service's listen address.
func (v *validator) listener(p string, s *v1alpha1.ServiceSpec) {
	for i, e := range s.TrustedProxies {
		if _, err := TrustedProxy(e); err != nil {
			v.add(fmt.Sprintf("%s.trustedProxies[%d]", p, i), "%s", err)
		}
	}
	if l := s.Limits; l != nil {
		v.positiveCount(p+".limits.maxConnections", l.MaxConnections)
		v.positiveCount(p+".limits.maxConnectionsPerClient", l.MaxConnectionsPerClient)
		if all, each := l.MaxConnections, l.MaxConnectionsPerClient; all != nil && each != nil && *all > 0 && *each > *all {
			v.add(p+".limits.maxConnectionsPerClient", "is %d, more than maxConnections (%d): no client can reach it; the bound per client is at most the bound of all", *each, *all)
		}
	}
}

// positiveCount reports a count that is set but not above zero.
func (v *validator) positiveCount(field string, n *int32) {
	if n != nil && *n <= 0 {
		v.add(field, "must be positive, not %d", *n)
	}
}
