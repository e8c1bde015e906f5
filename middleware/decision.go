package middleware

import "net/http"

// DecisionFunc observes the guard's decision on one request: reason is
// ReasonOK when the request is passed on to the protected handler, and the
// denial's Reason (the same value as the reason label of
// tokenguard_requests_total) otherwise. r is the request as the guard
// received it, before the Principal is added to its context.
//
// It is called synchronously, exactly once per request that reaches a
// handler made by Require or RequirePolicy, before the denial is written
// or the protected handler runs, and concurrently for concurrent
// requests. A handler made by Hygiene calls it only for the requests it
// refuses (ReasonInvalidPath, ReasonUpgradeRefused, ReasonMisdirected). It must be fast and must not write to the response. The
// token is not passed to it, but r still carries the Authorization and
// DPoP headers: never log r's headers. The usual use is an access log: carry a
// per-request record in r's context and fill in the reason there.
type DecisionFunc func(r *http.Request, reason Reason)

// decided reports a decision to Config.OnDecision. With no hook it costs a
// nil check: the hot path allocates nothing for it.
func (g *Guard) decided(r *http.Request, reason Reason) {
	if f := g.cfg.OnDecision; f != nil {
		f(r, reason)
	}
}
