package middleware

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/dpopdigest"
	"github.com/tokenguard/tokenguard/internal/httpauth"
	"github.com/tokenguard/tokenguard/internal/jose"
	"github.com/tokenguard/tokenguard/internal/tokencache"
	"github.com/tokenguard/tokenguard/introspect"
	"github.com/tokenguard/tokenguard/jwks"
)

// Fixed, token-free descriptions sent in error_description.
const (
	descMultipleAuth    = "more than one Authorization header"
	descMalformedAuth   = "malformed Authorization header"
	descQueryToken      = "access tokens in the query string are not accepted"
	descTooLarge        = "token too large"
	descMalformed       = "malformed token"
	descUnsupportedAlg  = "unsupported signing algorithm"
	descType            = "not an access token"
	descUnknownIssuer   = "untrusted issuer"
	descUnknownKey      = "unknown signing key"
	descSignature       = "invalid signature"
	descExpired         = "token expired"
	descNotYetValid     = "token not yet valid"
	descAudience        = "token not intended for this resource"
	descMissingClaim    = "token lacks a required claim"
	descDPoPBound       = "DPoP-bound token presented as Bearer"
	descKeysUnavailable = "signing keys unavailable"

	descNotBound         = "token is not DPoP-bound"
	descKeyBinding       = "DPoP proof key does not match the token"
	descNoProof          = "missing DPoP proof"
	descManyProofs       = "more than one DPoP header"
	descHost             = "unexpected Host for a DPoP request"
	descProof            = "invalid DPoP proof"
	descReplay           = "DPoP proof already used"
	descNonce            = "DPoP nonce required"
	descStoreUnavailable = "DPoP replay check unavailable"
	descKeyQuota         = "too many DPoP proofs from this key; retry later"

	descInactive                 = "token is not active"
	descIntrospectionUnavailable = "token introspection unavailable"
)

// authenticate extracts and verifies the request's access token and, for
// the DPoP scheme, its proof. It returns the Principal, the token, a
// DPoP-Nonce to send with the response (usually "") and, for DPoP, the
// checked proof, which must still be recorded (recordProof) once the
// request is otherwise authorised; or the denial to send.
func (g *Guard) authenticate(in *request, start time.Time) (*Principal, string, string, *dpop.Proof, *Denial) {
	isDPoP, tok, e := g.extract(in)
	// A client certificate reported by a proxy, if any: a malformed
	// report refuses the request whatever its token, as the certificate a
	// bound token needs cannot be known.
	rep := clientCertReportFrom(in.ctx)
	if e == nil {
		e = refuseMalformedCertificate(rep)
	}
	if e != nil {
		// A refusal of DPoP credentials (too large) is stated in the DPoP
		// challenge, like every later refusal (RFC 9449 §7.1).
		e.dpop = isDPoP
		return nil, "", "", nil, e
	}
	p, e := g.verifyToken(in, tok, start)
	if e == nil {
		switch {
		case p.needsDPoP && !isDPoP:
			// A DPoP-bound token (RFC 9449 §7.1), or one bound in a way
			// the guard cannot check, is never accepted as a plain
			// bearer token, whatever the DPoP mode.
			e = invalidToken(ReasonDPoPBound, descDPoPBound, nil)
		case isDPoP && p.JKT == "":
			e = invalidToken(ReasonNotBound, descNotBound, nil)
		case p.CertificateThumbprint != "":
			// Bound to a certificate (RFC 8705 §3): on any scheme, and
			// after the cache, so on every request; for a DPoP token
			// also bound to a key, the proof is checked next.
			e = checkCertificate(in, rep, p)
		}
		if e != nil {
			e.iss = p.Issuer
		}
	}
	if e != nil {
		e.dpop = isDPoP
		return nil, "", "", nil, e
	}
	if !isDPoP {
		return p, tok, "", nil, nil
	}
	proof, nonce, e := g.verifyProof(in, tok, p)
	if e != nil {
		e.dpop, e.iss = true, p.Issuer
		return nil, "", "", nil, e
	}
	return p, tok, nonce, proof, nil
}

// verifyToken verifies an access token, through the verified-token cache
// when it is on.
func (g *Guard) verifyToken(in *request, tok string, start time.Time) (*Principal, *Denial) {
	if g.introIss != nil && strings.Count(tok, ".") != 2 {
		// RFC 7662 for what is not three-segment compact JWS; a JWS is
		// a JWT and is judged as one, never retried through
		// introspection.
		if e := checkTokenChars(tok); e != nil {
			return nil, e
		}
		return g.introspectToken(in, tok)
	}
	// The request's start time is the verification time with the real
	// clock: a clock read is a measurable share of a cached request.
	now := start
	if !g.cfg.realClock {
		now = g.cfg.now()
	}
	var key tokencache.Key
	if g.cache != nil {
		key = tokencache.KeyOf(tok)
		in.tokenSum, in.hasTokenSum = key, true
		if c, ok := g.cache.Get(key, now); ok {
			if set := c.iss.keys.Load(); set != nil {
				// The snapshot it was verified against needs no lookup:
				// snapshots never change once published.
				if snap := set.Snapshot(); snap != nil && (snap == c.snap || snap.Key(c.kid) == c.key) {
					return c.p, nil
				}
			}
			// The key that verified it has left the JWKS: forget the
			// token and verify it afresh (it will most likely fail).
			g.cache.Remove(key)
		}
	}
	// The token's characters are checked by jose.Parse: three segments of
	// strict base64url joined by dots use only b64token characters, so
	// a token it accepts is a b64token, and verifyJWT runs
	// checkTokenChars only on a token Parse refused.
	p, c, e := g.verifyJWT(in, tok, now)
	if e != nil {
		return nil, e
	}
	if g.cache != nil {
		g.cache.Add(key, c, c.expires, now)
	}
	return p, nil
}

// checkTokenChars refuses a token that is not an RFC 6750 b64token. Every
// token that was not found in the verified-token cache passes it or is
// refused: an opaque token before introspection, a JWT by jose.Parse (whose
// strict base64url segments use only b64token characters; checkTokenChars
// then names the refusal); a cached token matched one that passed,
// byte for byte (SHA-256).
func checkTokenChars(tok string) *Denial {
	if !httpauth.IsB64Token(tok) {
		return invalidToken(ReasonMalformedToken, descMalformed, httpauth.ErrInvalidToken)
	}
	return nil
}

// introspect asks the introspecting issuer about tok, accepting a cached
// answer no older than maxAge (0: any), and turns a refusal into the
// denial to send: 401 for an inactive token, 503 when no verdict could be
// had (endpoint not discovered, down, slow, 5xx, a redirect, nonsense).
func (g *Guard) introspect(in *request, tok string, maxAge time.Duration) (*introspect.Result, *Denial) {
	c := g.introspector.Load()
	if c == nil {
		return nil, deny(http.StatusServiceUnavailable, "", ReasonIntrospectionUnavailable, descIntrospectionUnavailable, errIntrospectionNotDiscovered)
	}
	res, err := c.IntrospectWithin(in.ctx, tok, maxAge)
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, introspect.ErrInactive):
		return nil, invalidToken(ReasonInactive, descInactive, err)
	}
	return nil, deny(http.StatusServiceUnavailable, "", ReasonIntrospectionUnavailable, descIntrospectionUnavailable, err)
}

// introspectToken asks the introspecting issuer about an opaque token.
func (g *Guard) introspectToken(in *request, tok string) (*Principal, *Denial) {
	res, e := g.introspect(in, tok, 0)
	if e != nil {
		e.iss = g.introIss.cfg.Issuer
		return nil, e
	}
	p := &Principal{
		Issuer:       g.introIss.cfg.Issuer,
		Subject:      res.Subject,
		ClientID:     res.ClientID,
		Scopes:       scopesOf(&jose.Claims{Scope: res.Scope}, false),
		Audience:     res.Audience,
		TokenID:      res.JTI,
		ExpiresAt:    res.ExpiresAt,
		IssuedAt:     res.IssuedAt,
		ACR:          res.ACR,
		AuthTime:     res.AuthTime,
		raw:          res.Raw,
		introspected: true,
	}
	// The answer's cnf binds the token as a JWT's would: cnf.jkt to a
	// DPoP key, cnf."x5t#S256" to a client certificate, both checked by
	// authenticate; a token declared a DPoP token is never a bearer
	// token either.
	declaredDPoP := strings.EqualFold(res.TokenType, "DPoP")
	if res.Bound || declaredDPoP {
		var x5t string
		if res.Bound {
			cnf, err := jose.ParseConfirmation(res.Raw)
			if err != nil {
				e := invalidToken(ReasonMalformedToken, descMalformed, err)
				e.iss = p.Issuer
				return nil, e
			}
			if cnf != nil {
				x5t = cnf.X5TS256
			}
		}
		p.setBinding(res.JKT, x5t, declaredDPoP)
	}
	return p, nil
}

// verifyProof checks the request's DPoP proof against the request, the
// access token and the key the token is bound to (RFC 9449 §4.3, §7.1),
// all but its single use: recordProof does that once the request is
// otherwise authorised. It returns the proof and the DPoP-Nonce to send
// with the response, if any.
func (g *Guard) verifyProof(in *request, tok string, p *Principal) (*dpop.Proof, string, *Denial) {
	proofValue, n := in.proof()
	switch n {
	case 0:
		return nil, "", deny(http.StatusUnauthorized, CodeInvalidDPoPProof, ReasonInvalidProof, descNoProof, nil)
	case 1:
	default:
		return nil, "", deny(http.StatusUnauthorized, CodeInvalidDPoPProof, ReasonInvalidProof, descManyProofs, nil)
	}
	target, ok := g.htu(in)
	if !ok {
		return nil, "", deny(http.StatusUnauthorized, CodeInvalidDPoPProof, ReasonInvalidProof, descHost, nil)
	}
	dr := dpop.Request{
		Proof:       proofValue,
		Method:      in.method(),
		URL:         target,
		AccessToken: tok,
		JKT:         p.JKT,
	}
	var proof *dpop.Proof
	var err error
	if in.hasTokenSum {
		proof, err = checkWithDigest(g.proofs, dr, in.tokenSum)
	} else {
		proof, err = g.proofs.Check(dr)
	}
	nonces := g.proofs.Nonces()
	switch {
	case err == nil:
		if proof.RenewNonce {
			return proof, nonces.Issue(g.cfg.now()), nil
		}
		return proof, "", nil
	case errors.Is(err, dpop.ErrTokenBinding):
		return nil, "", invalidToken(ReasonKeyBinding, descKeyBinding, err)
	case errors.Is(err, dpop.ErrUseNonce):
		e := deny(http.StatusUnauthorized, CodeUseDPoPNonce, ReasonNonceRequired, descNonce, err)
		e.DPoPNonce = nonces.Issue(g.cfg.now())
		return nil, "", e
	}
	return nil, "", deny(http.StatusUnauthorized, CodeInvalidDPoPProof, ReasonInvalidProof, descProof, err)
}

// recordProof records a checked proof as used, the last step before a
// DPoP request is served: a request the guard refuses for any other
// reason (scope, policy, step-up) never takes a replay-store entry, so a
// client cannot fill the store with requests that are refused anyway.
func (g *Guard) recordProof(in *request, proof *dpop.Proof, p *Principal) *Denial {
	err := g.proofs.Record(in.ctx, proof)
	var e *Denial
	switch {
	case err == nil:
		return nil
	case errors.Is(err, dpop.ErrReplay):
		g.metrics.dpopReplays.Inc()
		e = deny(http.StatusUnauthorized, CodeInvalidDPoPProof, ReasonReplay, descReplay, err)
	case errors.Is(err, dpop.ErrKeyQuota):
		e = deny(http.StatusTooManyRequests, "", ReasonDPoPKeyQuota, descKeyQuota, err)
	case errors.Is(err, dpop.ErrStoreFull):
		e = deny(http.StatusServiceUnavailable, "", ReasonReplayStoreFull, descStoreUnavailable, err)
	default:
		e = deny(http.StatusServiceUnavailable, "", ReasonReplayStoreUnavailable, descStoreUnavailable, err)
	}
	e.dpop, e.iss = true, p.Issuer
	return e
}

// requestURL is the URL the client addressed, as a proof's htu must name
// it: Config.PublicURL and the request path when PublicURL is set, else
// the request's own scheme and Host, which must be in
// DPoP.AllowedHosts when that is set. X-Forwarded-* headers are never
// consulted: any client can send them.
func (g *Guard) requestURL(r *http.Request) (string, bool) {
	path := r.URL.EscapedPath()
	if g.publicURL != "" {
		return g.publicURL + path, true
	}
	host := strings.ToLower(r.Host)
	if len(g.cfg.DPoP.AllowedHosts) > 0 && !containsString(g.cfg.DPoP.AllowedHosts, host) {
		return "", false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + host + path, true
}

// Credential schemes, as extract reports them.
const (
	schemeBearer = false
	schemeDPoP   = true
)

// extract implements RFC 6750 §2.1 and RFC 9449 §7.1: exactly one
// Authorization header with the Bearer or, when DPoP is enabled, the DPoP
// scheme (case-insensitive) and credentials, whose b64token syntax
// verifyToken checks (after the cache lookup). It reports whether the
// scheme is DPoP. Tokens in the query string (§2.3) are refused; tokens in a form
// body (§2.2) are not looked for, so such a request is simply
// unauthenticated.
func (g *Guard) extract(in *request) (bool, string, *Denial) {
	// A token in the query is refused even beside an Authorization
	// header (RFC 6750 §2: one method per request): an upstream that
	// reads the query would otherwise act on a token nobody checked.
	if in.queryToken() {
		return false, "", deny(http.StatusBadRequest, CodeInvalidRequest, ReasonMalformedRequest, descQueryToken, nil)
	}
	v, n := in.authorization()
	switch n {
	case 0:
		return false, "", deny(http.StatusUnauthorized, "", ReasonMissingToken, "", nil)
	case 1:
	default:
		return false, "", deny(http.StatusBadRequest, CodeInvalidRequest, ReasonMalformedRequest, descMultipleAuth, nil)
	}
	// "Bearer " is the longest scheme we take (with its space): anything
	// longer than that plus the limit is too large, whatever it holds.
	if len(v) > g.cfg.MaxTokenSize+len("Bearer ") {
		return false, "", invalidToken(ReasonTokenTooLarge, descTooLarge, nil)
	}
	// The token's characters are checked by verifyToken, after the cache
	// lookup: a cache hit is a token already checked byte for byte.
	scheme, tok, err := httpauth.SplitAuthorization(v)
	if err != nil {
		scheme = httpauth.SchemeOf(v) // whatever it is spelled in
	}
	var isDPoP bool
	switch {
	case httpauth.EqualFoldASCII(scheme, "Bearer") && (g.cfg.DPoP.Mode != DPoPRequired || serverHeld(in.ctx)):
		isDPoP = schemeBearer
	case httpauth.EqualFoldASCII(scheme, "DPoP") && g.cfg.DPoP.Mode != DPoPDisabled:
		isDPoP = schemeDPoP
	default:
		// A scheme we do not take, however it is written: another
		// scheme, look-alike letters from another script or fullwidth
		// forms (never folded to ours), an empty value, DPoP while it is
		// disabled and Bearer while it is required (RFC 9449 §7.1 leaves
		// that choice to the resource server). RFC 6750 §3: a plain
		// challenge tells the client which schemes we do take.
		return false, "", deny(http.StatusUnauthorized, "", ReasonUnsupportedScheme, "", nil)
	}
	if err != nil {
		// Our scheme, but not "scheme SP credentials".
		return isDPoP, "", deny(http.StatusBadRequest, CodeInvalidRequest, ReasonMalformedRequest, descMalformedAuth, err)
	}
	if len(tok) > g.cfg.MaxTokenSize {
		return isDPoP, "", invalidToken(ReasonTokenTooLarge, descTooLarge, nil)
	}
	return isDPoP, tok, nil
}

// verifyJWT checks a JWT access token per RFC 9068 §4 and RFC 8725: the
// signature with the issuer's key for the header's kid and an allow-listed
// alg bound to that key, the typ, and the iss, aud, exp, nbf and iat claims.
func (g *Guard) verifyJWT(in *request, tok string, now time.Time) (*Principal, *cachedToken, *Denial) {
	t, err := g.headers.Parse(tok)
	if err != nil {
		if e := checkTokenChars(tok); e != nil {
			return nil, nil, e // not even an RFC 6750 b64token
		}
		return nil, nil, invalidToken(ReasonMalformedToken, descMalformed, err)
	}
	alg, kid := t.Header.Alg, t.Header.Kid
	if !containsString(g.cfg.Algorithms, alg) {
		e := invalidToken(ReasonUnsupportedAlg, descUnsupportedAlg, nil)
		e.alg = alg
		return nil, nil, e
	}
	// The Principal, its audiences and scopes in one allocation.
	blk := new(principalBlock)
	cl := jose.Claims{AudienceRoom: blk.aud[:0:len(blk.aud)]}
	if err := jose.ParseClaims(t.Payload, &cl); err != nil {
		return nil, nil, invalidToken(ReasonMalformedToken, descMalformed, err)
	}
	// The unverified iss only chooses whose keys to try; nothing else is
	// believed before the signature checks out.
	is := g.issuer(cl.Issuer)
	if is == nil {
		e := invalidToken(ReasonUnknownIssuer, descUnknownIssuer, nil)
		e.iss = cl.Issuer
		return nil, nil, e
	}
	annotate := func(e *Denial) *Denial {
		e.iss, e.kid, e.alg = is.cfg.Issuer, kid, alg
		return e
	}
	if !typeOK(t.Header.Typ, is.cfg.AllowLegacyTyp) {
		return nil, nil, annotate(invalidToken(ReasonInvalidType, descType, nil))
	}
	set := is.keys.Load()
	if set == nil {
		// The issuer's metadata has not been discovered yet.
		return nil, nil, annotate(deny(http.StatusServiceUnavailable, "", ReasonKeysUnavailable, descKeysUnavailable, errKeysUnavailable))
	}
	key, err := set.Lookup(in.ctx, kid)
	switch {
	case errors.Is(err, jwks.ErrUnknownKID):
		return nil, nil, annotate(invalidToken(ReasonUnknownKey, descUnknownKey, err))
	case err != nil:
		// Never loaded, or the caller gave up while waiting: we cannot
		// decide, so fail closed.
		return nil, nil, annotate(deny(http.StatusServiceUnavailable, "", ReasonKeysUnavailable, descKeysUnavailable, errors.Join(errKeysUnavailable, err)))
	}
	if !key.Allows(alg) {
		return nil, nil, annotate(invalidToken(ReasonInvalidSignature, descSignature, errors.New("middleware: alg not allowed for this key")))
	}
	if err := t.Verify(alg, key.Public); err != nil {
		return nil, nil, annotate(invalidToken(ReasonInvalidSignature, descSignature, err))
	}
	// The issuer signed this header: the next token with the same one
	// (the issuer's next token with this key) need not read it again.
	g.headers.Keep(&t)

	// Claims, now that they are known to come from the issuer.
	if !cl.ExpiresAt.Valid {
		return nil, nil, annotate(invalidToken(ReasonMissingClaim, descMissingClaim, errors.New("middleware: no exp")))
	}
	exp := cl.ExpiresAt.Time()
	leeway := g.cfg.Leeway
	if !now.Before(exp.Add(leeway)) {
		return nil, nil, annotate(invalidToken(ReasonExpired, descExpired, nil))
	}
	late := now.Add(leeway)
	if cl.NotBefore.Valid && late.Before(cl.NotBefore.Time()) {
		return nil, nil, annotate(invalidToken(ReasonNotYetValid, descNotYetValid, errors.New("middleware: nbf in the future")))
	}
	var iat time.Time
	if cl.IssuedAt.Valid {
		iat = cl.IssuedAt.Time()
	}
	if cl.IssuedAt.Valid && late.Before(iat) {
		return nil, nil, annotate(invalidToken(ReasonNotYetValid, descNotYetValid, errors.New("middleware: iat in the future")))
	}
	if !containsString(cl.Audience, g.cfg.Audience) {
		return nil, nil, annotate(invalidToken(ReasonInvalidAudience, descAudience, nil))
	}
	if !isLegacyTyp(t.Header.Typ) {
		// RFC 9068 §2.2: an at+jwt carries all of these.
		if cl.Subject == "" || cl.ClientID == "" || !cl.IssuedAt.Valid || cl.JTI == "" {
			return nil, nil, annotate(invalidToken(ReasonMissingClaim, descMissingClaim, errors.New("middleware: RFC 9068 requires sub, client_id, iat and jti")))
		}
	}
	// Full slices (length = capacity): the Principal may be shared by
	// requests (the cache), and a handler's append must not write into
	// the block.
	scopes := appendScopes(blk.scopes[:0:len(blk.scopes)], &cl, is.cfg.ScpClaim)
	p := &blk.p
	*p = Principal{
		Issuer:    is.cfg.Issuer,
		Subject:   cl.Subject,
		ClientID:  cl.ClientID,
		Scopes:    scopes[:len(scopes):len(scopes)],
		Audience:  cl.Audience[:len(cl.Audience):len(cl.Audience)],
		TokenID:   cl.JTI,
		ExpiresAt: exp,
		raw:       t.Payload,
	}
	if cl.CNF != nil {
		p.setBinding(cl.CNF.JKT, cl.CNF.X5TS256, false)
	}
	p.IssuedAt = iat // the zero time when absent
	p.ACR = cl.ACR
	if cl.AuthTime.Valid {
		p.AuthTime = cl.AuthTime.Time()
	}
	if g.cache == nil {
		return p, nil, nil
	}
	c := &cachedToken{p: p, iss: is, kid: kid, key: key, expires: exp}
	if snap := set.Snapshot(); snap.Key(kid) == key {
		c.snap = snap
	}
	return p, c, nil
}

// issuer returns the configured issuer whose "iss" is exactly iss, or nil.
// With one issuer, the usual set-up, that is one comparison rather than
// hashing iss for the map.
func (g *Guard) issuer(iss string) *issuer {
	if len(g.order) == 1 {
		if is := g.order[0]; is.cfg.Issuer == iss {
			return is
		}
		return nil
	}
	return g.issuers[iss]
}

// typeOK implements RFC 9068 §4 step 1 (and RFC 8725 §3.11): the JOSE typ
// must be "at+jwt" or "application/at+jwt" (media types compare
// case-insensitively); legacy issuers may send "JWT" or nothing.
//
// The comparisons fold ASCII letters only: strings.EqualFold would also
// fold the Kelvin sign to "k" and the long s to "s", and none of these
// names has either letter, so the verdicts are the same.
func typeOK(typ string, legacy bool) bool {
	if typ == "at+jwt" || httpauth.EqualFoldASCII(typ, "at+jwt") || httpauth.EqualFoldASCII(typ, "application/at+jwt") {
		return true
	}
	return legacy && isLegacyTyp(typ)
}

func isLegacyTyp(typ string) bool {
	return typ == "" || httpauth.EqualFoldASCII(typ, "JWT") || httpauth.EqualFoldASCII(typ, "application/jwt")
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// principalBlock is a verified JWT's Principal with room for its
// audiences and scopes: the usual token needs no allocation but this one.
type principalBlock struct {
	p      Principal
	aud    [1]string
	scopes [4]string
}

// scopesOf collects the granted scopes from "scope" (a space-delimited
// string, or an array of scopes) and, when enabled, "scp", dropping
// duplicates.
func scopesOf(cl *jose.Claims, scp bool) []string { return appendScopes(nil, cl, scp) }

// appendScopes is scopesOf appending to out, which it uses (a zero-length
// slice with room) when the scopes fit.
func appendScopes(out []string, cl *jose.Claims, scp bool) []string {
	n := strings.Count(cl.Scope, " ") + 1 + len(cl.ScopeList)
	if scp {
		n += len(cl.Scp)
	}
	if n > cap(out) {
		out = make([]string, 0, n)
	}
	add := func(s string) {
		if s != "" && !containsString(out, s) {
			out = append(out, s)
		}
	}
	for s := range strings.FieldsSeq(cl.Scope) {
		add(s)
	}
	// Some issuers send "scope" as an array of scope tokens instead of
	// RFC 9068's space-delimited string; each element is one scope.
	for _, s := range cl.ScopeList {
		if !strings.ContainsAny(s, " \t") {
			add(s)
		}
	}
	if scp {
		for _, v := range cl.Scp {
			for s := range strings.FieldsSeq(v) {
				add(s)
			}
		}
	}
	return out
}

// checkWithDigest is g.proofs.Check with the access token's SHA-256,
// already computed as the token cache key, passed on for "ath"
// (internal/dpopdigest): the token is not hashed twice.
var checkWithDigest = dpopdigest.Check.(func(*dpop.Verifier, dpop.Request, [32]byte) (*dpop.Proof, error))
