package bff

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"
)

// user is GET {path}/user: the ID token's claims and the session's
// expiry, never a token. ?slide=false reads without counting as a use.
func (h *Handler) user(w http.ResponseWriter, r *http.Request) {
	var s *session
	var ok bool
	if r.URL.Query().Get("slide") == "false" {
		_, s, ok = h.sessionNoSlide(w, r)
	} else {
		_, s, ok = h.sessionFor(w, r)
	}
	if !ok {
		return
	}
	var claims map[string]json.RawMessage
	if err := json.Unmarshal(s.Claims, &claims); err != nil {
		claims = map[string]json.RawMessage{}
	}
	delete(claims, "nonce")
	exp, _ := json.Marshal(map[string]int64{
		"expires_at":      s.Expires,
		"idle_expires_at": s.idleExpires(h.cfg.SessionIdleTimeout),
	})
	claims["session"] = exp
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(claims)
}

// sessionNoSlide is sessionFor without recording the use, and without a
// refresh (/user needs no access token): the CSRF rule and the lookup
// still apply.
func (h *Handler) sessionNoSlide(w http.ResponseWriter, r *http.Request) (string, *session, bool) {
	if code, status := h.checkCSRF(r); code != "" {
		h.deny(w, r, status, code)
		return "", nil, false
	}
	id, ok := sessionID(r)
	if !ok {
		expireCookie(w, SessionCookie, http.SameSiteStrictMode)
		h.deny(w, r, http.StatusUnauthorized, errLoginRequired)
		return "", nil, false
	}
	s, err := h.loadSession(r.Context(), id)
	switch {
	case errors.Is(err, errNoSession):
		expireCookie(w, SessionCookie, http.SameSiteStrictMode)
		h.deny(w, r, http.StatusUnauthorized, errLoginRequired)
		return "", nil, false
	case err != nil:
		// The store did not answer: the session may well be alive.
		h.logErr(r.Context(), "bff: session unavailable", err)
		h.deny(w, r, http.StatusServiceUnavailable, errUnavailable)
		return "", nil, false
	}
	return id, s, true
}

// logout is POST {path}/logout: revoke the refresh token, delete the
// session, expire the cookie, and tell the app where to send the browser
// to end the provider's session too.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if code, status := h.checkCSRF(r); code != "" {
		h.deny(w, r, status, code)
		return
	}
	ctx := r.Context()
	id, ok := sessionID(r)
	if !ok {
		expireCookie(w, SessionCookie, http.SameSiteStrictMode)
		h.deny(w, r, http.StatusUnauthorized, errLoginRequired)
		return
	}
	// Wait (briefly) for a refresh in flight, so that it cannot save the
	// session again after it is deleted.
	lk := lockPrefix + hashID(id)
	lctx, cancel := context.WithTimeout(ctx, lockTTL)
	defer cancel()
	tok := h.waitLock(lctx, lk)
	s, err := h.loadSession(ctx, id)
	if err == nil {
		err = h.cfg.Store.Delete(ctx, sessionKey(id))
	}
	if tok != "" {
		_ = h.cfg.Store.Unlock(ctx, lk, tok)
	}
	switch {
	case errors.Is(err, errNoSession):
		expireCookie(w, SessionCookie, http.SameSiteStrictMode)
		h.deny(w, r, http.StatusUnauthorized, errLoginRequired)
		return
	case err != nil:
		// Not logged out: the session and its refresh token live on, so
		// the app must be told to try again rather than that it worked.
		h.logErr(ctx, "bff: logout: the session store did not answer", err)
		h.deny(w, r, http.StatusServiceUnavailable, errUnavailable)
		return
	}
	expireCookie(w, SessionCookie, http.SameSiteStrictMode)
	h.unindex(ctx, hashID(id), s.Claims)
	body := map[string]string{}
	if md, err := h.endpoints(ctx); err != nil {
		h.logErr(ctx, "bff: logout: no metadata; the refresh token is not revoked", err)
	} else {
		if s.RefreshToken != "" && md.RevocationEndpoint != "" {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
			if err := h.revoke(rctx, md.RevocationEndpoint, s.RefreshToken); err != nil {
				h.logErr(ctx, "bff: logout: revoking the refresh token", err)
			}
			cancel()
		}
		if md.EndSessionEndpoint != "" {
			q := url.Values{"client_id": {h.cfg.ClientID}, "id_token_hint": {s.IDToken}}
			if h.cfg.PostLogoutRedirectURL != "" {
				q.Set("post_logout_redirect_uri", h.cfg.PostLogoutRedirectURL)
			}
			body["logout_url"] = md.EndSessionEndpoint + sep(md.EndSessionEndpoint) + q.Encode()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

func sep(u string) string {
	if parsed, err := url.Parse(u); err == nil && parsed.RawQuery != "" {
		return "&"
	}
	return "?"
}

// waitLock takes lock key, polling until ctx ends; "" if it never could.
func (h *Handler) waitLock(ctx context.Context, key string) string {
	for {
		tok, err := h.cfg.Store.Lock(ctx, key, lockTTL)
		if err != nil {
			return ""
		}
		if tok != "" {
			return tok
		}
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(lockPoll):
		}
	}
}
