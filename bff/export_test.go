package bff

import (
	"context"
	"encoding/base64"
)

// LoginCookieName is loginCookieName, for the external tests.
var LoginCookieName = loginCookieName

// SessionDPoPKeyOf returns the DPoP key the session with this cookie
// value keeps: nil without one.
func SessionDPoPKeyOf(h *Handler, id string) ([]byte, error) {
	s, err := h.loadSession(context.Background(), id)
	if err != nil {
		return nil, err
	}
	return s.DPoPKey, nil
}

// OpenLoginCookie returns what the login cookie of the login with this
// state holds, opened.
func OpenLoginCookie(h *Handler, state, value string) ([]byte, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil {
		return nil, err
	}
	return h.loginSeal.open(sealed, loginAAD(state))
}
