package gateway

import (
	"context"
	"net/http"
	"strings"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/internal/hygiene"
)

// Public routes (routes[].public: true) need no token: hygiene, the
// header rules and CORS apply as on any route, the guard does not run.
//
// Nothing that looks like a credential reaches the upstream from one:
// Authorization, DPoP and the token handler's cookies are removed, and no
// identity header is set (client copies are removed as on every route).
// An upstream behind the gateway may well read Authorization itself,
// trusting that the gateway verified it (decoding a JWT's payload for the
// user, say); on a public route nobody did, so it never sees one. A route
// that serves anonymous and signed-in callers alike is not public: give
// it no scopes instead, or two routes.

// checkPublicRoute reports the policy keys of routes[i], which is
// public: a public route takes no token, so any of them is a mistake.
func checkPublicRoute(r fileRoute, i int, pos positions, bad func(keyPos, string, ...any)) {
	for _, k := range []struct {
		key string
		set bool
	}{
		{"scopes", len(r.Scopes) > 0},
		{"any_scopes", len(r.AnyScopes) > 0},
		{"require_dpop", r.RequireDPoP},
		{"introspect", r.Introspect},
		{"introspection_max_age", r.IntrospectionMaxAge != ""},
		{"max_token_age", r.MaxTokenAge != ""},
		{"acr_values", len(r.ACRValues) > 0},
		{"max_auth_age", r.MaxAuthAge != ""},
	} {
		if k.set {
			bad(pos.at("routes", i, k.key), "a public route takes no token, so it cannot have %s: remove one or the other", k.key)
		}
	}
}

// publicRoute ends a public route's chain: the access log says
// decision=public; an auth subrequest's request is allowed (no identity
// headers); any other goes to proxy without its credentials.
func publicRoute(proxy http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A token in the query is refused here as on any route: the
		// upstream would act on a token nobody checked.
		if r.URL.RawQuery != "" && r.URL.Query().Has("access_token") {
			refuse(w, r, http.StatusBadRequest, "query_token", "invalid_request")
			return
		}
		if rec := recordFrom(r.Context()); rec != nil {
			rec.public = true
		}
		if isForwardAuth(r.Context()) {
			allowForwardAuth(w, r)
			return
		}
		proxy.ServeHTTP(w, withoutCredentials(r))
	})
}

// isPublic reports whether the request whose context this is matched a
// public route.
func isPublic(ctx context.Context) bool {
	rec := recordFrom(ctx)
	return rec != nil && rec.public
}

// withoutCredentials returns a copy of r without Authorization, DPoP (in
// any spelling an upstream could fold to them) and the token handler's
// session and login cookies. r itself is not changed.
func withoutCredentials(r *http.Request) *http.Request {
	out := r.Clone(r.Context())
	for k := range out.Header {
		if hygiene.FoldedEqual(k, "authorization") || hygiene.FoldedEqual(k, "dpop") {
			delete(out.Header, k)
		}
	}
	lines := out.Header.Values("Cookie")
	out.Header.Del("Cookie")
	for _, line := range lines {
		var kept []string
		for part := range strings.SplitSeq(line, ";") {
			part = strings.TrimSpace(part)
			name, _, _ := strings.Cut(part, "=")
			name = strings.TrimSpace(name) // Go's cookie parser trims it too
			if part == "" || name == bff.SessionCookie || strings.HasPrefix(name, bff.LoginCookiePrefix) {
				continue
			}
			kept = append(kept, part)
		}
		if len(kept) > 0 {
			out.Header.Add("Cookie", strings.Join(kept, "; "))
		}
	}
	return out
}
