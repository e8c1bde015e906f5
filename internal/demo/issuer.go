package demo

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// tokenTTL is how long the demo's tokens live.
const tokenTTL = time.Hour

// tokenEndpoint is the demo issuer's token endpoint: like the
// development issuer's own, it mints a token for anyone who asks
// (DEVELOPMENT ONLY), and in addition, when the request carries a valid
// DPoP proof, it binds the token to the proof's key with cnf.jkt and
// answers token_type DPoP (RFC 9449 §5, §6.1).
//
// The answer is the bare token as text/plain, for TOKEN=$(curl ...), or
// an RFC 6749 §5.1 token response when the client accepts
// application/json.
//
// With login (the development issuer's EnableLogin), a POST with
// grant_type authorization_code or refresh_token is passed to the
// development issuer's own token endpoint, which serves those grants.
type tokenEndpoint struct {
	is     *devissuer.Issuer
	url    string         // this endpoint's URL as clients address it: the proofs' htu
	proofs *dpop.Verifier // with its own in-memory replay store
	grants http.Handler   // the development issuer's handler, for its grants; nil without login
}

// newIssuerHandler serves the development issuer's endpoints, with
// /token replaced by a tokenEndpoint at tokenURL. login says whether
// EnableLogin was called: then the authorization_code and refresh_token
// grants reach the development issuer.
func newIssuerHandler(is *devissuer.Issuer, tokenURL string, login bool) (http.Handler, error) {
	v, err := dpop.NewVerifier(dpop.Config{})
	if err != nil {
		return nil, err
	}
	issuer := is.Handler()
	te := &tokenEndpoint{is: is, url: tokenURL, proofs: v}
	if login {
		te.grants = issuer
	}
	mux := http.NewServeMux()
	mux.Handle("/", issuer)
	mux.Handle("GET /token", te)
	mux.Handle("POST /token", te)
	return mux, nil
}

func (te *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request", "cannot parse the request")
		return
	}
	if gt := r.PostForm.Get("grant_type"); te.grants != nil && r.Method == http.MethodPost &&
		(gt == "authorization_code" || gt == "refresh_token") {
		te.grants.ServeHTTP(w, r) // reads the form parsed above
		return
	}
	scope := r.Form.Get("scope")
	if len(scope) > 1024 {
		tokenError(w, http.StatusBadRequest, "invalid_scope", "scope too long")
		return
	}
	tokenType := "Bearer"
	var extra map[string]any
	switch proofs := r.Header.Values("DPoP"); len(proofs) {
	case 0:
	case 1:
		p, err := te.proofs.Verify(r.Context(), dpop.Request{Proof: proofs[0], Method: r.Method, URL: te.url})
		switch {
		case errors.Is(err, dpop.ErrStoreFull) || errors.Is(err, dpop.ErrStoreUnavailable):
			tokenError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "cannot check the proof now")
			return
		case err != nil:
			// A fixed phrase: the reason stays on this side.
			tokenError(w, http.StatusBadRequest, "invalid_dpop_proof", "the DPoP proof is not valid for this request")
			return
		}
		tokenType = "DPoP"
		extra = map[string]any{"cnf": map[string]any{"jkt": p.JKT}}
	default:
		tokenError(w, http.StatusBadRequest, "invalid_dpop_proof", "more than one DPoP header")
		return
	}
	tok, err := te.is.Mint(scope, tokenTTL, extra)
	if err != nil {
		tokenError(w, http.StatusInternalServerError, "server_error", "cannot mint a token")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if !strings.Contains(r.Header.Get("Accept"), "application/json") {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, tok+"\n")
		return
	}
	resp := map[string]any{
		"access_token": tok,
		"token_type":   tokenType,
		"expires_in":   int(tokenTTL / time.Second),
	}
	if scope != "" {
		resp["scope"] = scope
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// tokenError writes an RFC 6749 §5.2 error response. description is a
// fixed phrase, never request data.
func tokenError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}
