package gateway_test

import (
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tokenguard/tokenguard/gateway"
)

var instrN = flag.Int("gwinstr.n", 0, "TestInstructionsGateway: requests to send (bench/gateway_instructions.sh)")

// TestInstructionsGateway sends -gwinstr.n requests without a token
// through the gateway's handler, in process, each answered 401: the
// gateway's own path (access record, tracing when the OTEL_* variables
// turn it on, concurrency limit, framing, hygiene, routing, the guard's
// denial) without network or upstream. bench/gateway_instructions.sh
// counts its instructions under callgrind; without the flag there is
// nothing to measure.
func TestInstructionsGateway(t *testing.T) {
	if *instrN == 0 {
		t.Skip("a measurement for bench/gateway_instructions.sh (-gwinstr.n)")
	}
	y := `listen: 127.0.0.1:0
upstream: http://127.0.0.1:9
audience: https://api.example.com
issuers:
  - issuer: https://as.example.com
    jwks_uri: http://127.0.0.1:9/jwks
routes:
  - pattern: "GET /orders/"
    scopes: [orders:read]
log_level: warn
`
	cfg, err := gateway.ParseConfig("instructions", []byte(y), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(cfg, gateway.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	h := g.Handler()
	req := httptest.NewRequest("GET", "/orders/1", nil)
	for range *instrN {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", w.Code)
		}
	}
	fmt.Printf("instructions: gateway n=%d done\n", *instrN)
}
