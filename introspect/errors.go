package introspect

import "errors"

// Errors returned by [Client.Introspect]. Each error wraps exactly one of
// them, so callers can classify with errors.Is.
var (
	// ErrInactive: the token is not active, or its introspection response
	// failed the iss, aud, exp or nbf check. HTTP: 401
	// error="invalid_token".
	ErrInactive = errors.New("introspect: token inactive")
	// ErrUnavailable: no verdict could be had from the authorization
	// server (network error, timeout, a status other than 200, a body
	// too large, the caller's context done, the client closed). HTTP 503.
	ErrUnavailable = errors.New("introspect: introspection unavailable")
	// ErrInvalidResponse: the server answered 200 with a body that is not
	// a valid introspection response. HTTP 503: nothing can be decided.
	ErrInvalidResponse = errors.New("introspect: invalid introspection response")
)
