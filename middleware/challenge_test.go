package middleware

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/httpauth"
)

var update = flag.Bool("update", false, "rewrite golden files in ../testdata/challenges")

// TestChallengeGolden pins the WWW-Authenticate value of every kind of
// denial. Review changes to testdata/challenges/*.golden in diffs; rewrite
// them with go test ./middleware -run TestChallengeGolden -update.
func TestChallengeGolden(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	plain := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, Realm: "orders-api"})
	withMeta := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{is.config()},
		ResourceMetadataURL: "https://api.example.com/.well-known/oauth-protected-resource",
	})
	expired := is.mint(t, "orders:read", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	readOnly := is.mint(t, "orders:read", nil)

	tests := []struct {
		name   string
		g      *Guard
		scopes []string
		auth   []string
	}{
		{name: "missing", g: plain},
		{name: "missing_resource_metadata", g: withMeta},
		{name: "unsupported_scheme", g: plain, auth: []string{"Basic dXNlcjpwYXNz"}},
		{name: "invalid_request_two_headers", g: plain, auth: []string{"Bearer a", "Bearer b"}},
		{name: "invalid_token_expired", g: plain, auth: []string{"Bearer " + expired}},
		{name: "invalid_token_resource_metadata", g: withMeta, auth: []string{"Bearer " + expired}},
		{name: "insufficient_scope", g: plain, scopes: []string{"orders:read", "orders:write"}, auth: []string{"Bearer " + readOnly}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(tt.g.Require(tt.scopes...)(okHandler), tt.auth...)
			got := rec.Header().Get("WWW-Authenticate") + "\n"
			path := filepath.Join("..", "testdata", "challenges", tt.name+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("WWW-Authenticate:\n got %s\nwant %s", got, want)
			}
			// Every golden value is a well-formed challenge list.
			if _, err := httpauth.ParseChallenges(got[:len(got)-1]); err != nil {
				t.Errorf("golden value does not parse: %v", err)
			}
		})
	}
}
