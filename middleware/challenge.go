package middleware

import (
	"net/http"
	"strings"

	"github.com/tokenguard/tokenguard/internal/httpauth"
)

// setChallenges fills in e's WWW-Authenticate challenges, per RFC 6750
// §3, RFC 9449 §7.1 and RFC 9728 §5.1: one challenge per scheme the guard
// takes (Bearer unless DPoP is required; DPoP, with its algs=, when DPoP
// is enabled), each with the realm and, when the metadata document is
// advertised, resource_metadata. The error code and description, and the
// required scopes for insufficient_scope, go in the challenge of the
// scheme the request used. A 503 carries no challenge: the credentials
// were not judged; nor does a 429: they were good, the client must slow
// down.
func (g *Guard) setChallenges(e *Denial, scopes []string) {
	if e.Status == http.StatusServiceUnavailable || e.Status == http.StatusTooManyRequests {
		return
	}
	var cs [2]httpauth.Challenge
	n := 0
	if g.cfg.DPoP.Mode != DPoPRequired && !e.dpopOnly {
		cs[n] = httpauth.Challenge{Scheme: "Bearer", Params: g.challengeParams(e, !e.dpop, scopes)}
		n++
	}
	if g.cfg.DPoP.Mode != DPoPDisabled {
		params := g.challengeParams(e, e.dpop || e.dpopOnly || g.cfg.DPoP.Mode == DPoPRequired, scopes)
		params = append(params, httpauth.Param{Name: "algs", Value: g.algsParam})
		cs[n] = httpauth.Challenge{Scheme: "DPoP", Params: params}
		n++
	}
	e.Challenges = make([]string, n)
	for i := range n {
		e.Challenges[i] = cs[i].String()
	}
	e.challenge = strings.Join(e.Challenges, ", ")
}

// challengeParams returns one challenge's parameters; withError says
// whether the denial's error belongs in it.
func (g *Guard) challengeParams(e *Denial, withError bool, scopes []string) []httpauth.Param {
	params := make([]httpauth.Param, 0, 7)
	params = append(params, httpauth.Param{Name: "realm", Value: g.cfg.Realm})
	if withError && e.errCode != "" {
		params = append(params, httpauth.Param{Name: "error", Value: e.errCode})
		if e.Description != "" {
			params = append(params, httpauth.Param{Name: "error_description", Value: e.Description})
		}
		if e.errCode == CodeInsufficientScope && len(scopes) > 0 {
			params = append(params, httpauth.Param{Name: "scope", Value: strings.Join(scopes, " ")})
		}
		if e.acrValues != "" {
			params = append(params, httpauth.Param{Name: "acr_values", Value: e.acrValues})
		}
		if e.maxAge != "" {
			params = append(params, httpauth.Param{Name: "max_age", Value: e.maxAge})
		}
	}
	if g.metadataURL != "" {
		params = append(params, httpauth.Param{Name: "resource_metadata", Value: g.metadataURL})
	}
	return params
}

// writeDenial sends a denial. It sets the headers every rendering gets,
// WWW-Authenticate, DPoP-Nonce, Retry-After, Cache-Control: no-store and
// X-Content-Type-Options, and then hands over to Config.OnDenial, or
// writes the status and a small JSON body that repeats the code and
// description (RFC 6750 leaves the body open; APIs like one they can
// parse). Nothing from the request is echoed.
func (g *Guard) writeDenial(w http.ResponseWriter, r *http.Request, e *Denial) {
	h := w.Header()
	if e.challenge != "" {
		h.Set("WWW-Authenticate", e.challenge)
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
	if e.DPoPNonce != "" {
		h.Set("DPoP-Nonce", e.DPoPNonce)
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if g.cfg.OnDenial != nil {
		g.renderDenial(w, r, e)
		return
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	var b strings.Builder
	b.WriteString(`{"error":"`)
	b.WriteString(e.Code) // codes and descriptions are constants without quotes or backslashes
	b.WriteString(`"`)
	if e.Description != "" {
		b.WriteString(`,"error_description":"`)
		b.WriteString(e.Description)
		b.WriteString(`"`)
	}
	b.WriteString("}\n")
	_, _ = w.Write([]byte(b.String()))
}

// renderDenial runs Config.OnDenial, holding it to the denial: a status
// below 400 (a 200 from a framework's default, or none written at all)
// becomes e.Status, so a denial is never sent as a success.
func (g *Guard) renderDenial(w http.ResponseWriter, r *http.Request, e *Denial) {
	dw := &denialWriter{ResponseWriter: w, status: e.Status}
	g.cfg.OnDenial(dw, r, e)
	if !dw.wrote {
		dw.WriteHeader(e.Status)
	}
}

// denialWriter is the ResponseWriter Config.OnDenial writes to.
type denialWriter struct {
	http.ResponseWriter
	status int // the denial's status, sent in place of any below 400
	wrote  bool
}

func (w *denialWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	if code < 400 {
		code = w.status
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *denialWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(w.status)
	}
	return w.ResponseWriter.Write(p)
}

// FlushError sends the denial's status first if nothing was written, so
// that flushing (which http.ResponseController would otherwise do on the
// underlying writer, sending 200) cannot turn a denial into a success.
// There is deliberately no Unwrap: everything a renderer may do to the
// response goes through this writer.
func (w *denialWriter) FlushError() error {
	if !w.wrote {
		w.WriteHeader(w.status)
	}
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush is FlushError for http.Flusher.
func (w *denialWriter) Flush() { _ = w.FlushError() }
