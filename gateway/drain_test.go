package gateway

import (
	"net"
	"net/http"
	"testing"
	"time"
)

// TestGatewayDrainDelay: after SIGTERM, /readyz is 503 at once while the
// proxy keeps serving for drain_delay; then the listener closes and the
// process exits.
func TestGatewayDrainDelay(t *testing.T) {
	is := startIssuer(t)
	up := startUpstream(t)
	g := runGateway(t, gatewayYAML(is.URL(), is.URL()+"/jwks", up.URL, "drain_delay: 1s\nshutdown_timeout: 1s\n"))
	tok := mint(t, is, "orders:read")
	start := time.Now()
	g.stop()
	waitFor(t, func() bool {
		resp, _ := do(t, "GET", g.metric+"/readyz", "", nil)
		return resp.StatusCode == http.StatusServiceUnavailable
	}, "/readyz to report 503")
	// Still serving: a load balancer that has not noticed yet loses nothing.
	if resp, body := do(t, "GET", g.proxy+"/orders/1", tok, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("during drain_delay: %d %q", resp.StatusCode, body)
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Skip("machine too slow to observe the delay window")
	}
	select {
	case err := <-g.done:
		g.done <- err
		if d := time.Since(start); d < time.Second {
			t.Errorf("exited after %v, before drain_delay", d)
		}
	case <-time.After(wait):
		t.Fatal("did not exit after drain_delay")
	}
	if c, err := net.DialTimeout("tcp", g.gw.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts connections after shutdown")
	}
}
