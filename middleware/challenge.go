package middleware

import (
	"net/http"
	"strings"

	"github.com/tokenguard/tokenguard/internal/httpauth"
)

// challenge returns the WWW-Authenticate value for a denial, per RFC 6750
// §3, RFC 9449 §7.1 and RFC 9728 §5.1: one challenge per scheme the guard
// takes (Bearer unless DPoP is required; DPoP, with its algs=, when DPoP
// is enabled), each with the realm and resource_metadata when configured.
// The error code and description, and the required scopes for
// insufficient_scope, go in the challenge of the scheme the request used.
// A 503 carries no challenge: the credentials were not judged; nor does
// a 429: they were good, the client must slow down.
func (g *Guard) challenge(e *denial, scopes []string) string {
	if e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests {
		return ""
	}
	cs := make([]httpauth.Challenge, 0, 2)
	if g.cfg.DPoP.Mode != DPoPRequired && !e.dpopOnly {
		cs = append(cs, httpauth.Challenge{Scheme: "Bearer", Params: g.challengeParams(e, !e.dpop, scopes)})
	}
	if g.cfg.DPoP.Mode != DPoPDisabled {
		params := g.challengeParams(e, e.dpop || e.dpopOnly || g.cfg.DPoP.Mode == DPoPRequired, scopes)
		params = append(params, httpauth.Param{Name: "algs", Value: g.algsParam})
		cs = append(cs, httpauth.Challenge{Scheme: "DPoP", Params: params})
	}
	return httpauth.FormatChallenges(cs)
}

// challengeParams returns one challenge's parameters; withError says
// whether the denial's error belongs in it.
func (g *Guard) challengeParams(e *denial, withError bool, scopes []string) []httpauth.Param {
	params := make([]httpauth.Param, 0, 6)
	params = append(params, httpauth.Param{Name: "realm", Value: g.cfg.Realm})
	if withError && e.Code != "" {
		params = append(params, httpauth.Param{Name: "error", Value: e.Code})
		if e.Description != "" {
			params = append(params, httpauth.Param{Name: "error_description", Value: e.Description})
		}
		if e.Code == CodeInsufficientScope && len(scopes) > 0 {
			params = append(params, httpauth.Param{Name: "scope", Value: strings.Join(scopes, " ")})
		}
		if e.acrValues != "" {
			params = append(params, httpauth.Param{Name: "acr_values", Value: e.acrValues})
		}
		if e.maxAge != "" {
			params = append(params, httpauth.Param{Name: "max_age", Value: e.maxAge})
		}
	}
	if g.cfg.ResourceMetadataURL != "" {
		params = append(params, httpauth.Param{Name: "resource_metadata", Value: g.cfg.ResourceMetadataURL})
	}
	return params
}

// writeError sends a denial: status, challenge, and a small JSON body that
// repeats the code and description (RFC 6750 leaves the body open; APIs
// like one they can parse). Nothing from the request is echoed.
func (g *Guard) writeError(w http.ResponseWriter, e *denial, scopes []string) {
	h := w.Header()
	if c := g.challenge(e, scopes); c != "" {
		h.Set("WWW-Authenticate", c)
	}
	switch e.Status {
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", "5")
	case http.StatusTooManyRequests:
		// A key's quota window is at most a proof's lifetime (5 minutes
		// by default); a minute lets a client that slowed down back in
		// well before that, without hammering.
		h.Set("Retry-After", "60")
	}
	if e.nonce != "" {
		h.Set("DPoP-Nonce", e.nonce)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	var b strings.Builder
	b.WriteString(`{"error":"`)
	code := e.Code
	if code == "" {
		code = string(e.Reason)
	}
	b.WriteString(code) // codes and descriptions are constants without quotes or backslashes
	b.WriteString(`"`)
	if e.Description != "" {
		b.WriteString(`,"error_description":"`)
		b.WriteString(e.Description)
		b.WriteString(`"`)
	}
	b.WriteString("}\n")
	_, _ = w.Write([]byte(b.String()))
}
