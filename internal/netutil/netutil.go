// Package netutil holds small network helpers shared by tokenguard's
// packages.
package netutil

import (
	"net/netip"
	"net/url"
	"strings"
)

// AllowedScheme is tokenguard's scheme policy for every URL it fetches
// from or posts to (issuers, JWKS, metadata, introspection, and redirects
// on the way): https, or http to a loopback host, or http anywhere when
// insecure is set.
func AllowedScheme(u *url.URL, insecure bool) bool {
	switch u.Scheme {
	case "https":
		return true
	case "http":
		return insecure || IsLoopbackHost(u.Hostname())
	}
	return false
}

// IsLoopbackHost reports whether host (a URL's Hostname(), without port or
// brackets) names the local machine: "localhost", an address in 127.0.0.0/8,
// or ::1. Loopback is the one place plain http is accepted by default:
// tests, the demo and sidecar deployments never leave the machine.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return false
	}
	return a.Unmap().IsLoopback()
}
