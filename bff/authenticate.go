package bff

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/tokenguard/tokenguard/middleware"
)

type sessionKeyType struct{}

// FromSession reports whether the request whose context this is was
// authenticated by a session cookie (Authenticate set its Authorization
// header) rather than by a token the client sent. Access logs say
// auth=session for it.
func FromSession(ctx context.Context) bool {
	v, _ := ctx.Value(sessionKeyType{}).(bool)
	return v
}

// Errors of the session rule, as {"error": …} bodies.
const (
	errCSRF          = "csrf_header_required" // 401: X-CSRF: 1 missing
	errOrigin        = "origin_not_allowed"   // 403
	errLoginRequired = "login_required"       // 401: no such session, or it ended
	errUnavailable   = "temporarily_unavailable"
)

// Authenticate is the middleware for API routes. A request with an
// Authorization header passes as it is; a request with the session cookie
// and no Authorization header is authenticated by the session: it must
// carry X-CSRF: 1 (else 401) and an Origin, when present, in
// AllowedOrigins (else 403). A WebSocket handshake, to which a browser
// cannot add a header, needs no X-CSRF but must carry an allowed Origin; then the session's
// access token, refreshed when it expires within RefreshMargin, is set as
// Authorization: Bearer for next, which must verify it (a
// middleware.Guard). A session with a DPoP key (Config.DPoP) gets
// Authorization: DPoP instead, with a fresh DPoP proof (htm the
// request's method, htu PublicURL + its path, ath the token's hash, and
// the nonce of Config.DPoPNonce when set); a client's own DPoP header is
// replaced. The session and login cookies never reach next,
// whichever way the request is authenticated.
func (h *Handler) Authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hasSession, hasLogin := ourCookies(r)
		if !hasSession && !hasLogin {
			next.ServeHTTP(w, r)
			return
		}
		if r.Header.Get("Authorization") != "" || !hasSession {
			next.ServeHTTP(w, withoutOurCookies(r, r.Context()))
			return
		}
		_, s, ok := h.sessionFor(w, r)
		if !ok {
			return
		}
		ctx := context.WithValue(r.Context(), sessionKeyType{}, true)
		key, err := sessionDPoPKey(s)
		if err == nil && key != nil {
			// A DPoP session (Config.DPoP): its token is bound to the
			// session's key, so the request carries a proof made with it
			// for this method and PublicURL + path, as the guard after
			// this (and any upstream that checks) derives htu.
			var proof string
			nonce := ""
			if h.cfg.DPoPNonce != nil {
				nonce = h.cfg.DPoPNonce()
			}
			if proof, err = newProof(key, r.Method, h.cfg.PublicURL+r.URL.EscapedPath(), s.AccessToken, nonce); err == nil {
				out := withoutOurCookies(r, ctx)
				out.Header.Set("Authorization", "DPoP "+s.AccessToken)
				out.Header.Set("DPoP", proof)
				next.ServeHTTP(w, out)
				return
			}
		}
		if err != nil {
			h.logErr(ctx, "bff: no DPoP proof for the session's request", err)
			h.deny(w, r, http.StatusServiceUnavailable, errUnavailable)
			return
		}
		// A Bearer session: the token is the session's, held here; DPoP
		// requirements are for clients that hold keys (DESIGN: "DPoP
		// rules aside").
		out := withoutOurCookies(r, middleware.WithServerHeldToken(ctx))
		out.Header.Set("Authorization", "Bearer "+s.AccessToken)
		next.ServeHTTP(w, out)
	})
}

// sessionFor applies the session rule to r and returns the live session
// with a fresh access token, or answers r itself and reports false.
func (h *Handler) sessionFor(w http.ResponseWriter, r *http.Request) (string, *session, bool) {
	if code, status := h.checkCSRF(r); code != "" {
		h.deny(w, r, status, code)
		return "", nil, false
	}
	ctx := r.Context()
	id, ok := sessionID(r)
	var s *session
	var err error
	if !ok {
		err = errNoSession
	} else {
		s, err = h.loadSession(ctx, id)
	}
	if err == nil {
		s, err = h.fresh(ctx, id, s)
	}
	switch {
	case errors.Is(err, errNoSession), errors.Is(err, errRefreshRefused):
		expireCookie(w, SessionCookie, http.SameSiteStrictMode)
		h.deny(w, r, http.StatusUnauthorized, errLoginRequired)
		return "", nil, false
	case err != nil:
		h.logErr(ctx, "bff: session unavailable", err)
		h.deny(w, r, http.StatusServiceUnavailable, errUnavailable)
		return "", nil, false
	}
	h.slide(ctx, id, s)
	return id, s, true
}

// deny answers a request the session rule refuses.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request, status int, code string) {
	if h.cfg.OnDeny != nil {
		h.cfg.OnDeny(r, code)
	}
	writeError(w, status, code)
}

// checkCSRF applies the CSRF and Origin rule: "" when r passes, else the
// error code and status.
func (h *Handler) checkCSRF(r *http.Request) (string, int) {
	ws := isWebSocket(r)
	// A browser cannot add a header to a WebSocket handshake, so there
	// the Origin, which it always sends and a page cannot change, is the
	// whole rule: required, and allowed.
	if v := r.Header.Values(CSRFHeader); !ws && (len(v) != 1 || v[0] != "1") {
		return errCSRF, http.StatusUnauthorized
	}
	origins := r.Header.Values("Origin")
	switch {
	case len(origins) > 1:
		return errOrigin, http.StatusForbidden
	case len(origins) == 1:
		if !slices.Contains(h.cfg.AllowedOrigins, origins[0]) {
			return errOrigin, http.StatusForbidden
		}
	case ws || isUpgrade(r):
		// WebSockets are not subject to CORS: without an Origin to
		// check, a page of any site could open one with the cookie.
		return errOrigin, http.StatusForbidden
	}
	return "", 0
}

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || r.Method == http.MethodConnect
}

// isWebSocket reports whether r is a WebSocket handshake (RFC 6455 §4.1):
// a GET with Upgrade: websocket.
func isWebSocket(r *http.Request) bool {
	if r.Method != http.MethodGet {
		return false
	}
	for _, v := range r.Header.Values("Upgrade") {
		for p := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "websocket") {
				return true
			}
		}
	}
	return false
}

// withoutOurCookies returns a shallow copy of r under ctx whose Cookie
// headers no longer carry the session or the login cookie. Other cookies
// stay, in their order.
func withoutOurCookies(r *http.Request, ctx context.Context) *http.Request {
	out := r.Clone(ctx)
	lines := out.Header.Values("Cookie")
	out.Header.Del("Cookie")
	for _, line := range lines {
		var kept []string
		for part := range strings.SplitSeq(line, ";") {
			name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if name == SessionCookie || strings.HasPrefix(name, LoginCookiePrefix) || strings.TrimSpace(part) == "" {
				continue
			}
			kept = append(kept, strings.TrimSpace(part))
		}
		if len(kept) > 0 {
			out.Header.Add("Cookie", strings.Join(kept, "; "))
		}
	}
	return out
}

// slideEvery is the granularity of the idle timeout: a session is
// rewritten at most once a minute to record its use.
const slideEvery = time.Minute

// lockTTL bounds how long one replica holds a session's lock: longer than
// a refresh grant may take (defaultTimeout), short enough that a crashed
// replica does not block the session for long.
const lockTTL = 2 * defaultTimeout

// slide records that the session was used, at most once a minute, under
// the session's lock so that it never overwrites a refreshed token with
// an older one; when someone else holds the lock it skips this time.
func (h *Handler) slide(ctx context.Context, id string, s *session) {
	now := h.cfg.Now()
	if now.Unix()-s.LastUsed < int64(slideEvery/time.Second) {
		return
	}
	lk := lockPrefix + hashID(id)
	tok, err := h.cfg.Store.Lock(ctx, lk, lockTTL)
	if err != nil || tok == "" {
		return
	}
	defer func() { _ = h.cfg.Store.Unlock(context.WithoutCancel(ctx), lk, tok) }()
	cur, err := h.loadSession(ctx, id)
	if err != nil {
		return
	}
	cur.LastUsed = now.Unix()
	if err := h.saveSession(ctx, id, cur); err != nil {
		h.logErr(ctx, "bff: recording session use", err)
		return
	}
	s.LastUsed = cur.LastUsed
}

// Refresh errors.
var (
	// errRefreshRefused: the AS refused the refresh token (invalid_grant):
	// the session has ended.
	errRefreshRefused = errors.New("bff: the authorization server refused the refresh token")
	// errRefreshUnavailable: the AS could not be asked, or answered
	// otherwise; the session stays.
	errRefreshUnavailable = errors.New("bff: refresh failed")
)

// refreshCall is one refresh of one session in this process; the
// requests of that session that need it wait for it.
type refreshCall struct {
	done chan struct{}
	s    *session // set before done is closed
	err  error
}

// needsRefresh reports whether s's access token expires within the
// margin: RefreshMargin, or half the token's lifetime when that is
// shorter, so that a server issuing tokens shorter than the margin does
// not get a refresh grant at every request.
func (h *Handler) needsRefresh(s *session, now time.Time) bool {
	if s.AccessExpiry == 0 {
		return false
	}
	margin := int64(h.cfg.RefreshMargin / time.Second)
	if half := (s.AccessExpiry - s.AccessIssued) / 2; half < margin {
		margin = half
	}
	return now.Unix()+margin >= s.AccessExpiry
}

// fresh returns s with an access token that does not expire within
// RefreshMargin, refreshing it once for all concurrent requests of the
// session in this process and, through the store's lock, across replicas.
// When the AS cannot answer, a token that has not expired yet is still
// used.
func (h *Handler) fresh(ctx context.Context, id string, s *session) (*session, error) {
	now := h.cfg.Now()
	if !h.needsRefresh(s, now) {
		return s, nil
	}
	if s.RefreshToken == "" {
		// Nothing to refresh with (no offline_access): the session lasts
		// as long as its access token.
		if now.Unix() < s.AccessExpiry {
			return s, nil
		}
		_ = h.cfg.Store.Delete(ctx, sessionKey(id))
		return nil, errors.Join(errRefreshRefused, errors.New("the access token expired and the session has no refresh token (is offline_access among the scopes?)"))
	}
	key := sessionKey(id)
	h.flightMu.Lock()
	call := h.flights[key]
	if call == nil {
		call = &refreshCall{done: make(chan struct{})}
		h.flights[key] = call
		h.refreshing.Add(1)
		go func() {
			defer h.refreshing.Done()
			// The refresh belongs to the session, not to the request
			// that started it: a client that goes away does not
			// abandon the rotated refresh token.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockTTL)
			defer cancel()
			call.s, call.err = h.refresh(rctx, id)
			h.flightMu.Lock()
			delete(h.flights, key)
			h.flightMu.Unlock()
			close(call.done)
		}()
	}
	h.flightMu.Unlock()
	select {
	case <-call.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if errors.Is(call.err, errRefreshUnavailable) && now.Unix() < s.AccessExpiry {
		return s, nil // still valid for now; the next request tries again
	}
	if call.err != nil {
		return nil, call.err
	}
	cp := *call.s // each waiting request its own: slide writes to it
	return &cp, nil
}

// lockPoll is how often a replica waiting for another's refresh looks
// again.
const lockPoll = 50 * time.Millisecond

// refresh runs the refresh grant for session id under its lock.
func (h *Handler) refresh(ctx context.Context, id string) (*session, error) {
	lk := lockPrefix + hashID(id)
	var tok string
	for {
		var err error
		tok, err = h.cfg.Store.Lock(ctx, lk, lockTTL)
		if err != nil {
			h.metrics.refreshes.WithLabelValues(resultStore).Inc()
			return nil, errors.Join(errRefreshUnavailable, err)
		}
		// Under the lock or not, the session may have been refreshed
		// (or ended) meanwhile by another replica.
		s, err := h.loadSession(ctx, id)
		if err != nil {
			if tok != "" {
				_ = h.cfg.Store.Unlock(ctx, lk, tok)
			}
			if !errors.Is(err, errNoSession) {
				err = errors.Join(errRefreshUnavailable, err)
			}
			return nil, err
		}
		if !h.needsRefresh(s, h.cfg.Now()) {
			if tok != "" {
				_ = h.cfg.Store.Unlock(ctx, lk, tok)
			}
			return s, nil
		}
		if tok != "" {
			defer func() { _ = h.cfg.Store.Unlock(context.WithoutCancel(ctx), lk, tok) }()
			return h.refreshLocked(ctx, id, s)
		}
		select {
		case <-ctx.Done():
			h.metrics.refreshes.WithLabelValues(resultUnavailable).Inc()
			return nil, errors.Join(errRefreshUnavailable, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// refreshLocked makes the refresh grant and saves the rotated tokens; the
// caller holds the session's lock.
func (h *Handler) refreshLocked(ctx context.Context, id string, s *session) (*session, error) {
	if s.RefreshToken == "" {
		h.metrics.refreshes.WithLabelValues(resultInvalidGrant).Inc()
		_ = h.cfg.Store.Delete(ctx, sessionKey(id))
		return nil, errors.Join(errRefreshRefused, errors.New("the session has no refresh token (is offline_access among the scopes?)"))
	}
	md, err := h.endpoints(ctx)
	if err != nil {
		h.metrics.refreshes.WithLabelValues(resultUnavailable).Inc()
		return nil, errors.Join(errRefreshUnavailable, err)
	}
	key, err := sessionDPoPKey(s)
	if err != nil {
		h.metrics.refreshes.WithLabelValues(resultInvalidGrant).Inc()
		h.logErr(ctx, "bff: the session's DPoP key is unusable; the session ends", err)
		_ = h.cfg.Store.Delete(ctx, sessionKey(id))
		return nil, errRefreshRefused
	}
	tok, err := h.oauthConfig(md).TokenSource(withDPoPKey(h.oauthContext(ctx), key), &oauth2.Token{RefreshToken: s.RefreshToken}).Token()
	if err == nil && key != nil {
		// A Bearer answer to a proved request is a downgrade: the session
		// cannot use it (and must not), so it ends.
		if err := checkDPoPTokenType(tok.TokenType); err != nil {
			h.metrics.refreshes.WithLabelValues(resultInvalidGrant).Inc()
			h.logErr(ctx, "bff: refresh refused; the session ends", err)
			_ = h.cfg.Store.Delete(ctx, sessionKey(id))
			h.revokeRefused(ctx, cmp.Or(tok.RefreshToken, s.RefreshToken))
			return nil, errRefreshRefused
		}
	}
	if err != nil {
		// invalid_grant, or any other refusal (a 4xx: invalid_client,
		// invalid_scope, ...) is an answer, not an outage: the session
		// cannot go on, and retrying at every request would not help.
		// A second use_dpop_nonce (one was answered already) is the
		// server's nonce trouble, not the session's end.
		if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok && re.ErrorCode != "use_dpop_nonce" &&
			(re.ErrorCode == "invalid_grant" || re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500) {
			h.metrics.refreshes.WithLabelValues(resultInvalidGrant).Inc()
			h.logErr(ctx, "bff: the authorization server refused the refresh; the session ends", err)
			_ = h.cfg.Store.Delete(ctx, sessionKey(id))
			return nil, errRefreshRefused
		}
		h.metrics.refreshes.WithLabelValues(resultUnavailable).Inc()
		h.logErr(ctx, "bff: refresh failed; the session stays", err)
		return nil, errors.Join(errRefreshUnavailable, err)
	}
	if err := checkTokenSizes(tok.AccessToken, tok.RefreshToken); err != nil {
		h.metrics.refreshes.WithLabelValues(resultUnavailable).Inc()
		return nil, errors.Join(errRefreshUnavailable, err)
	}
	next := *s
	next.AccessToken, next.AccessExpiry, next.AccessIssued = tok.AccessToken, accessExpiry(tok), h.cfg.Now().Unix()
	if tok.RefreshToken != "" {
		next.RefreshToken = tok.RefreshToken // rotated
	}
	if err := h.saveSession(ctx, id, &next); err != nil {
		// The old refresh token may already be spent: without the new
		// one saved the session cannot go on.
		h.metrics.refreshes.WithLabelValues(resultStore).Inc()
		return nil, errors.Join(errRefreshUnavailable, err)
	}
	h.metrics.refreshes.WithLabelValues(resultSuccess).Inc()
	return &next, nil
}
