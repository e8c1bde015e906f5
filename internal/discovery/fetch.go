package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Well-known suffixes: RFC 8414 §3 and OpenID Connect Discovery 1.0 §4.
const (
	wellKnownOAuth = "/.well-known/oauth-authorization-server"
	wellKnownOIDC  = "/.well-known/openid-configuration"
)

// metadataURLs returns the RFC 8414 and the OpenID Connect metadata URLs
// of issuer, in the order they are tried. issuer must have passed
// checkIssuer.
func metadataURLs(issuer string) [2]string {
	u, _ := url.Parse(issuer) // checked by checkIssuer
	// RFC 8414 §3.1: the well-known segment goes between the host and the
	// path, after removing any terminating "/" from the path.
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	oauth := u.Scheme + "://" + u.Host + wellKnownOAuth + path
	// OIDC Discovery §4.1: appended to the issuer, trailing "/" removed.
	oidc := strings.TrimSuffix(issuer, "/") + wellKnownOIDC
	return [2]string{oauth, oidc}
}

// Fetch retrieves and validates the metadata of cfg.Issuer, trying the RFC
// 8414 location first and the OpenID Connect one second (see the package
// documentation). It returns a configuration error (naming the field), or
// an error matching [ErrUnavailable], [ErrInvalid] or [ErrIssuerMismatch].
// ctx and cfg.Timeout bound the whole call.
func Fetch(ctx context.Context, cfg Config) (*Metadata, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	client := c.HTTPClient
	if client == nil {
		var tr *http.Transport
		client, tr = defaultClient(nil, c.InsecureAllowHTTP, c.WrapTransport)
		defer tr.CloseIdleConnections()
	}
	return fetch(ctx, &c, client)
}

// fetch is Fetch after validation, with the client to use.
func fetch(ctx context.Context, c *Config, client *http.Client) (*Metadata, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	urls := metadataURLs(c.Issuer)
	md, first := fetchOne(ctx, c, client, urls[0])
	if first == nil {
		return md, nil
	}
	if errors.Is(first, ErrIssuerMismatch) || ctx.Err() != nil {
		return nil, first
	}
	md, err := fetchOne(ctx, c, client, urls[1])
	if err == nil {
		return md, nil
	}
	return nil, fmt.Errorf("%w (before that, RFC 8414 location: %w)", err, first)
}

// fetchOne retrieves and parses the document at u.
func fetchOne(ctx context.Context, c *Config, client *http.Client, u string) (*Metadata, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: building the request for %s: %w", ErrUnavailable, u, err)
	}
	req.Header.Set("Accept", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4<<10)) // lets a short error page's connection be reused
		return nil, fmt.Errorf("%w: %s answered HTTP status %d", ErrUnavailable, u, res.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, c.MaxBodySize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: reading the body from %s: %w", ErrUnavailable, u, err)
	}
	if int64(len(body)) > c.MaxBodySize {
		return nil, invalid("document from %s is larger than MaxBodySize (%d bytes)", u, c.MaxBodySize)
	}
	md, err := parseMetadata(body, c.Issuer, c.InsecureAllowHTTP)
	if err != nil {
		return nil, fmt.Errorf("%w (from %s)", err, u)
	}
	md.Source = u
	if res.Request != nil && res.Request.URL != nil {
		md.Source = res.Request.URL.Redacted()
	}
	return md, nil
}
