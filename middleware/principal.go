package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Principal is who a verified access token speaks for. The guard puts one
// in the context of every request it lets through; handlers read it with
// PrincipalFrom.
//
// A Principal may be shared between requests that carry the same token (the
// verified-token cache hands out the same value), so treat it as read-only.
type Principal struct {
	// Issuer is the token's "iss": one of Config.Issuers.
	Issuer string
	// Subject is the token's "sub". For client-credentials tokens it is
	// usually the client itself.
	Subject string
	// ClientID is the OAuth client the token was issued to ("client_id").
	ClientID string
	// Scopes are the granted scopes, from "scope" (and "scp" when the
	// issuer sets Issuer.ScpClaim), in token order without duplicates.
	Scopes []string
	// Audience is the token's "aud".
	Audience []string
	// JKT is the RFC 7638 thumbprint of the DPoP key the token is bound to
	// ("cnf.jkt"), empty for bearer tokens.
	JKT string
	// CertificateThumbprint is the token's cnf."x5t#S256" (RFC 8705 §3.1):
	// the base64url SHA-256 thumbprint of the DER of the client
	// certificate the token is bound to; empty for a token not bound to
	// a certificate.
	CertificateThumbprint string
	// Confirmation says which proofs of possession the token demands and
	// the guard checked for this request: ConfirmationNone ("", a bearer
	// token), ConfirmationDPoP ("dpop": a DPoP proof of the key JKT
	// names), ConfirmationMTLS ("mtls": the client certificate
	// CertificateThumbprint names) or ConfirmationDPoPMTLS
	// ("dpop+mtls": both).
	Confirmation Confirmation
	// TokenID is the token's "jti", empty if absent.
	TokenID string
	// ExpiresAt is the token's "exp".
	ExpiresAt time.Time
	// IssuedAt is the token's "iat"; the zero time if absent.
	IssuedAt time.Time
	// ACR is the token's "acr" (RFC 9470), "" if absent.
	ACR string
	// AuthTime is the token's "auth_time", when the user authenticated;
	// the zero time if absent.
	AuthTime time.Time

	raw []byte // the verified JSON claims, for Claims
	// needsDPoP: the token is usable only with the DPoP scheme (it has
	// cnf.jkt, is declared a DPoP token, or has a cnf with no method the
	// guard can check); see setBinding.
	needsDPoP    bool
	introspected bool // the token was judged by RFC 7662 introspection
}

// HasScope reports whether the token grants scope s.
func (p *Principal) HasScope(s string) bool { return slices.Contains(p.Scopes, s) }

// Claims decodes the token's verified claims (the JWT payload, or the
// introspection response for an opaque token) into v, as
// json.Unmarshal does. Use it for claims Principal has no field for:
//
//	var c struct {
//		Tenant string `json:"tid"`
//	}
//	if err := p.Claims(&c); err != nil { ... }
func (p *Principal) Claims(v any) error {
	if p.raw == nil {
		return errors.New("middleware: principal carries no claims")
	}
	return json.Unmarshal(p.raw, v)
}

// principalKey is the context key for the Principal; unexported so only
// this package can set it.
type principalKey struct{}

// PrincipalFrom returns the Principal the guard (or ContextWithPrincipal)
// stored in ctx, and whether there was one. Outside a guarded handler it
// returns nil, false.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// ContextWithPrincipal returns a copy of ctx carrying p, which
// PrincipalFrom returns: the context Require gives a protected handler.
// Use it to hand Check's Principal to code behind another transport (a
// gRPC or Connect handler, a queue consumer), and to unit-test handlers
// without an issuer:
//
//	req = req.WithContext(middleware.ContextWithPrincipal(req.Context(), &middleware.Principal{
//		Subject: "alice", Scopes: []string{"orders:read"},
//	}))
//
// A nil p is stored as none: PrincipalFrom then reports false.
func ContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return withPrincipal(ctx, p)
}

func withPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// serverHeldKey marks a request whose token a server-side component holds
// (WithServerHeldToken).
type serverHeldKey struct{}

// WithServerHeldToken returns ctx marked for a request whose Authorization
// header was set by a component in this process that holds the token
// itself, never a client: the token handler (package bff) putting a
// session's access token on the request. The DPoP requirements (DPoP mode
// required, Policy.RequireDPoP) do not apply to it, as no client holds a
// key to prove and the token never leaves the server; everything else
// (signature, audience, expiry, scopes, a DPoP-bound token refused as
// Bearer) does. Clients cannot set it.
func WithServerHeldToken(ctx context.Context) context.Context {
	return context.WithValue(ctx, serverHeldKey{}, true)
}

func serverHeld(ctx context.Context) bool {
	v, _ := ctx.Value(serverHeldKey{}).(bool)
	return v
}
