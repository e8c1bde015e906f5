package bff

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tokenguard/tokenguard/internal/clientauth"
)

// defaultTimeout bounds every exchange with the authorization server.
const defaultTimeout = 10 * time.Second

// clientFor returns the client that talks to the authorization server:
// base (or a default one) whose transport completes every form POST
// (the token and revocation requests) with what x/oauth2 cannot add by
// itself: a private_key_jwt client assertion, and the RFC 8707 resource
// at a refresh.
func (h *Handler) clientFor(base *http.Client) *http.Client {
	c := &http.Client{Timeout: defaultTimeout, CheckRedirect: noDowngrade}
	if base != nil {
		cp := *base
		c = &cp
	}
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = &formTransport{h: h, next: next}
	return c
}

// noDowngrade follows at most 5 redirects, never from https to http.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("bff: too many redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return errors.New("bff: refusing a redirect from https to http")
	}
	return nil
}

type formTransport struct {
	h    *Handler
	next http.RoundTripper
}

// maxFormSize bounds a form this transport rewrites; the handler's own
// forms are far smaller.
const maxFormSize = 64 << 10

func (t *formTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ct, _, _ := mime.ParseMediaType(req.Header.Get("Content-Type"))
	if req.Method != http.MethodPost || ct != "application/x-www-form-urlencoded" || req.Body == nil {
		return t.next.RoundTrip(req)
	}
	cfg := &t.h.cfg
	if cfg.ClientAuthMethod != PrivateKeyJWT && cfg.Resource == "" {
		return t.next.RoundTrip(req)
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxFormSize+1))
	_ = req.Body.Close()
	if err != nil || len(body) > maxFormSize {
		return nil, fmt.Errorf("bff: reading the form to send: %w", errors.Join(err, errors.New("form too large")))
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, err
	}
	if cfg.Resource != "" && form.Get("grant_type") == "refresh_token" && !form.Has("resource") {
		form.Set("resource", cfg.Resource)
	}
	if cfg.ClientAuthMethod == PrivateKeyJWT {
		alg, err := clientauth.Algorithm(cfg.ClientKey.Public(), cfg.ClientKeyAlgorithm)
		if err != nil {
			return nil, err
		}
		endpoint := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
		a, err := clientauth.Assertion(cfg.ClientKey, alg, cfg.ClientKeyID, cfg.ClientID, []string{cfg.Issuer, endpoint}, cfg.Now())
		if err != nil {
			return nil, err
		}
		form.Del("client_secret")
		form.Set("client_id", cfg.ClientID)
		form.Set("client_assertion_type", clientauth.AssertionType)
		form.Set("client_assertion", a)
	}
	enc := form.Encode()
	out := req.Clone(req.Context())
	out.Body = io.NopCloser(strings.NewReader(enc))
	out.ContentLength = int64(len(enc))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(enc)), nil }
	return t.next.RoundTrip(out)
}

// revoke revokes a refresh token at the revocation endpoint (RFC 7009),
// authenticating as at the token endpoint.
func (h *Handler) revoke(ctx context.Context, endpoint, token string) error {
	form := url.Values{"token": {token}, "token_type_hint": {"refresh_token"}}
	if h.cfg.ClientAuthMethod == ClientSecretPost {
		form.Set("client_id", h.cfg.ClientID)
		form.Set("client_secret", h.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewBufferString(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if h.cfg.ClientAuthMethod == ClientSecretBasic {
		clientauth.BasicAuth(req, h.cfg.ClientID, h.cfg.ClientSecret)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("bff: revocation endpoint answered %d", resp.StatusCode)
	}
	return nil
}
