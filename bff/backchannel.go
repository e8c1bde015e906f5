package bff

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/internal/discovery"
	"github.com/tokenguard/tokenguard/internal/jose"
	"github.com/tokenguard/tokenguard/internal/jsonscan"
	"github.com/tokenguard/tokenguard/jwks"
)

// Store key prefixes of back-channel logout: the indexes of sessions by
// sid and by subject, and the jti markers of logout tokens seen.
const (
	indexPrefix = "i/"
	jtiPrefix   = "j/"
	// endedPrefix marks a sid a back-channel logout ended, for
	// LoginTimeout: a login whose callback was still saving its session
	// when the logout read the index ends that session itself.
	endedPrefix = "e/"
)

// sidEndedKey names the marker of a sid that a back-channel logout ended.
// Its value is the logout's time (Unix seconds, decimal).
func (h *Handler) sidEndedKey(sid string) string { return endedPrefix + h.scopedHash("sid", sid) }

// scopedHash is the hash that names a store key of kind for value (a sid,
// a subject, a jti): of the issuer, this client and value, so that
// handlers of two clients sharing a store (or a provider that reuses a
// jti across its clients) never touch each other's entries.
func (h *Handler) scopedHash(kind, value string) string {
	return hashID(kind + "\x00" + h.cfg.Issuer + "\x00" + h.cfg.ClientID + "\x00" + value)
}

// backchannelEvent is the member of a logout token's "events" claim that
// makes it one (OpenID Connect Back-Channel Logout 1.0 §2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutTokenMaxAge is how old (by its iat) a logout token may be, on top
// of the idTokenLeeway allowed for clock skew: the authorization server
// sends it when the user logs out, so a minute would do; five allow for
// its retries. Its jti is remembered for as long as it may be accepted:
// logoutTokenMaxAge plus the leeway on either side of iat.
const logoutTokenMaxAge = 5 * time.Minute

// jtiTTL is how long the jti of an accepted logout token is remembered:
// longer than the token can be accepted, whatever its iat.
// Two minutes more cover clocks that differ between replicas and the
// store.
const jtiTTL = logoutTokenMaxAge + 2*idTokenLeeway + 2*time.Minute

// maxBackchannelBody bounds the body of a back-channel logout request: a
// form with one token of at most MaxTokenSize.
const maxBackchannelBody = 64 << 10

// indexSlack is added to SessionLifetime for an index's time to live, so
// that rounding and clock steps never let an index expire before a
// session in it.
const indexSlack = time.Minute

// sidIndexKey names the index of the sessions with this sid: a hash, so
// the store never holds a raw sid.
func (h *Handler) sidIndexKey(sid string) string { return indexPrefix + h.scopedHash("sid", sid) }

// subIndexKey names the index of the sessions of subject sub.
func (h *Handler) subIndexKey(sub string) string { return indexPrefix + h.scopedHash("sub", sub) }

// backchannel is POST {path}/backchannel (OpenID Connect Back-Channel
// Logout 1.0 §2.5–2.8): a logout token from the issuer ends the sessions
// it names. 200 when the token is valid, whether sessions matched or not;
// 400 {"error":"invalid_request"} for any refusal (the request or the
// token, a jti seen before), with nothing changed; 503 when the store,
// the metadata or the keys are unavailable, so that the authorization
// server tries again. ServeHTTP has set Cache-Control: no-store.
func (h *Handler) backchannel(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	refuse := func(result string, err error) {
		h.logErr(ctx, "bff: back-channel logout refused", err, "result", result)
		h.metrics.backchannel.WithLabelValues(result).Inc()
		h.backchannelDone(r, result, 0)
		writeError(w, http.StatusBadRequest, "invalid_request")
	}
	unavailable := func(err error) {
		h.logErr(ctx, "bff: back-channel logout not carried out; the authorization server should retry", err, "result", resultUnavailable)
		h.metrics.backchannel.WithLabelValues(resultUnavailable).Inc()
		h.backchannelDone(r, resultUnavailable, 0)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable")
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		refuse(resultInvalid, errors.New("bff: not a POST"))
		return
	}
	if ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || ct != "application/x-www-form-urlencoded" {
		refuse(resultInvalid, errors.New("bff: the body is not application/x-www-form-urlencoded"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBackchannelBody))
	if err != nil {
		refuse(resultInvalid, fmt.Errorf("bff: reading the body: %w", err))
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		// Not err: its text may quote the body.
		refuse(resultInvalid, errors.New("bff: the body is not a well-formed form"))
		return
	}
	raws := form["logout_token"]
	switch {
	case len(raws) != 1 || raws[0] == "":
		refuse(resultInvalid, errors.New("bff: the form has no single logout_token"))
		return
	case len(raws[0]) > MaxTokenSize:
		refuse(resultInvalid, errors.New("bff: logout_token larger than MaxTokenSize"))
		return
	}
	md, err := h.endpoints(ctx)
	if err != nil {
		unavailable(err)
		return
	}
	now := h.cfg.Now()
	lt, err := h.verifyLogoutToken(ctx, md, raws[0], now)
	// A kid we do not know may be a key the issuer published a moment
	// ago, while the key set's refetch is rate limited (which anyone can
	// keep it by posting junk kids): 503, so that the issuer retries,
	// rather than 400, which loses a real logout. A forged token still
	// changes nothing.
	if errors.Is(err, errKeysUnavailable) || errors.Is(err, jwks.ErrUnknownKID) {
		unavailable(err)
		return
	}
	if err != nil {
		refuse(resultInvalid, err)
		return
	}
	// The jti is recorded atomically (Lock is SET NX): of two deliveries
	// of one token, one is carried out and the other refused.
	jk := jtiPrefix + h.scopedHash("jti", lt.jti)
	mark, err := h.cfg.Store.Lock(ctx, jk, jtiTTL)
	switch {
	case err != nil:
		unavailable(err)
		return
	case mark == "":
		refuse(resultReplayed, errors.New("bff: the logout token's jti was used already"))
		return
	}
	if lt.sid != "" {
		// Before the index is read: a login that indexes its session
		// after this read finds the marker once its session is saved
		// (callback), and ends the session itself.
		at := []byte(strconv.FormatInt(now.Unix(), 10))
		if err := h.cfg.Store.Set(ctx, h.sidEndedKey(lt.sid), at, LoginTimeout); err != nil {
			_ = h.cfg.Store.Unlock(context.WithoutCancel(ctx), jk, mark)
			unavailable(err)
			return
		}
	}
	n, err := h.endSessionsOf(ctx, md, lt)
	if err != nil {
		// Forget the jti, so that the retry this 503 asks for is not
		// refused as a replay; the sessions ended so far stay ended.
		_ = h.cfg.Store.Unlock(context.WithoutCancel(ctx), jk, mark)
		unavailable(err)
		return
	}
	result := resultEnded
	if n == 0 {
		result = resultNoSession
	}
	h.metrics.backchannel.WithLabelValues(result).Inc()
	h.backchannelDone(r, result, n)
	h.cfg.Logger.LogAttrs(ctx, slog.LevelInfo, "bff: back-channel logout", slog.String("result", result), slog.Int("sessions", n))
	w.WriteHeader(http.StatusOK)
}

// backchannelDone reports a back-channel logout's result to
// Config.OnBackchannelLogout.
func (h *Handler) backchannelDone(r *http.Request, result string, sessions int) {
	if h.cfg.OnBackchannelLogout != nil {
		h.cfg.OnBackchannelLogout(r, result, sessions)
	}
}

// logoutToken is what a verified logout token names.
type logoutToken struct {
	sub, sid string // either may be ""; not both
	jti      string
}

// verifyLogoutToken checks a logout token (OpenID Connect Back-Channel
// Logout 1.0 §2.4, §2.6) as an ID token from the issuer is checked:
// signature with the issuer's keys (verifyJWS), typ logout+jwt when
// present (so an ID token or an access token is not one), iss, aud
// naming the client (azp, when present, the client), iat within
// logoutTokenMaxAge (and idTokenLeeway either way), exp and nbf when
// present, a jti, the back-channel logout event, sid or sub, no nonce.
// Its errors say which rule failed, never a claim's value.
func (h *Handler) verifyLogoutToken(ctx context.Context, md *discovery.Metadata, raw string, now time.Time) (logoutToken, error) {
	t, err := h.verifyJWS(ctx, md, raw)
	if err != nil {
		return logoutToken{}, err
	}
	if typ := t.Header.Typ; typ != "" && !strings.EqualFold(typ, "logout+jwt") && !strings.EqualFold(typ, "application/logout+jwt") {
		return logoutToken{}, errors.New("bff: logout token typ is not logout+jwt")
	}
	var c jose.Claims
	if err := jose.ParseClaims(t.Payload, &c); err != nil {
		return logoutToken{}, err
	}
	x, err := parseLogoutClaims(t.Payload)
	if err != nil {
		return logoutToken{}, err
	}
	var reason string
	switch {
	case c.Issuer != h.cfg.Issuer:
		reason = "iss is not the issuer"
	case !slices.Contains(c.Audience, h.cfg.ClientID):
		reason = "aud does not name this client"
	case x.AZP != nil && *x.AZP != h.cfg.ClientID:
		reason = "azp is another client"
	case !c.IssuedAt.Valid:
		reason = "no iat"
	case c.IssuedAt.Time().After(now.Add(idTokenLeeway)):
		reason = "issued in the future"
	case c.IssuedAt.Time().Before(now.Add(-logoutTokenMaxAge - idTokenLeeway)):
		reason = "issued too long ago"
	case c.ExpiresAt.Valid && !now.Before(c.ExpiresAt.Time().Add(idTokenLeeway)):
		reason = "expired"
	case c.NotBefore.Valid && c.NotBefore.Time().After(now.Add(idTokenLeeway)):
		reason = "not valid yet (nbf)"
	case c.JTI == "":
		reason = "no jti"
	case !x.Event:
		reason = "no back-channel logout event"
	case x.Nonce:
		reason = "a nonce (logout tokens have none)"
	case x.SID != nil && *x.SID == "":
		reason = "an empty sid"
	case x.SID == nil && c.Subject == "":
		reason = "neither sid nor sub"
	}
	if reason != "" {
		return logoutToken{}, errors.New("bff: logout token: " + reason)
	}
	lt := logoutToken{sub: strings.Clone(c.Subject), jti: strings.Clone(c.JTI)}
	if x.SID != nil {
		lt.sid = *x.SID
	}
	return lt, nil
}

// logoutClaims are the members of a logout token's claims set that
// jose.Claims does not read.
type logoutClaims struct {
	// SID is "sid", nil when absent.
	SID *string
	// AZP is "azp", nil when absent.
	AZP *string
	// Nonce reports a "nonce" member, whatever its value (null too).
	Nonce bool
	// Event reports that "events" is an object whose back-channel logout
	// member is an object.
	Event bool
}

// parseLogoutClaims reads a claims set (a JSON object) for logoutClaims,
// as strictly as jose.ParseClaims: RFC 8259 exactly, a duplicate of any
// member it reads (sid, azp, nonce, events, the event) is an error, sid
// and azp must be strings (null is not), events an object and its
// back-channel logout member an object. Other members are skipped.
func parseLogoutClaims(payload []byte) (logoutClaims, error) {
	var c logoutClaims
	var seen uint
	const (
		bSID = 1 << iota
		bAZP
		bNonce
		bEvents
		bEvent
	)
	once := func(bit uint) error {
		if seen&bit != 0 {
			return errDuplicateClaim
		}
		seen |= bit
		return nil
	}
	d := jsonscan.New(string(payload))
	str := func(bit uint, dst **string) error {
		if err := once(bit); err != nil {
			return err
		}
		v, err := d.Str()
		if err == nil {
			*dst = &v
		}
		return err
	}
	err := d.Object(func(name string) error {
		switch name {
		case "sid":
			return str(bSID, &c.SID)
		case "azp":
			return str(bAZP, &c.AZP)
		case "nonce":
			c.Nonce = true
			if err := once(bNonce); err != nil {
				return err
			}
		case "events":
			if err := once(bEvents); err != nil {
				return err
			}
			if d.Peek() != '{' {
				return jsonscan.ErrType
			}
			return d.Object(func(event string) error {
				if event != backchannelEvent {
					return d.Skip()
				}
				if err := once(bEvent); err != nil {
					return err
				}
				if d.Peek() != '{' {
					return jsonscan.ErrType
				}
				c.Event = true
				return d.Skip()
			})
		}
		return d.Skip()
	})
	if err == nil {
		err = d.End()
	}
	if err != nil {
		return logoutClaims{}, fmt.Errorf("bff: logout token claims: %w", err)
	}
	return c, nil
}

// errDuplicateClaim: a claim appears twice in a claims set.
var errDuplicateClaim = errors.New("duplicate member")

// sessionIdentity returns the sub and the sid (each "" when absent or not
// a string) of a session's ID token claims, verified at its login.
func sessionIdentity(claims []byte) (sub, sid string) {
	d := jsonscan.New(string(claims))
	_ = d.Object(func(name string) error {
		if (name == "sub" || name == "sid") && d.Peek() == '"' {
			v, err := d.Str()
			if name == "sub" {
				sub = v
			} else {
				sid = v
			}
			return err
		}
		return d.Skip()
	})
	return sub, sid
}

// index records the session whose store key suffix is member (a hash of
// its id) in the indexes of its sid and its subject, for at least its
// lifetime. Callback calls it before the session is saved: a session
// never exists outside its indexes, while an index entry whose session
// is gone (ended, expired, or never saved) is harmless.
func (h *Handler) index(ctx context.Context, member string, claims []byte) error {
	sub, sid := sessionIdentity(claims)
	ttl := h.cfg.SessionLifetime + indexSlack
	if sid != "" {
		if err := h.cfg.Store.IndexAdd(ctx, h.sidIndexKey(sid), member, ttl); err != nil {
			return err
		}
	}
	if sub != "" {
		if err := h.cfg.Store.IndexAdd(ctx, h.subIndexKey(sub), member, ttl); err != nil {
			return err
		}
	}
	return nil
}

// unindex takes an ended session out of its indexes, best effort: an
// entry left behind expires with its index, and finds nothing meanwhile.
func (h *Handler) unindex(ctx context.Context, member string, claims []byte) {
	if !h.cfg.BackchannelLogout {
		return
	}
	ctx = context.WithoutCancel(ctx)
	sub, sid := sessionIdentity(claims)
	if sid != "" {
		_ = h.cfg.Store.IndexRemove(ctx, h.sidIndexKey(sid), member)
	}
	if sub != "" {
		_ = h.cfg.Store.IndexRemove(ctx, h.subIndexKey(sub), member)
	}
}

// endSessionsOf ends the sessions lt names: those in the index of its sid
// (and, when it has a sub too, of that subject), else those in the index
// of its subject; each is checked against lt once loaded. It returns how
// many it ended. An error (the store) means some may be left: the caller
// answers 503 for a retry.
func (h *Handler) endSessionsOf(ctx context.Context, md *discovery.Metadata, lt logoutToken) (int, error) {
	idx := h.subIndexKey(lt.sub)
	if lt.sid != "" {
		idx = h.sidIndexKey(lt.sid)
	}
	members, err := h.cfg.Store.IndexMembers(ctx, idx)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	ended := 0
	for _, m := range members {
		if !validID(m) {
			continue // not a session key suffix this handler wrote
		}
		done, gone, err := h.endIndexed(ctx, md, m, lt)
		if err != nil {
			return ended, err
		}
		if done {
			ended++
		}
		if gone {
			_ = h.cfg.Store.IndexRemove(ctx, idx, m)
		}
	}
	return ended, nil
}

// endIndexed ends the session under sessionPrefix+member if it matches
// lt: it waits (at most lockTTL) for a refresh in flight, as logout does,
// so that the refresh cannot save the session again; deletes it; takes it
// out of its indexes; and revokes its refresh token, best effort. gone
// reports that no such session is left to end.
func (h *Handler) endIndexed(ctx context.Context, md *discovery.Metadata, member string, lt logoutToken) (done, gone bool, err error) {
	lk := lockPrefix + member
	lctx, cancel := context.WithTimeout(ctx, lockTTL)
	tok := h.waitLock(lctx, lk)
	cancel()
	if tok == "" {
		// Deleting without the lock would let a refresh in flight save
		// the session again after the logout said it ended: 503, and the
		// issuer's retry tries again.
		return false, false, fmt.Errorf("%w: the session's refresh lock was not free within %v", ErrStoreUnavailable, lockTTL)
	}
	unlock := func() {
		if tok != "" {
			_ = h.cfg.Store.Unlock(context.WithoutCancel(ctx), lk, tok)
			tok = ""
		}
	}
	defer unlock()
	key := sessionPrefix + member
	s, err := h.loadSessionKey(ctx, key)
	if errors.Is(err, errNoSession) {
		return false, true, nil
	}
	if err != nil {
		return false, false, err
	}
	sub, sid := sessionIdentity(s.Claims)
	if (lt.sid != "" && sid != lt.sid) || (lt.sub != "" && sub != lt.sub) {
		return false, false, nil
	}
	if err := h.cfg.Store.Delete(ctx, key); err != nil {
		return false, false, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	unlock()
	h.unindex(ctx, member, s.Claims)
	if s.RefreshToken != "" && md.RevocationEndpoint != "" {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), defaultTimeout)
		if err := h.revoke(rctx, md.RevocationEndpoint, s.RefreshToken); err != nil {
			h.logErr(ctx, "bff: back-channel logout: revoking the refresh token", err)
		}
		cancel()
	}
	return true, true, nil
}
