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
// (the token, revocation and pushed authorization requests) with what
// x/oauth2 cannot add by itself: a private_key_jwt client assertion, the
// RFC 8707 resource at a refresh, and for a token request whose context
// carries a session's DPoP key (withDPoPKey) a DPoP proof, sent again
// once with the server's nonce when it demands one.
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

// noDowngrade follows at most 5 redirects, never from https to http,
// and never of a POST: the token, revocation and pushed authorization
// requests carry the client's credentials (in the body with
// client_secret_post, or a client assertion), which a 307 or 308 would
// send again to wherever it points. Authorization servers answer these
// requests themselves.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("bff: too many redirects")
	}
	if via[0].Method == http.MethodPost {
		return errors.New("bff: refusing to follow a redirect of a request to the authorization server that carries the client's credentials")
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
	key := dpopKeyFrom(req.Context())
	if cfg.ClientAuthMethod != PrivateKeyJWT && cfg.Resource == "" && key == nil {
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
	endpoint := req.URL.Scheme + "://" + req.URL.Host + req.URL.EscapedPath()
	// send sends the form once: a client assertion and a proof are each
	// used once, so a retry gets new ones.
	send := func(nonce string) (*http.Response, error) {
		if cfg.ClientAuthMethod == PrivateKeyJWT {
			alg, err := clientauth.Algorithm(cfg.ClientKey.Public(), cfg.ClientKeyAlgorithm)
			if err != nil {
				return nil, err
			}
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
		if key != nil {
			proof, err := newProof(key, http.MethodPost, endpoint, "", nonce)
			if err != nil {
				return nil, err
			}
			out.Header.Set("DPoP", proof)
		}
		return t.next.RoundTrip(out)
	}
	if key == nil {
		return send("")
	}
	resp, err := send(t.h.asNonce())
	if err != nil {
		return nil, err
	}
	t.h.learnNonce(resp)
	if !wantsNonce(resp) {
		return resp, nil
	}
	// RFC 9449 §8: one retry with the nonce it demands. A second demand
	// goes back to the caller as the refusal it is, never a loop.
	_ = resp.Body.Close()
	if resp, err = send(t.h.asNonce()); err != nil {
		return nil, err
	}
	t.h.learnNonce(resp)
	return resp, nil
}

// postForm sends form to one of the authorization server's endpoints
// other than the token endpoint (revocation, pushed authorization
// requests), authenticating the client as at the token endpoint:
// client_secret_basic and client_secret_post here, private_key_jwt by
// formTransport. The caller reads and closes the body.
func (h *Handler) postForm(ctx context.Context, endpoint string, form url.Values) (*http.Response, error) {
	if h.cfg.ClientAuthMethod == ClientSecretPost {
		form.Set("client_id", h.cfg.ClientID)
		form.Set("client_secret", h.cfg.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewBufferString(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if h.cfg.ClientAuthMethod == ClientSecretBasic {
		clientauth.BasicAuth(req, h.cfg.ClientID, h.cfg.ClientSecret)
	}
	return h.client.Do(req)
}

// revoke revokes a refresh token at the revocation endpoint (RFC 7009),
// authenticating as at the token endpoint. It carries no DPoP proof:
// RFC 9449 asks for none there, and a confidential client's refresh
// token is bound to its client authentication, not to the key.
func (h *Handler) revoke(ctx context.Context, endpoint, token string) error {
	resp, err := h.postForm(ctx, endpoint, url.Values{"token": {token}, "token_type_hint": {"refresh_token"}})
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
