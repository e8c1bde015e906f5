package bff

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Store key prefixes: a session, a session's refresh lock, a completed
// login's state (used once).
const (
	sessionPrefix = "s/"
	lockPrefix    = "l/"
	usedPrefix    = "u/"
)

// session is what the store keeps for one browser session. Times are Unix
// seconds.
type session struct {
	Created  int64
	LastUsed int64
	// Expires is the end of the session's lifetime (Created +
	// SessionLifetime); the idle timeout ends it earlier.
	Expires int64

	AccessToken  string
	AccessExpiry int64 // 0: unknown
	AccessIssued int64
	RefreshToken string
	IDToken      string
	// Claims are the verified ID token's claims (a JSON object), as /user
	// returns them.
	Claims json.RawMessage
	// DPoPKey is the P-256 private scalar (32 bytes) the session's tokens
	// are bound to (Config.DPoP); nil for a session of Bearer tokens. It
	// is as secret as the refresh token, and kept like it.
	DPoPKey []byte
}

// The first byte of an encoded session. The encoding is binary, not
// JSON: a session is decoded on every request it authenticates, and JSON
// made that the larger part of the request's cost (BenchmarkRequest).
const (
	// sessionFormat: a session of Bearer tokens.
	sessionFormat = 1
	// sessionFormatDPoP: sessionFormat followed by one more
	// length-prefixed byte string, the DPoP key. Only a session with a
	// key is written so, so replicas that predate it still read every
	// other session during a rolling upgrade.
	sessionFormatDPoP = 2
)

// marshal encodes s: the format byte, five varints (Created, LastUsed,
// Expires, AccessExpiry, AccessIssued), then four length-prefixed byte
// strings (access, refresh and ID token, claims) and, in
// sessionFormatDPoP, a fifth (the DPoP key).
func (s *session) marshal() []byte {
	b := make([]byte, 0, 1+5*binary.MaxVarintLen64+5*binary.MaxVarintLen32+len(s.AccessToken)+len(s.RefreshToken)+len(s.IDToken)+len(s.Claims)+len(s.DPoPKey))
	fields := [...]string{s.AccessToken, s.RefreshToken, s.IDToken, string(s.Claims), string(s.DPoPKey)}
	n := len(fields)
	if len(s.DPoPKey) == 0 {
		b = append(b, sessionFormat)
		n--
	} else {
		b = append(b, sessionFormatDPoP)
	}
	for _, v := range [...]int64{s.Created, s.LastUsed, s.Expires, s.AccessExpiry, s.AccessIssued} {
		b = binary.AppendVarint(b, v)
	}
	for _, f := range fields[:n] {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

var errSessionEncoding = errors.New("bff: malformed session encoding")

// unmarshal decodes what marshal made; anything else is an error.
func (s *session) unmarshal(b []byte) error {
	if len(b) == 0 || (b[0] != sessionFormat && b[0] != sessionFormatDPoP) {
		return errSessionEncoding
	}
	format := b[0]
	b = b[1:]
	for _, v := range [...]*int64{&s.Created, &s.LastUsed, &s.Expires, &s.AccessExpiry, &s.AccessIssued} {
		x, n := binary.Varint(b)
		if n <= 0 {
			return errSessionEncoding
		}
		*v, b = x, b[n:]
	}
	var claims, key string
	fields := [...]*string{&s.AccessToken, &s.RefreshToken, &s.IDToken, &claims, &key}
	n := len(fields)
	if format == sessionFormat {
		n--
	}
	for _, f := range fields[:n] {
		l, n := binary.Uvarint(b)
		if n <= 0 || l > uint64(len(b)-n) {
			return errSessionEncoding
		}
		*f, b = string(b[n:n+int(l)]), b[n+int(l):]
	}
	if len(b) != 0 || (format == sessionFormatDPoP && len(key) != 32) {
		return errSessionEncoding
	}
	s.Claims = json.RawMessage(claims)
	if format == sessionFormatDPoP {
		s.DPoPKey = []byte(key)
	}
	return nil
}

// idleExpires is when the session ends if it is not used again.
func (s *session) idleExpires(idle time.Duration) int64 {
	return min(s.LastUsed+int64(idle/time.Second), s.Expires)
}

// ttl is how long the store keeps it from now.
func (s *session) ttl(now time.Time, idle time.Duration) time.Duration {
	return time.Unix(s.idleExpires(idle), 0).Sub(now)
}

// sessionKey is the store key of a session id: a hash, so the store (a
// Redis an operator can read, a dump) never holds a usable cookie.
func sessionKey(id string) string { return sessionPrefix + hashID(id) }

func hashID(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// validID reports whether s looks like an id this handler made: 43
// base64url characters (256 bits). Anything else is not looked up.
func validID(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(s)
	return err == nil
}

// errNoSession: the cookie names no live session (never made, logged out,
// expired, or an entry that does not open).
var errNoSession = errors.New("bff: no such session")

// loadSession reads and opens the session under id.
func (h *Handler) loadSession(ctx context.Context, id string) (*session, error) {
	return h.loadSessionKey(ctx, sessionKey(id))
}

// loadSessionKey reads and opens the session under store key key.
func (h *Handler) loadSessionKey(ctx context.Context, key string) (*session, error) {
	raw, err := h.cfg.Store.Get(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	plain, err := h.seal.open(raw, key)
	if err != nil {
		h.logErr(ctx, "bff: a stored session does not open; treating it as absent", err)
		return nil, errNoSession
	}
	var s session
	if err := s.unmarshal(plain); err != nil {
		h.logErr(ctx, "bff: a stored session does not decode; treating it as absent", err)
		return nil, errNoSession
	}
	now := h.cfg.Now()
	if s.ttl(now, h.cfg.SessionIdleTimeout) <= 0 {
		return nil, errNoSession
	}
	return &s, nil
}

// saveSession writes s under id, for as long as it may still live.
func (h *Handler) saveSession(ctx context.Context, id string, s *session) error {
	ttl := s.ttl(h.cfg.Now(), h.cfg.SessionIdleTimeout)
	if ttl <= 0 {
		return errNoSession
	}
	plain := s.marshal()
	key := sessionKey(id)
	return h.cfg.Store.Set(ctx, key, h.seal.seal(plain, key), ttl)
}

// sessionID returns the session cookie's value when it is well formed.
func sessionID(r *http.Request) (string, bool) {
	for _, c := range r.CookiesNamed(SessionCookie) {
		if validID(c.Value) {
			return c.Value, true
		}
	}
	return "", false
}

// ourCookies reports, in one pass over r's cookies, whether it carries
// the session cookie (well formed or not) and any login cookie.
func ourCookies(r *http.Request) (session, login bool) {
	for _, c := range r.Cookies() {
		switch {
		case c.Name == SessionCookie:
			session = true
		case strings.HasPrefix(c.Name, LoginCookiePrefix):
			login = true
		}
	}
	return session, login
}

// setSessionCookie gives the browser its session id. No Max-Age: the
// cookie lives for the browser session, the server decides expiry.
func setSessionCookie(w http.ResponseWriter, id string) {
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: id, Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// expireCookie tells the browser to drop a cookie.
func expireCookie(w http.ResponseWriter, name string, sameSite http.SameSite) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: sameSite,
	})
}
