// Package netutil holds small network helpers shared by tokenguard's
// packages.
package netutil

import (
	"net/netip"
	"strings"
)

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
