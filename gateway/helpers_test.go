package gateway

import (
	"testing"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

// Short names for the shared fixtures, as these tests have always used them.
const (
	testAudience = testkit.Audience
	wait         = testkit.Wait
	validYAML    = testkit.ValidYAML
)

type lockedBuffer = testkit.LockedBuffer

var (
	envOf       = testkit.EnvOf
	gatewayYAML = testkit.GatewayYAML
)

func startIssuer(t testing.TB) *devissuer.Issuer { return testkit.StartIssuer(t) }

func mint(t testing.TB, is *devissuer.Issuer, scope string) string {
	t.Helper()
	return testkit.Mint(t, is, scope)
}

func edit(t testing.TB, old, new string) string {
	t.Helper()
	return testkit.Edit(t, old, new)
}
