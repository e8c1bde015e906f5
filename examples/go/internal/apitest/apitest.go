// Package apitest is the examples' test kit: a throwaway authorization
// server (an ES256 key made for the test, its JWKS served on 127.0.0.1,
// RFC 9068 access tokens signed with jwx) and a helper that calls an API
// and reads the answer. It stands in for a real issuer in tests only.
package apitest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// Audience is the API's identifier: the "aud" of the tokens an Issuer
// mints, and the AUDIENCE the examples are configured with.
const Audience = "https://orders.example.com"

// Issuer is an authorization server that publishes one ES256 key.
type Issuer struct {
	// URL is the issuer identifier, the "iss" of its tokens.
	URL string
	// JWKSURI is where its public key is served.
	JWKSURI string

	key *ecdsa.PrivateKey
	kid string
}

// NewIssuer generates a key and serves its JWKS on 127.0.0.1 until the
// test ends.
func NewIssuer(tb testing.TB) *Issuer {
	tb.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	is := &Issuer{key: priv, kid: "test-key-1"}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		tb.Fatal(err)
	}
	for k, v := range map[string]any{jwk.KeyIDKey: is.kid, jwk.AlgorithmKey: jwa.ES256(), jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			tb.Fatal(err)
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		tb.Fatal(err)
	}
	jwks, err := json.Marshal(set)
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/jwks" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(jwks)
	}))
	tb.Cleanup(srv.Close)
	is.URL = srv.URL
	is.JWKSURI = srv.URL + "/jwks"
	return is
}

// Env returns the environment an example reads (ISSUER, JWKS_URI,
// AUDIENCE), pointing at is, in the shape of os.Getenv.
func (is *Issuer) Env() func(string) string {
	env := map[string]string{"ISSUER": is.URL, "JWKS_URI": is.JWKSURI, "AUDIENCE": Audience}
	return func(name string) string { return env[name] }
}

// Token mints an RFC 9068 access token for sub with the space-separated
// scope, valid for an hour. Entries of extra replace or add claims
// ("exp" to expire it, for instance).
func (is *Issuer) Token(tb testing.TB, sub, scope string, extra map[string]any) string {
	tb.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss":       is.URL,
		"aud":       Audience,
		"sub":       sub,
		"client_id": "orders-web",
		"scope":     scope,
		"iat":       now.Unix(),
		"exp":       now.Add(time.Hour).Unix(),
		"jti":       rand.Text(),
	}
	for k, v := range extra {
		claims[k] = v
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	hdrs := jws.NewHeaders()
	for k, v := range map[string]any{jws.KeyIDKey: is.kid, jws.TypeKey: "at+jwt"} {
		if err := hdrs.Set(k, v); err != nil {
			tb.Fatal(err)
		}
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), is.key, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		tb.Fatal(err)
	}
	return string(tok)
}

// Response is what an API answered.
type Response struct {
	Status int
	Header http.Header
	Body   string // with surrounding white space trimmed
}

// Call sends method url to an API with token as a Bearer token (none when
// "") and body as JSON (none when ""), and reads the answer.
func Call(tb testing.TB, method, url, token, body string) Response {
	tb.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(tb.Context(), method, url, r)
	if err != nil {
		tb.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		tb.Fatal(err)
	}
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: strings.TrimSpace(string(b))}
}
