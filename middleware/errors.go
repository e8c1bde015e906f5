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

// denial is a refusal as the client sees it, plus the cause the operator
// logs.
// Status, Code and Description go on the wire; Description is one of a
// fixed set of short phrases and never contains token bytes or claim
// values. Err, reachable with errors.Unwrap, carries the detail for logs.
type denial struct {
	Status      int    // HTTP status: 400, 401, 403 or 503
	Code        string // RFC 6750 error code; "" for a plain challenge
	Description string // fixed, token-free phrase
	Reason      Reason // metric label and log key
	Err         error  // internal cause; may be nil

	// For logs only: the issuer, key id and algorithm involved, when
	// known. They may come from an unverified token, so they are
	// truncated before logging and never sent to the client.
	iss, kid, alg string

	// dpop marks a denial of a request that used the DPoP scheme: its
	// error goes in the DPoP challenge. nonce, when set, is sent as
	// DPoP-Nonce.
	dpop  bool
	nonce string

	// dpopOnly: the route takes only DPoP, so no Bearer challenge.
	dpopOnly bool
	// acrValues and maxAge are RFC 9470 step-up challenge parameters.
	acrValues, maxAge string
}

// Error describes the denial for logs: the reason, the description and the
// internal cause.
func (e *denial) Error() string {
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
func (e *denial) Unwrap() error { return e.Err }

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
	ReasonInvalidPath, ReasonUpgradeRefused, ReasonMisdirected,
}

// errKeysUnavailable is the cause of a 503 when an issuer's keys never
// loaded.
var errKeysUnavailable = errors.New("middleware: signing keys not loaded")

// errIntrospectionNotDiscovered is the cause of a 503 for an opaque token
// while the issuer's introspection endpoint is still being discovered.
var errIntrospectionNotDiscovered = errors.New("middleware: introspection endpoint not discovered (yet)")

func deny(status int, code string, reason Reason, desc string, cause error) *denial {
	return &denial{Status: status, Code: code, Description: desc, Reason: reason, Err: cause}
}

func invalidToken(reason Reason, desc string, cause error) *denial {
	return deny(http.StatusUnauthorized, CodeInvalidToken, reason, desc, cause)
}
