package loadkit

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// GatewaySetup is what the gateway's configuration refers to.
type GatewaySetup struct {
	Listen, MetricsListen string // 127.0.0.1:port
	Upstream              string // http://127.0.0.1:port
	Issuer                string // http://127.0.0.1:port
}

// Gateway configuration constants.
const (
	GatewayAudience      = "https://api.load.test"
	GatewayStartup       = 30 * time.Second // the gateway's /readyz answers 200 (it fetches the JWKS first)
	gatewayStartAttempts = 3                // a free port can be taken between probing and binding
)

// GatewayConfig renders the gateway's YAML configuration: DPoP allowed
// with the in-memory replay store, one route (GET /orders/, scope
// RouteScope), token cache on (the default).
func GatewayConfig(s GatewaySetup) string {
	return fmt.Sprintf(`# Written by the bench's load generator for one run.
listen: %[1]s
metrics_listen: %[2]s
upstream: %[3]s
public_url: http://%[1]s
audience: %[4]s
issuers:
  - issuer: %[5]s
    jwks_uri: %[5]s/jwks
dpop:
  mode: allowed
  replay_store: memory
routes:
  - pattern: "GET /orders/"
    scopes: [%[6]s]
log_level: warn
startup_wait: 10s
shutdown_timeout: 2s
`, s.Listen, s.MetricsListen, s.Upstream, GatewayAudience, s.Issuer, RouteScope)
}

// StartGateway writes the gateway's configuration in dir, starts bin on it
// and waits until its /readyz answers 200. It returns the gateway's base
// URL (its public_url).
func StartGateway(ctx context.Context, bin, dir, upstream, issuer string) (*Child, string, error) {
	var lastErr error
	for range gatewayStartAttempts {
		listen, err := FreeAddr()
		if err != nil {
			return nil, "", err
		}
		metrics, err := FreeAddr()
		if err != nil {
			return nil, "", err
		}
		cfgPath := filepath.Join(dir, "gateway.yaml")
		cfg := GatewayConfig(GatewaySetup{Listen: listen, MetricsListen: metrics, Upstream: upstream, Issuer: issuer})
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			return nil, "", err
		}
		c, _, err := StartChild("gateway", bin, "-config", cfgPath)
		if err != nil {
			return nil, "", err
		}
		err = WaitHTTP(ctx, c, "http://"+metrics+"/readyz", GatewayStartup, func(s int) bool { return s == http.StatusOK })
		if err == nil {
			return c, "http://" + listen, nil
		}
		c.Stop()
		lastErr = err
		if !strings.Contains(c.Out.String(), "address already in use") {
			break
		}
	}
	return nil, "", lastErr
}

// StartIssuer serves a development issuer (ES256, key id kid, audience
// GatewayAudience) on 127.0.0.1 from this process. Its JWKS says
// max-age=86400: keys are fetched at a gateway's start, not during the
// run. wrap, if not nil, wraps the issuer's handler (to serve more
// documents); it gets the issuer's URL.
func StartIssuer(kid string, wrap func(url string, h http.Handler) http.Handler) (url string, stop func(), _ *devissuer.Issuer, _ error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	url = "http://" + ln.Addr().String()
	key, err := devissuer.GenerateKey("ES256", kid)
	if err != nil {
		ln.Close()
		return "", nil, nil, err
	}
	is := devissuer.New(url, GatewayAudience, key)
	is.SetJWKSHeader("Cache-Control", "max-age=86400")
	var h http.Handler = is.Handler()
	if wrap != nil {
		h = wrap(url, h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: HelperReadHeaderTimeout}
	go func() { _ = srv.Serve(ln) }()
	return url, func() { srv.Close() }, is, nil
}
