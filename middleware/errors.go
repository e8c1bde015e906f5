package middleware

import (
	"errors"
	"net/http"
)

// RFC 6750 §3.1 and RFC 9449 §7.1 error codes sent in challenges.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeInvalidToken      = "invalid_token"
	CodeInsufficientScope = "insufficient_scope"
	CodeInvalidDPoPProof  = "invalid_dpop_proof"
	CodeUseDPoPNonce      = "use_dpop_nonce"
)

// Denial is the guard's refusal of a request. Check returns it as its
// error (find it with errors.As); Require and RequirePolicy send it as the
// response (Config.OnDenial renders it in the application's style); Hygiene
// refusals are Denials too.
//
// Status, Code, Description, Challenges and DPoPNonce are what the client
// is told. Description is one of a fixed set of short phrases and never
// contains token bytes or claim values. Err, returned by Unwrap, carries
// the detail for logs: never send it to a client. A Denial is built for
// one request; it may be changed by the code that renders it.
type Denial struct {
	// Status is the HTTP status: 400 (a malformed request), 401 (no
	// credential, an unsupported scheme, a bad token or proof, a nonce
	// needed, step-up, a client certificate missing, wrong or malformed
	// for a certificate-bound token: the last with invalid_request), 403 (a valid token that lacks a scope), 429 (a
	// DPoP key over its replay quota: Require sends Retry-After: 60) or
	// 503 (a dependency the decision needs is down: keys never loaded,
	// introspection or the replay store unreachable; Require sends
	// Retry-After: 5). Hygiene also refuses with 400 and 421. Other
	// transports map it: gRPC's Unauthenticated for 401 and so on.
	Status int

	// Code is the error code, as the JSON body's "error" carries it: the
	// RFC 6750, RFC 9449 or RFC 9470 code ("invalid_request",
	// "invalid_token", "insufficient_scope", "invalid_dpop_proof",
	// "use_dpop_nonce", "insufficient_user_authentication") when there
	// is one, else the Reason ("missing_token", "unsupported_scheme",
	// "keys_unavailable", …), which the challenge does not carry (RFC
	// 6750 §3.1: no error code for a request without credentials).
	Code string

	// Description is a fixed, token-free phrase for the client (the
	// challenge's error_description), or "".
	Description string

	// Reason is why the request was refused: the "reason" label of
	// tokenguard_requests_total and the "reason" log key.
	Reason Reason

	// Challenges are the WWW-Authenticate challenges to send, one per
	// scheme the guard takes: `Bearer realm="…", …` unless DPoP is
	// required, and `DPoP realm="…", …, algs="…"` when it is enabled, the
	// error in the challenge of the scheme the request used. The HTTP
	// handlers send them joined with ", " as one WWW-Authenticate value.
	// Empty for 429, 503 (the credentials were not judged) and Hygiene
	// refusals.
	Challenges []string

	// DPoPNonce, when not "", is a fresh server nonce (RFC 9449 §8) for
	// the client to put in its next proof: the HTTP handlers send it as
	// the DPoP-Nonce header. It comes with use_dpop_nonce.
	DPoPNonce string

	// Err is the internal cause, for logs; may be nil.
	Err error

	// errCode is the challenge's error= ("" for none); Code repeats it,
	// or holds the Reason when it is "".
	errCode string

	// challenge is Challenges joined, as the WWW-Authenticate header.
	challenge string

	// For logs only: the issuer, key id and algorithm involved, when
	// known. They may come from an unverified token, so they are
	// truncated before logging and never sent to the client.
	iss, kid, alg string

	// dpop marks a denial of a request that used the DPoP scheme: its
	// error goes in the DPoP challenge.
	dpop bool

	// dpopOnly: the route takes only DPoP, so no Bearer challenge.
	dpopOnly bool
	// acrValues and maxAge are RFC 9470 step-up challenge parameters.
	acrValues, maxAge string
}

// Error describes the denial for logs: the reason, the description and the
// internal cause. Send the client Code and Description (and the
// challenges), not Error.
func (e *Denial) Error() string {
	msg := "middleware: " + string(e.Reason)
	if e.Description != "" {
		msg += ": " + e.Description
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the internal cause.
func (e *Denial) Unwrap() error { return e.Err }

// Reason is why a request was denied. The set is closed: every value is a
// constant below, so it is safe as a metric label.
type Reason string

// The denial reasons, used as the "reason" label of
// tokenguard_requests_total and the "reason" log key.
const (
	ReasonOK                Reason = "ok"
	ReasonMissingToken      Reason = "missing_token"
	ReasonMalformedRequest  Reason = "malformed_request"
	ReasonUnsupportedScheme Reason = "unsupported_scheme"
	ReasonTokenTooLarge     Reason = "token_too_large"
	ReasonMalformedToken    Reason = "malformed_token"
	ReasonUnsupportedAlg    Reason = "unsupported_alg"
	ReasonInvalidType       Reason = "invalid_typ"
	ReasonUnknownIssuer     Reason = "unknown_issuer"
	ReasonUnknownKey        Reason = "unknown_kid"
	ReasonInvalidSignature  Reason = "invalid_signature"
	ReasonExpired           Reason = "expired"
	ReasonNotYetValid       Reason = "not_yet_valid"
	ReasonInvalidAudience   Reason = "invalid_audience"
	ReasonMissingClaim      Reason = "missing_claim"
	ReasonDPoPBound         Reason = "dpop_bound_token"
	ReasonInsufficientScope Reason = "insufficient_scope"
	ReasonKeysUnavailable   Reason = "keys_unavailable"

	ReasonInvalidProof           Reason = "invalid_dpop_proof"
	ReasonNotBound               Reason = "token_not_dpop_bound"
	ReasonKeyBinding             Reason = "dpop_key_mismatch"
	ReasonNonceRequired          Reason = "use_dpop_nonce"
	ReasonReplay                 Reason = "dpop_replay"
	ReasonReplayStoreFull        Reason = "replay_store_full"
	ReasonReplayStoreUnavailable Reason = "replay_store_unavailable"
	ReasonDPoPKeyQuota           Reason = "dpop_key_quota"

	ReasonDPoPRequired Reason = "dpop_required"
	ReasonTokenTooOld  Reason = "token_too_old"
	ReasonStepUp       Reason = "insufficient_user_authentication"

	ReasonInactive                 Reason = "token_inactive"
	ReasonIntrospectionUnavailable Reason = "introspection_unavailable"

	// Certificate-bound tokens (RFC 8705): the token names a client
	// certificate and the request presented none, or another one; or
	// the certificate report was malformed (ContextWithClientCertificate).
	ReasonCertificateRequired  Reason = "certificate_required"
	ReasonCertificateMismatch  Reason = "certificate_mismatch"
	ReasonMalformedCertificate Reason = "malformed_certificate"

	// Refusals by Guard.Hygiene, before any token is looked at.
	ReasonInvalidPath    Reason = "invalid_path"
	ReasonUpgradeRefused Reason = "upgrade_refused"
	ReasonMisdirected    Reason = "misdirected_request"
)

// allReasons lists every Reason, so metrics can be pre-created.
var allReasons = []Reason{
	ReasonOK, ReasonMissingToken, ReasonMalformedRequest, ReasonUnsupportedScheme,
	ReasonTokenTooLarge, ReasonMalformedToken, ReasonUnsupportedAlg, ReasonInvalidType,
	ReasonUnknownIssuer, ReasonUnknownKey, ReasonInvalidSignature, ReasonExpired,
	ReasonNotYetValid, ReasonInvalidAudience, ReasonMissingClaim, ReasonDPoPBound,
	ReasonInsufficientScope, ReasonKeysUnavailable,
	ReasonInvalidProof, ReasonNotBound, ReasonKeyBinding, ReasonNonceRequired,
	ReasonReplay, ReasonReplayStoreFull, ReasonReplayStoreUnavailable, ReasonDPoPKeyQuota,
	ReasonDPoPRequired, ReasonTokenTooOld, ReasonStepUp,
	ReasonInactive, ReasonIntrospectionUnavailable,
	ReasonCertificateRequired, ReasonCertificateMismatch, ReasonMalformedCertificate,
	ReasonInvalidPath, ReasonUpgradeRefused, ReasonMisdirected,
}

// errKeysUnavailable is the cause of a 503 when an issuer's keys never
// loaded.
var errKeysUnavailable = errors.New("middleware: signing keys not loaded")

// errIntrospectionNotDiscovered is the cause of a 503 for an opaque token
// while the issuer's introspection endpoint is still being discovered.
var errIntrospectionNotDiscovered = errors.New("middleware: introspection endpoint not discovered (yet)")

// deny makes a Denial; code is the challenge's error code, "" for none.
func deny(status int, code string, reason Reason, desc string, cause error) *Denial {
	e := &Denial{Status: status, Code: code, errCode: code, Description: desc, Reason: reason, Err: cause}
	if code == "" {
		e.Code = string(reason)
	}
	return e
}

func invalidToken(reason Reason, desc string, cause error) *Denial {
	return deny(http.StatusUnauthorized, CodeInvalidToken, reason, desc, cause)
}
