package middleware

import (
	"net/http"
	"strings"

	"github.com/tokenguard/tokenguard/internal/httpauth"
)

// challenges returns the WWW-Authenticate value for a denial, per RFC 6750
// §3 and RFC 9728 §5.1: a Bearer challenge with the realm, the error code
// and description when there is one, the required scopes for
// insufficient_scope, and resource_metadata when configured. A 503 carries
// no challenge: the credentials were not judged.
func (g *Guard) challenge(e *denial, scopes []string) string {
	if e.Status == http.StatusServiceUnavailable {
		return ""
	}
	params := make([]httpauth.Param, 0, 5)
	params = append(params, httpauth.Param{Name: "realm", Value: g.cfg.Realm})
	if e.Code != "" {
		params = append(params, httpauth.Param{Name: "error", Value: e.Code})
		if e.Description != "" {
			params = append(params, httpauth.Param{Name: "error_description", Value: e.Description})
		}
	}
	if e.Code == CodeInsufficientScope && len(scopes) > 0 {
		params = append(params, httpauth.Param{Name: "scope", Value: strings.Join(scopes, " ")})
	}
	if g.cfg.ResourceMetadataURL != "" {
		params = append(params, httpauth.Param{Name: "resource_metadata", Value: g.cfg.ResourceMetadataURL})
	}
	return httpauth.FormatChallenges([]httpauth.Challenge{{Scheme: "Bearer", Params: params}})
}

// writeError sends a denial: status, challenge, and a small JSON body that
// repeats the code and description (RFC 6750 leaves the body open; APIs
// like one they can parse). Nothing from the request is echoed.
func (g *Guard) writeError(w http.ResponseWriter, e *denial, scopes []string) {
	h := w.Header()
	if c := g.challenge(e, scopes); c != "" {
		h.Set("WWW-Authenticate", c)
	}
	if e.Status == http.StatusServiceUnavailable {
		h.Set("Retry-After", "5")
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
