package discovery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Errors returned by [Fetch] and [Cache.Get]; callers branch on them with
// errors.Is. Messages add fixed phrases and our own URLs, never bytes of
// the document.
var (
	// ErrUnavailable means the metadata could not be retrieved: no
	// response, a status other than 200, a timeout, or a body that could
	// not be read.
	ErrUnavailable = errors.New("discovery: issuer metadata unavailable")
	// ErrInvalid means a document was retrieved but is not usable
	// metadata: too large, not one JSON object, members of the wrong type
	// or duplicated, or endpoints that fail the URL policy.
	ErrInvalid = errors.New("discovery: invalid issuer metadata")
	// ErrIssuerMismatch means the document's "issuer" is not exactly the
	// configured issuer (RFC 8414 §3.3). The document was not used.
	ErrIssuerMismatch = errors.New("discovery: metadata issuer does not match the configured issuer")
)

// Metadata is what a resource server needs from an issuer's metadata.
// Values returned by this package are not shared: the caller may keep and
// modify them.
type Metadata struct {
	// Issuer is the issuer identifier, equal to Config.Issuer.
	Issuer string
	// JWKSURI is "jwks_uri"; "" when the document has none.
	JWKSURI string
	// IntrospectionEndpoint is "introspection_endpoint"; "" when the
	// document has none.
	IntrospectionEndpoint string
	// IntrospectionAuthMethods is
	// "introspection_endpoint_auth_methods_supported"; nil when absent.
	IntrospectionAuthMethods []string

	// The endpoints a client (the token handler, package bff) uses; ""
	// when the document has none. Each passed the same URL checks as
	// JWKSURI.
	AuthorizationEndpoint string // "authorization_endpoint"
	TokenEndpoint         string // "token_endpoint"
	RevocationEndpoint    string // "revocation_endpoint" (RFC 7009)
	EndSessionEndpoint    string // "end_session_endpoint" (OpenID Connect RP-Initiated Logout)
	PAREndpoint           string // "pushed_authorization_request_endpoint" (RFC 9126)
	// RequirePAR is "require_pushed_authorization_requests" (RFC 9126
	// §5): the server accepts only pushed authorization requests. false
	// when absent.
	RequirePAR bool
	// DPoPSigningAlgs is "dpop_signing_alg_values_supported" (RFC 9449
	// §5.1); nil when absent.
	DPoPSigningAlgs []string
	// CodeChallengeMethods is "code_challenge_methods_supported"; nil when
	// absent.
	CodeChallengeMethods []string
	// Source is the URL the document was read from (after redirects).
	Source string
}

func (m *Metadata) clone() *Metadata {
	c := *m
	if m.IntrospectionAuthMethods != nil {
		c.IntrospectionAuthMethods = append([]string{}, m.IntrospectionAuthMethods...)
	}
	if m.CodeChallengeMethods != nil {
		c.CodeChallengeMethods = append([]string{}, m.CodeChallengeMethods...)
	}
	if m.DPoPSigningAlgs != nil {
		c.DPoPSigningAlgs = append([]string{}, m.DPoPSigningAlgs...)
	}
	return &c
}

// The members read from the document.
const (
	memberIssuer      = "issuer"
	memberJWKSURI     = "jwks_uri"
	memberIntrospect  = "introspection_endpoint"
	memberAuthMethods = "introspection_endpoint_auth_methods_supported"
	memberAuthorize   = "authorization_endpoint"
	memberToken       = "token_endpoint"
	memberRevoke      = "revocation_endpoint"
	memberEndSession  = "end_session_endpoint"
	memberPAR         = "pushed_authorization_request_endpoint"
	memberPKCE        = "code_challenge_methods_supported"
	memberRequirePAR  = "require_pushed_authorization_requests"
	memberDPoPAlgs    = "dpop_signing_alg_values_supported"
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// parseMetadata parses a metadata document and checks it against issuer
// and the URL policy. It is a pure function of its inputs; Source is left
// empty.
func parseMetadata(doc []byte, issuer string, insecure bool) (*Metadata, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, invalid("document is not a JSON object")
	}
	var (
		seen        = make(map[string]bool, 4)
		str         = make(map[string]string, 3)
		authMethods []string
		pkce        []string
		dpopAlgs    []string
		requirePAR  bool
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("document is not valid JSON")
		}
		key, ok := tok.(string)
		if !ok {
			return nil, invalid("document is not valid JSON")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, invalid("document is not valid JSON")
		}
		v = bytes.TrimSpace(v)
		switch key {
		case memberIssuer, memberJWKSURI, memberIntrospect, memberAuthMethods,
			memberAuthorize, memberToken, memberRevoke, memberEndSession, memberPAR, memberPKCE,
			memberRequirePAR, memberDPoPAlgs:
		default:
			continue // other members are not ours to judge
		}
		if seen[key] {
			return nil, invalid("member %q appears more than once", key)
		}
		seen[key] = true
		switch key {
		case memberAuthMethods:
			if authMethods, ok = stringArray(v); !ok {
				return nil, invalid("member %q is not an array of strings", key)
			}
			continue
		case memberPKCE:
			if pkce, ok = stringArray(v); !ok {
				return nil, invalid("member %q is not an array of strings", key)
			}
			continue
		case memberDPoPAlgs:
			if dpopAlgs, ok = stringArray(v); !ok {
				return nil, invalid("member %q is not an array of strings", key)
			}
			continue
		case memberRequirePAR:
			switch string(v) {
			case "true":
				requirePAR = true
			case "false":
			default:
				return nil, invalid("member %q is not a boolean", key)
			}
			continue
		}
		s, ok := jsonString(v)
		if !ok {
			return nil, invalid("member %q is not a string", key)
		}
		str[key] = s
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, invalid("document is not valid JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("data after the JSON object")
	}

	got, ok := str[memberIssuer]
	if !ok {
		return nil, invalid("member %q is missing", memberIssuer)
	}
	if got != issuer {
		return nil, ErrIssuerMismatch
	}
	md := &Metadata{
		Issuer: issuer, IntrospectionAuthMethods: authMethods, CodeChallengeMethods: pkce,
		RequirePAR: requirePAR, DPoPSigningAlgs: dpopAlgs,
	}
	for _, m := range []struct {
		key string
		dst *string
	}{
		{memberJWKSURI, &md.JWKSURI},
		{memberIntrospect, &md.IntrospectionEndpoint},
		{memberAuthorize, &md.AuthorizationEndpoint},
		{memberToken, &md.TokenEndpoint},
		{memberRevoke, &md.RevocationEndpoint},
		{memberEndSession, &md.EndSessionEndpoint},
		{memberPAR, &md.PAREndpoint},
	} {
		s, ok := str[m.key]
		if !ok {
			continue
		}
		if err := checkURL(s, insecure); err != nil {
			return nil, invalid("member %q: %v", m.key, err)
		}
		*m.dst = s
	}
	if md.JWKSURI == "" && md.IntrospectionEndpoint == "" {
		return nil, invalid("neither %q nor %q is present", memberJWKSURI, memberIntrospect)
	}
	return md, nil
}

// jsonString decodes v if it is a JSON string (null is not).
func jsonString(v json.RawMessage) (string, bool) {
	if len(v) == 0 || v[0] != '"' {
		return "", false
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// stringArray decodes v if it is a JSON array of strings.
func stringArray(v json.RawMessage) ([]string, bool) {
	if len(v) == 0 || v[0] != '[' {
		return nil, false
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(v, &raws); err != nil {
		return nil, false
	}
	out := make([]string, 0, len(raws))
	for _, r := range raws {
		s, ok := jsonString(r)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}
