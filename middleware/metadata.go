package middleware

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"sync"
)

// WellKnownResourceMetadata is the well-known path suffix of RFC 9728
// protected resource metadata (§3).
const WellKnownResourceMetadata = "/.well-known/oauth-protected-resource"

// resourceMeta is the guard's RFC 9728 state: the resource identifier, where
// its metadata is served, and the scopes routes have asked for.
type resourceMeta struct {
	resource string // "" when Config.Resource/Audience is not a URL
	url      string // the metadata document's URL; "" when resource is ""
	path     string // url's path, to mount MetadataHandler at

	mu     sync.Mutex
	scopes []string // sorted, from every Require call
}

// metadataURL returns the RFC 9728 §3.1 metadata URL of a resource
// identifier: the well-known path inserted between the host and the
// resource's path.
func metadataURL(resource string) (string, string) {
	u, err := url.Parse(resource)
	if err != nil {
		return "", ""
	}
	// RFC 9728 §3.1: the well-known path goes between the host and the
	// resource's path; a lone "/" after the host is dropped, any other
	// path is kept as it is.
	p := u.EscapedPath()
	if p == "/" {
		p = ""
	}
	path := WellKnownResourceMetadata + p
	return u.Scheme + "://" + u.Host + path, path
}

// addScopes records scopes a route requires, for scopes_supported.
func (m *resourceMeta) addScopes(scopes []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range scopes {
		if i, found := slices.BinarySearch(m.scopes, s); !found {
			m.scopes = slices.Insert(m.scopes, i, s)
		}
	}
}

// ResourceMetadata is the RFC 9728 §2 document the guard publishes.
type ResourceMetadata struct {
	Resource                      string   `json:"resource"`
	AuthorizationServers          []string `json:"authorization_servers"`
	ScopesSupported               []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported        []string `json:"bearer_methods_supported"`
	DPoPSigningAlgValuesSupported []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPBoundAccessTokensRequired bool     `json:"dpop_bound_access_tokens_required"`
	// TLSClientCertificateBoundAccessTokens is RFC 9728's
	// tls_client_certificate_bound_access_tokens (RFC 8705 tokens),
	// omitted when false (its default).
	TLSClientCertificateBoundAccessTokens bool `json:"tls_client_certificate_bound_access_tokens,omitempty"`
}

// ResourceMetadata returns the guard's RFC 9728 protected resource
// metadata: the resource identifier (Config.Resource, else Config.Audience),
// the configured issuers as authorization servers, the scopes every route
// registered with Require has asked for so far, the bearer method
// ("header": tokens are taken from the Authorization header only), the
// DPoP algorithms and requirement, and whether certificate-bound tokens
// are supported (Config.TLSClientCertificateBoundAccessTokens). ok is false when the resource
// identifier is not an absolute URL, as RFC 9728 §1.2 requires.
func (g *Guard) ResourceMetadata() (md ResourceMetadata, ok bool) {
	if g.meta.resource == "" {
		return ResourceMetadata{}, false
	}
	md = ResourceMetadata{
		Resource:                              g.meta.resource,
		BearerMethodsSupported:                []string{"header"},
		TLSClientCertificateBoundAccessTokens: g.cfg.TLSClientCertificateBoundAccessTokens,
	}
	for _, is := range g.order {
		md.AuthorizationServers = append(md.AuthorizationServers, is.cfg.Issuer)
	}
	g.meta.mu.Lock()
	md.ScopesSupported = slices.Clone(g.meta.scopes)
	g.meta.mu.Unlock()
	if g.proofs != nil {
		md.DPoPSigningAlgValuesSupported = g.proofs.Algorithms()
		md.DPoPBoundAccessTokensRequired = g.cfg.DPoP.Mode == DPoPRequired
	}
	return md, true
}

// MetadataPath is the path to mount MetadataHandler at: RFC 9728's
// well-known path followed by the resource identifier's path, such as
// "/.well-known/oauth-protected-resource" for "https://api.example.com" or
// "/.well-known/oauth-protected-resource/mcp" for
// "https://example.com/mcp". It is "" when the resource identifier is not
// a URL.
func (g *Guard) MetadataPath() string { return g.meta.path }

// MetadataHandler serves the guard's RFC 9728 protected resource metadata
// as JSON to GET and HEAD requests. Mount it, unguarded, at MetadataPath,
// and set Config.AdvertiseResourceMetadata so that every challenge points
// clients to it with resource_metadata= (RFC 9728 §5.1):
//
//	mux.Handle("GET "+guard.MetadataPath(), guard.MetadataHandler())
//
// MCP clients and other modern OAuth clients use it to find the
// authorization server. When the resource identifier is not a URL it
// answers 404.
func (g *Guard) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		md, ok := g.ResourceMetadata()
		if !ok {
			http.Error(w, "no protected resource metadata: the resource identifier is not a URL", http.StatusNotFound)
			return
		}
		body, err := json.MarshalIndent(md, "", "  ")
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=300")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			_, _ = w.Write(append(body, '\n'))
		}
	})
}
