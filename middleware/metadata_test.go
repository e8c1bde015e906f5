package middleware

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestResourceMetadata pins the RFC 9728 document (golden files in
// ../testdata/metadata) and where it is served.
func TestResourceMetadata(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	other := newTestIssuer(t, "ES256", "k2")
	tests := []struct {
		name     string
		cfg      Config
		scopes   [][]string
		wantPath string
		wantURL  string // resource_metadata in challenges; "" none
	}{
		{
			name:     "api",
			cfg:      Config{Audience: testAudience, Issuers: []Issuer{is.config(), other.config()}, AdvertiseResourceMetadata: true},
			scopes:   [][]string{{"orders:read"}, {"orders:write", "orders:read"}, nil},
			wantPath: "/.well-known/oauth-protected-resource",
			wantURL:  "https://api.example.com/.well-known/oauth-protected-resource",
		},
		{
			name:     "mcp_dpop_required",
			cfg:      Config{Audience: "mcp-server", Resource: "https://example.com/mcp/", Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPRequired, Algorithms: []string{"ES256", "EdDSA"}}, AdvertiseResourceMetadata: true},
			scopes:   [][]string{{"tools:call"}},
			wantPath: "/.well-known/oauth-protected-resource/mcp/",
			wantURL:  "https://example.com/.well-known/oauth-protected-resource/mcp/",
		},
		{
			name:     "root_with_slash",
			cfg:      Config{Audience: "https://api.example.com/", Issuers: []Issuer{is.config()}, AdvertiseResourceMetadata: true},
			wantPath: "/.well-known/oauth-protected-resource",
			wantURL:  "https://api.example.com/.well-known/oauth-protected-resource",
		},
		{
			name:    "explicit_metadata_url",
			cfg:     Config{Audience: testAudience, Issuers: []Issuer{is.config()}, ResourceMetadataURL: "https://docs.example.com/rs.json"},
			scopes:  [][]string{{"a"}},
			wantURL: "https://docs.example.com/rs.json",
			// The document is still served at the derived path.
			wantPath: "/.well-known/oauth-protected-resource",
		},
		{
			// The default: the document can be served, but challenges
			// send no client to it unless the program says it is.
			name:     "not_advertised",
			cfg:      Config{Audience: testAudience, Issuers: []Issuer{is.config()}},
			scopes:   [][]string{{"a"}},
			wantPath: "/.well-known/oauth-protected-resource",
		},
		{
			// RFC 8705 certificate-bound tokens advertised (the
			// gateway's tls.client_certs: request).
			name:     "mtls_bound_tokens",
			cfg:      Config{Audience: testAudience, Issuers: []Issuer{is.config()}, TLSClientCertificateBoundAccessTokens: true, AdvertiseResourceMetadata: true},
			scopes:   [][]string{{"orders:read"}},
			wantPath: "/.well-known/oauth-protected-resource",
			wantURL:  "https://api.example.com/.well-known/oauth-protected-resource",
		},
		{
			name:   "no_resource_identifier",
			cfg:    Config{Audience: "orders-api", Issuers: []Issuer{is.config()}},
			scopes: [][]string{{"a"}},
		},
		{
			// Nothing to advertise: no resource_metadata, no document.
			name:   "advertised_without_resource_identifier",
			cfg:    Config{Audience: "orders-api", Issuers: []Issuer{is.config()}, AdvertiseResourceMetadata: true},
			scopes: [][]string{{"a"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuard(t, tt.cfg)
			for _, s := range tt.scopes {
				g.Require(s...)
			}
			if g.MetadataPath() != tt.wantPath {
				t.Errorf("MetadataPath() = %q, want %q", g.MetadataPath(), tt.wantPath)
			}
			rec := do(g.Require()(okHandler)) // no credentials: a bare 401 challenge
			if got := challengeParam(t, rec, "resource_metadata"); got != tt.wantURL {
				t.Errorf("resource_metadata = %q, want %q", got, tt.wantURL)
			}

			rec = httptest.NewRecorder()
			g.MetadataHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://api.example.com"+tt.wantPath, nil))
			if tt.wantPath == "" {
				if rec.Code != http.StatusNotFound {
					t.Fatalf("metadata without a resource identifier: %d", rec.Code)
				}
				return
			}
			if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("metadata: %d %q", rec.Code, rec.Header().Get("Content-Type"))
			}
			// Issuer URLs are random ports; name them stably.
			got := strings.ReplaceAll(rec.Body.String(), is.URL(), "https://as.example.com")
			got = strings.ReplaceAll(got, other.URL(), "https://as2.example.com")
			path := filepath.Join("..", "testdata", "metadata", tt.name+".golden")
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
				t.Errorf("metadata:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestMetadataHandlerMethods(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	h := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}}).MetadataHandler()
	for method, want := range map[string]int{"GET": 200, "HEAD": 200, "POST": 405, "DELETE": 405} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, "https://api.example.com/.well-known/oauth-protected-resource", nil))
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", method, rec.Code, want)
		}
		if method == "HEAD" && rec.Body.Len() != 0 {
			t.Error("HEAD has a body")
		}
	}
}

// challengeParam returns a parameter of the first challenge in rec.
func challengeParam(t *testing.T, rec *httptest.ResponseRecorder, name string) string {
	t.Helper()
	for _, scheme := range []string{"Bearer", "DPoP"} {
		if p := challengeFor(t, rec, scheme); p != nil {
			return p[name]
		}
	}
	t.Fatalf("no challenge in %q", rec.Header().Get("WWW-Authenticate"))
	return ""
}
