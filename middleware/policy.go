package middleware

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// CodeInsufficientUserAuthentication is the RFC 9470 §3 error code of a
// step-up challenge.
const CodeInsufficientUserAuthentication = "insufficient_user_authentication"

// Policy is what a route demands of a verified token beyond its validity.
// Guard.Require(scopes...) is RequirePolicy(Policy{Scopes: scopes}).
type Policy struct {
	// Scopes must all be granted.
	Scopes []string

	// AnyOf, when not empty, also requires that every scope of at least
	// one of these sets be granted: {{"orders:read"}, {"orders:admin"}}
	// admits a token with either scope.
	AnyOf [][]string

	// RequireDPoP admits only DPoP-bound tokens presented with a proof on
	// this route, even where the guard also takes Bearer tokens (a
	// sensitive route under DPoPAllowed). The guard's DPoP mode must not
	// be DPoPDisabled.
	RequireDPoP bool

	// Introspect asks the issuer's introspection endpoint about JWTs too,
	// so a revoked token is refused within the introspection cache's max
	// age (Issuer.IntrospectionCacheMaxAge) rather than at its "exp": for
	// revocation-sensitive routes. Needs an issuer with an
	// IntrospectionEndpoint; the JWT must come from that issuer.
	Introspect bool

	// IntrospectionMaxAge, when positive, bounds this route's revocation
	// latency: an introspection answer (for an opaque token, or a JWT
	// under Introspect) older than this is not reused from the cache; the
	// issuer is asked again. Without it the latency is the issuer's
	// IntrospectionCacheMaxAge (60 s by default).
	IntrospectionMaxAge time.Duration

	// MaxTokenAge, when positive, refuses tokens issued ("iat") longer
	// ago than this, or without "iat": 401 invalid_token. It bounds how
	// long a stolen or revoked token stays useful on this route.
	MaxTokenAge time.Duration

	// ACRValues, when not empty, requires the token's "acr" (RFC 9470) to
	// be one of these; otherwise the answer is an RFC 9470 step-up
	// challenge: 401 error="insufficient_user_authentication" with
	// acr_values="…", telling the client to get a token with a stronger
	// authentication.
	ACRValues []string

	// MaxAuthAge, when positive, requires the user to have authenticated
	// ("auth_time") at most this long ago; otherwise the answer is a
	// step-up challenge with max_age=<seconds>.
	MaxAuthAge time.Duration
}

// policy is a checked, private copy of a Policy.
type policy struct {
	Policy
	acrParam string // ACRValues joined for the challenge
}

// Fixed descriptions for policy denials.
const (
	descDPoPRequired = "this resource requires a DPoP-bound token"
	descTokenTooOld  = "token issued too long ago for this resource"
	descStepUp       = "a stronger or more recent authentication is required"
)

// RequirePolicy is Require for routes that need more than a list of
// scopes. A Policy that cannot be enforced (RequireDPoP on a guard with
// DPoP disabled, a negative duration, an empty scope set in AnyOf, scope
// or acr values with spaces) is a programming error and panics, as
// http.ServeMux does for a bad pattern, so it is found when routes are
// set up rather than when requests arrive.
func (g *Guard) RequirePolicy(p Policy) func(http.Handler) http.Handler {
	pol := g.mustPolicy(p)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			in := request{ctx: r.Context(), hr: r}
			p, nonce, e := g.decide(&in, pol, time.Now())
			if e != nil {
				g.decided(r, e.Reason)
				g.logDenial(&in, e)
				g.writeDenial(w, r, e)
				return
			}
			g.decided(r, ReasonOK)
			if nonce != "" {
				w.Header().Set("DPoP-Nonce", nonce)
			}
			next.ServeHTTP(w, r.WithContext(withPrincipal(r.Context(), p)))
		})
	}
}

// CheckPolicy reports whether RequirePolicy would accept p on this guard,
// for callers (such as a configuration loader) that want an error rather
// than a panic.
func (g *Guard) CheckPolicy(p Policy) error {
	_, err := g.checkPolicy(p)
	return err
}

func (g *Guard) checkPolicy(p Policy) (*policy, error) {
	bad := func(format string, args ...any) (*policy, error) {
		return nil, fmt.Errorf("middleware: policy: "+format, args...)
	}
	if p.RequireDPoP && g.cfg.DPoP.Mode == DPoPDisabled {
		return bad("RequireDPoP on a guard whose DPoP mode is disabled")
	}
	if (p.Introspect || p.IntrospectionMaxAge != 0) && g.introIss == nil {
		return bad("Introspect or IntrospectionMaxAge on a guard with no introspecting issuer")
	}
	if p.IntrospectionMaxAge < 0 {
		return bad("durations must not be negative")
	}
	if p.MaxTokenAge < 0 || p.MaxAuthAge < 0 {
		return bad("durations must not be negative")
	}
	if p.MaxAuthAge > 0 && p.MaxAuthAge%time.Second != 0 {
		return bad("MaxAuthAge must be whole seconds (it is sent as max_age)")
	}
	for _, s := range p.Scopes {
		if !scopeOK(s) {
			return bad("scope %q is empty or has spaces or quotes", s)
		}
	}
	for i, set := range p.AnyOf {
		if len(set) == 0 {
			return bad("AnyOf[%d] is empty", i)
		}
		for _, s := range set {
			if !scopeOK(s) {
				return bad("AnyOf[%d]: scope %q is empty or has spaces or quotes", i, s)
			}
		}
	}
	for _, a := range p.ACRValues {
		if !scopeOK(a) {
			return bad("acr value %q is empty or has spaces or quotes", a)
		}
	}
	pol := &policy{Policy: Policy{
		Scopes:              slices.Clone(p.Scopes),
		RequireDPoP:         p.RequireDPoP,
		Introspect:          p.Introspect,
		IntrospectionMaxAge: p.IntrospectionMaxAge,
		MaxTokenAge:         p.MaxTokenAge,
		ACRValues:           slices.Clone(p.ACRValues),
		MaxAuthAge:          p.MaxAuthAge,
	}}
	for _, set := range p.AnyOf {
		pol.AnyOf = append(pol.AnyOf, slices.Clone(set))
	}
	pol.acrParam = strings.Join(pol.ACRValues, " ")
	return pol, nil
}

// scopeOK reports whether s can be a scope or acr value in a challenge:
// not empty, without spaces, quotes or backslashes.
func scopeOK(s string) bool { return s != "" && !strings.ContainsAny(s, " \t\"\\") }

// enforce applies pol to a verified token, in order: DPoP, introspection,
// token age, step-up, scopes.
func (g *Guard) enforce(in *request, pol *policy, p *Principal, tok string) *Denial {
	mark := func(e *Denial) *Denial {
		e.iss, e.dpop = p.Issuer, p.JKT != ""
		return e
	}
	if pol.RequireDPoP && p.JKT == "" && !serverHeld(in.ctx) {
		e := mark(invalidToken(ReasonDPoPRequired, descDPoPRequired, nil))
		e.dpop, e.dpopOnly = true, true
		return e
	}
	if pol.Introspect || (pol.IntrospectionMaxAge > 0 && p.introspected) {
		// A revocation-sensitive route: the issuer must confirm the
		// token is still active, with an answer no older than
		// IntrospectionMaxAge (an opaque token was introspected already:
		// IntrospectWithin reuses that answer if it is fresh enough).
		// Only the introspecting issuer's own tokens are ever sent to it.
		if p.Issuer != g.introIss.cfg.Issuer {
			return mark(invalidToken(ReasonInactive, descInactive, errors.New("middleware: the token's issuer has no introspection endpoint")))
		}
		if _, e := g.introspect(in, tok, pol.IntrospectionMaxAge); e != nil {
			return mark(e)
		}
	}
	// The clock is read only for the policies that need it: on this VM
	// class a clock read is a measurable share of a cached request.
	var now time.Time
	if pol.MaxTokenAge > 0 || pol.MaxAuthAge > 0 {
		now = g.cfg.now()
	}
	if pol.MaxTokenAge > 0 && (p.IssuedAt.IsZero() || now.Sub(p.IssuedAt) > pol.MaxTokenAge+g.cfg.Leeway) {
		return mark(invalidToken(ReasonTokenTooOld, descTokenTooOld, nil))
	}
	var stepUp *Denial
	if len(pol.ACRValues) > 0 && !slices.Contains(pol.ACRValues, p.ACR) {
		stepUp = deny(http.StatusUnauthorized, CodeInsufficientUserAuthentication, ReasonStepUp, descStepUp, nil)
		stepUp.acrValues = pol.acrParam
	}
	if pol.MaxAuthAge > 0 && (p.AuthTime.IsZero() || now.Sub(p.AuthTime) > pol.MaxAuthAge+g.cfg.Leeway) {
		if stepUp == nil {
			stepUp = deny(http.StatusUnauthorized, CodeInsufficientUserAuthentication, ReasonStepUp, descStepUp, nil)
		}
		stepUp.maxAge = strconv.FormatInt(int64(pol.MaxAuthAge/time.Second), 10)
		stepUp.acrValues = pol.acrParam // RFC 9470 §3: repeat both requirements
	}
	if stepUp != nil {
		return mark(stepUp)
	}
	for _, s := range pol.Scopes {
		if !p.HasScope(s) {
			return mark(deny(http.StatusForbidden, CodeInsufficientScope, ReasonInsufficientScope, "token lacks a required scope", nil))
		}
	}
	if len(pol.AnyOf) > 0 && !slices.ContainsFunc(pol.AnyOf, func(set []string) bool {
		return !slices.ContainsFunc(set, func(s string) bool { return !p.HasScope(s) })
	}) {
		return mark(deny(http.StatusForbidden, CodeInsufficientScope, ReasonInsufficientScope, "token lacks a required scope", nil))
	}
	return nil
}

// challengeScopes is the scope= of an insufficient_scope challenge: the
// scopes always needed plus the first acceptable set.
func (pol *policy) challengeScopes() []string {
	if len(pol.AnyOf) == 0 {
		return pol.Scopes
	}
	out := slices.Clone(pol.Scopes)
	for _, s := range pol.AnyOf[0] {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
