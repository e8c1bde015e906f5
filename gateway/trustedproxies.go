package gateway

import (
	"fmt"
	"net/netip"
	"strings"
)

// trusted_proxies is the one place that decides whose forwarding headers
// the gateway believes: a peer (the TCP connection's remote address, never
// a header) inside one of these prefixes may describe a request it
// forwards. Today that is what forward_auth reads (X-Forwarded-Method,
// -Proto, -Host, -Uri; X-Original-Method, -URI) and client_cert_header
// (the client's certificate, RFC 9440); any other peer's copies are
// ignored or refused. In proxy mode a trusted peer's X-Forwarded-For,
// -Host (within allowed_hosts) and -Proto reach the upstream
// (believeForwarded); from any other peer they are replaced, and
// Forwarded is removed from everyone (newProxy).

// parseTrustedProxy parses one trusted_proxies entry: an address
// ("127.0.0.1", "::1"), which stands for itself alone, or a CIDR prefix
// ("10.0.0.0/8", "fd00::/8"). Host names are refused (the gateway makes no
// DNS lookups to decide whom it trusts), and so are zones, IPv4-mapped
// IPv6 forms (peers are compared unmapped, so such an entry could never
// match), a prefix with bits set beyond its length (a typo as often as
// not) and a prefix of length 0, which would trust every peer.
func parseTrustedProxy(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		switch {
		case err != nil:
			return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix (such as 10.0.0.0/8)", s)
		case p.Addr().Is4In6():
			return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 prefix: write it in IPv4 form", s)
		case p.Bits() == 0:
			return netip.Prefix{}, fmt.Errorf("%q would trust every peer: list the ingress's own addresses or network", s)
		case p != p.Masked():
			return netip.Prefix{}, fmt.Errorf("%q has bits set beyond its prefix length: write %s", s, p.Masked())
		}
		return p, nil
	}
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil:
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR prefix (such as 10.0.0.0/8; host names are not looked up)", s)
	case a.Zone() != "":
		return netip.Prefix{}, fmt.Errorf("%q: zones are not allowed", s)
	case a.Is4In6():
		return netip.Prefix{}, fmt.Errorf("%q is an IPv4-mapped IPv6 address: write it in IPv4 form", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// trustedPeer reports whether remoteAddr, an http.Request's RemoteAddr
// ("ip:port"), is inside one of trusted. An IPv4 peer reached over an
// IPv6 socket ("[::ffff:10.0.0.1]:port") is compared in IPv4 form; an
// address that does not parse (a Unix socket's) is never trusted.
func trustedPeer(trusted []netip.Prefix, remoteAddr string) bool {
	if len(trusted) == 0 {
		return false // nobody is trusted: no address to parse
	}
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	a := ap.Addr().Unmap().WithZone("")
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
