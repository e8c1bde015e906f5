package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestParseConfigProductionKeys covers the keys for JWKS refresh, the
// upstream, concurrency and draining: values, defaults, and errors with
// their lines. validYAML has 17 lines, so an appended key is on line 18.
func TestParseConfigProductionKeys(t *testing.T) {
	type got struct {
		MinRefresh, MaxRefresh, RateLimit, UpstreamTimeout, DialTimeout, Drain time.Duration
		MaxConcurrent                                                          int
	}
	defaults := got{UpstreamTimeout: 30 * time.Second, DialTimeout: 5 * time.Second, MaxConcurrent: 4096}
	tests := []struct {
		name, extra string
		want        got    // with defaults filled
		err         string // substring of the error
	}{
		{"defaults", "", defaults, ""},
		{"all set", "jwks_min_refresh_interval: 1s\njwks_max_refresh_interval: 1h\njwks_refresh_rate_limit: 1s\nupstream_timeout: 2m\nupstream_dial_timeout: 1s\nmax_concurrent_requests: 10\ndrain_delay: 5s\n",
			got{time.Second, time.Hour, time.Second, 2 * time.Minute, time.Second, 5 * time.Second, 10}, ""},
		{"max_concurrent_requests 0 is the default", "max_concurrent_requests: 0\n", defaults, ""},
		{"max_concurrent_requests -1 is no limit", "max_concurrent_requests: -1\n", func() got { g := defaults; g.MaxConcurrent = -1; return g }(), ""},
		{"max_concurrent_requests -2", "max_concurrent_requests: -2\n", got{}, "line 18: max_concurrent_requests: must be a positive number"},
		{"max_concurrent_requests text", "max_concurrent_requests: lots\n", got{}, "line 18: cannot unmarshal"},
		{"refresh below 1s", "jwks_min_refresh_interval: 500ms\n", got{}, "line 18: jwks_min_refresh_interval: must be at least 1s"},
		{"rate limit below 1s", "jwks_refresh_rate_limit: 1ms\n", got{}, "line 18: jwks_refresh_rate_limit: must be at least 1s"},
		{"negative refresh", "jwks_max_refresh_interval: -1m\n", got{}, "line 18: jwks_max_refresh_interval: must not be negative"},
		{"nonsense refresh", "jwks_max_refresh_interval: often\n", got{}, "line 18: jwks_max_refresh_interval: \"often\" is not a duration"},
		{"min above max", "jwks_min_refresh_interval: 2h\njwks_max_refresh_interval: 1h\n", got{}, "line 18: jwks_min_refresh_interval: 2h0m0s exceeds jwks_max_refresh_interval"},
		{"zero upstream timeout", "upstream_timeout: 0s\n", got{}, "line 18: upstream_timeout: must be more than zero"},
		{"negative dial timeout", "upstream_dial_timeout: -5s\n", got{}, "line 18: upstream_dial_timeout: must not be negative"},
		{"negative drain", "drain_delay: -1s\n", got{}, "line 18: drain_delay: must not be negative"},
		{"typo", "upstream_timout: 1s\n", got{}, `line 18: upstream_timout: unknown key (did you mean "upstream_timeout"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfig("t.yaml", []byte(validYAML+tt.extra))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			g := got{c.JWKSMinRefreshInterval, c.JWKSMaxRefreshInterval, c.JWKSRefreshRateLimit, c.UpstreamTimeout, c.UpstreamDialTimeout, c.DrainDelay, c.MaxConcurrentRequests}
			if diff := cmp.Diff(tt.want, g); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			mc := c.guardConfig(nil, nil)
			if mc.JWKSMinRefreshInterval != g.MinRefresh || mc.JWKSMaxRefreshInterval != g.MaxRefresh || mc.JWKSRefreshRateLimit != g.RateLimit {
				t.Errorf("middleware.Config JWKS settings %v %v %v", mc.JWKSMinRefreshInterval, mc.JWKSMaxRefreshInterval, mc.JWKSRefreshRateLimit)
			}
			if mc.OnDecision == nil {
				t.Error("no OnDecision hook: the access log would have no reasons")
			}
		})
	}
}

func TestParseConfigIntrospectionCacheMaxAge(t *testing.T) {
	withIntrospection := edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n",
		"    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: http://127.0.0.1:7000/introspect\n    client_id: rs\n    introspection_cache_max_age: 15s\n")
	c, err := parseConfig("t.yaml", []byte(withIntrospection))
	if err != nil {
		t.Fatal(err)
	}
	if got := c.guardConfig(nil, nil).Issuers[0].IntrospectionCacheMaxAge; got != 15*time.Second {
		t.Errorf("IntrospectionCacheMaxAge %v, want 15s", got)
	}
	for _, tt := range []struct{ yaml, want string }{
		{strings.Replace(withIntrospection, "15s", "0s", 1), "line 11: issuers[0].introspection_cache_max_age: must be more than zero"},
		{strings.Replace(withIntrospection, "15s", "-1s", 1), "line 11: issuers[0].introspection_cache_max_age: must be more than zero"},
		{strings.Replace(withIntrospection, "15s", "soon", 1), `line 11: issuers[0].introspection_cache_max_age: "soon" is not a duration`},
		{edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n", "    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_cache_max_age: 15s\n"),
			"line 9: issuers[0].introspection_cache_max_age: needs introspection_endpoint or client_id"},
	} {
		if _, err := parseConfig("t.yaml", []byte(tt.yaml)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want %q", err, tt.want)
		}
	}
}
