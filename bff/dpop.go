package bff

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/tokenguard/tokenguard/dpop"
)

// dpopKeyInfo labels the HKDF output that becomes a session's DPoP key,
// apart from every other use of the secret it is derived from.
const dpopKeyInfo = "tokenguard/bff/dpop-session-key/v1"

// dpopAlg is the only proof algorithm the handler uses: its keys are
// P-256.
const dpopAlg = "ES256"

// deriveDPoPKey derives the DPoP key of the login with this state from
// secret: HKDF-SHA256(secret, info = label, state, counter) read as a
// P-256 scalar, the counter moving on in the rare case (about 2^-32) that
// the 256 bits are zero or not below the group order. The same secret
// and state always give the same key: /login derives it to send its
// thumbprint as dpop_jkt, /callback derives it again for the code
// exchange, and nothing of it is ever stored or sent before the session
// is made. state is 256 random bits, so no two logins share a key, and
// without secret no one can compute it.
func deriveDPoPKey(secret []byte, state string) (*ecdsa.PrivateKey, error) {
	for i := range 16 {
		b, err := hkdf.Key(sha256.New, secret, nil, dpopKeyInfo+"\x00"+state+"\x00"+strconv.Itoa(i), 32)
		if err != nil {
			return nil, fmt.Errorf("bff: deriving the DPoP key: %w", err)
		}
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), b); err == nil {
			return k, nil
		}
	}
	return nil, errors.New("bff: deriving the DPoP key: no scalar in range")
}

// loginDPoPKey returns the DPoP key of the login with this state, and its
// RFC 7638 thumbprint (dpop_jkt), under the current secret.
func (h *Handler) loginDPoPKey(state string) (*ecdsa.PrivateKey, string, error) {
	k, err := deriveDPoPKey(h.dpopSecrets[0], state)
	if err != nil {
		return nil, "", err
	}
	jkt, err := dpop.Thumbprint(k.Public())
	if err != nil {
		return nil, "", err
	}
	return k, jkt, nil
}

// callbackDPoPKey derives the key of the login with this state again, at
// its callback: the one whose thumbprint is jkt (recorded in the login
// cookie at /login), under the current secret or, across a rotation of
// SessionKey during the login, the previous one. A login made without
// DPoP (jkt "") gets a key under the current secret.
func (h *Handler) callbackDPoPKey(state, jkt string) (*ecdsa.PrivateKey, error) {
	for _, secret := range h.dpopSecrets {
		k, err := deriveDPoPKey(secret, state)
		if err != nil {
			return nil, err
		}
		if jkt == "" {
			return k, nil
		}
		if got, err := dpop.Thumbprint(k.Public()); err == nil && got == jkt {
			return k, nil
		}
	}
	return nil, errors.New("bff: no session key derives the DPoP key this login started with")
}

// sessionDPoPKey returns the key a session keeps; nil for a session
// without one.
func sessionDPoPKey(s *session) (*ecdsa.PrivateKey, error) {
	if len(s.DPoPKey) == 0 {
		return nil, nil
	}
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), s.DPoPKey)
	if err != nil {
		return nil, errors.New("bff: the session's DPoP key does not parse")
	}
	return k, nil
}

// newProof makes a DPoP proof (RFC 9449 §4.2) with key for method and
// url (its query and fragment dropped), binding token ("ath") and nonce
// when not empty. Its iat is the wall clock, not Config.Now: the proof
// is judged by other servers' clocks.
func newProof(key *ecdsa.PrivateKey, method, url, token, nonce string) (string, error) {
	p, err := dpop.NewProof(key, dpop.ProofParams{Method: method, URL: url, AccessToken: token, Nonce: nonce, Alg: dpopAlg})
	if err != nil {
		return "", fmt.Errorf("bff: making a DPoP proof: %w", err)
	}
	return p, nil
}

// dpopKeyType marks the context of a token request that needs a DPoP
// proof: its value is the session's key.
type dpopKeyType struct{}

// withDPoPKey returns ctx for token requests proved with key (none when
// key is nil).
func withDPoPKey(ctx context.Context, key *ecdsa.PrivateKey) context.Context {
	if key == nil {
		return ctx
	}
	return context.WithValue(ctx, dpopKeyType{}, key)
}

func dpopKeyFrom(ctx context.Context) *ecdsa.PrivateKey {
	k, _ := ctx.Value(dpopKeyType{}).(*ecdsa.PrivateKey)
	return k
}

// maxNonce bounds a DPoP-Nonce the handler keeps.
const maxNonce = 1024

// validNonce reports whether s is a DPoP nonce (RFC 9449 §8.1: 1*NQCHAR)
// of a sane size.
func validNonce(s string) bool {
	if s == "" || len(s) > maxNonce {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// asNonce is the authorization server's latest DPoP nonce, "" before it
// sent one.
func (h *Handler) asNonce() string {
	if p := h.nonce.Load(); p != nil {
		return *p
	}
	return ""
}

// learnNonce keeps the DPoP-Nonce an authorization server's answer
// carries (RFC 9449 §8.2: any answer may bring a fresh one).
func (h *Handler) learnNonce(resp *http.Response) {
	if v := resp.Header.Get("DPoP-Nonce"); validNonce(v) {
		h.nonce.Store(&v)
	}
}

// maxErrorBody bounds the error answer of a token request the handler
// reads to find use_dpop_nonce.
const maxErrorBody = 64 << 10

// wantsNonce reports whether resp is the authorization server's demand
// for a DPoP nonce (RFC 9449 §8): 400 {"error":"use_dpop_nonce"} with a
// DPoP-Nonce header. It reads the body of a 400 and puts it back for the
// caller.
func wantsNonce(resp *http.Response) bool {
	if resp.StatusCode != http.StatusBadRequest || !validNonce(resp.Header.Get("DPoP-Nonce")) {
		return false
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		return false
	}
	var e struct {
		Error string `json:"error"`
	}
	return json.Unmarshal(body, &e) == nil && e.Error == "use_dpop_nonce"
}

// revokeRefused revokes, best effort, the refresh token of a token
// response the handler refused: no session will use it.
func (h *Handler) revokeRefused(ctx context.Context, refreshToken string) {
	if refreshToken == "" {
		return
	}
	if md, err := h.endpoints(ctx); err == nil && md.RevocationEndpoint != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
		defer cancel()
		if err := h.revoke(rctx, md.RevocationEndpoint, refreshToken); err != nil {
			h.logErr(ctx, "bff: revoking the refresh token of a refused token response", err)
		}
	}
}

// checkDPoPTokenType refuses a token response that is not DPoP-bound
// when the request was proved (RFC 9449 §5): a Bearer answer is a
// downgrade the session must not accept.
func checkDPoPTokenType(tokenType string) error {
	if !strings.EqualFold(tokenType, "DPoP") {
		return errors.New("bff: the authorization server answered a DPoP token request with a token that is not DPoP-bound (token_type is not DPoP)")
	}
	return nil
}
