package bff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tokenguard/tokenguard/internal/discovery"
)

// Bounds on the answer of a pushed authorization request endpoint.
const (
	maxPARAnswer  = 16 << 10
	maxRequestURI = 2048
)

// errPARUnavailable marks a push that could not be made or that the
// authorization server failed (5xx): 503, for the user to try again. Any
// other failed push is the server's refusal or a malformed answer: 502.
var errPARUnavailable = errors.New("bff: the pushed authorization request endpoint is unavailable")

// usePAR decides whether this login pushes its authorization request
// (Config.PAR against the server's metadata), or why it cannot go on.
func (h *Handler) usePAR(md *discovery.Metadata) (bool, error) {
	switch h.cfg.PAR {
	case PARRequired:
		if md.PAREndpoint == "" {
			return false, errors.New("bff: PAR is required (Config.PAR) but the issuer's metadata has no pushed_authorization_request_endpoint")
		}
		return true, nil
	case PAROff:
		if md.RequirePAR {
			return false, errors.New("bff: the issuer requires pushed authorization requests (require_pushed_authorization_requests) but Config.PAR is off")
		}
		return false, nil
	default: // PARAuto
		if md.RequirePAR && md.PAREndpoint == "" {
			return false, errors.New("bff: the issuer requires pushed authorization requests but its metadata has no pushed_authorization_request_endpoint")
		}
		return md.PAREndpoint != "", nil
	}
}

// pushAuthorization pushes the authorization request's parameters to
// endpoint (RFC 9126 §2.1), authenticating the client as at the token
// endpoint, and returns the request_uri the server answers 201 with.
// Anything else is an error, wrapping errPARUnavailable when the server
// could not be reached or failed.
func (h *Handler) pushAuthorization(ctx context.Context, endpoint string, params url.Values) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, defaultTimeout)
	defer cancel()
	resp, err := h.postForm(ctx, endpoint, params)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errPARUnavailable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPARAnswer+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: reading the answer: %w", errPARUnavailable, err)
	case resp.StatusCode >= 500:
		return "", fmt.Errorf("%w: it answered %d", errPARUnavailable, resp.StatusCode)
	case len(body) > maxPARAnswer:
		return "", fmt.Errorf("bff: the pushed authorization request endpoint answered more than %d bytes", maxPARAnswer)
	case resp.StatusCode != http.StatusCreated:
		var e struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(body, &e)
		return "", fmt.Errorf("bff: the pushed authorization request endpoint answered %d, not 201 (error %s)", resp.StatusCode, errorCode(e.Error))
	}
	var out struct {
		RequestURI json.RawMessage `json:"request_uri"`
		ExpiresIn  json.RawMessage `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return "", errors.New("bff: the pushed authorization request endpoint's answer is not a JSON object")
	}
	var uri string
	if len(out.RequestURI) == 0 || out.RequestURI[0] != '"' || json.Unmarshal(out.RequestURI, &uri) != nil || !validRequestURI(uri) {
		return "", errors.New("bff: the pushed authorization request endpoint's answer has no usable request_uri (a non-empty string of printable ASCII, at most 2048 bytes)")
	}
	// expires_in is REQUIRED (RFC 9126 §2.2): a positive number.
	var expires float64
	if json.Unmarshal(out.ExpiresIn, &expires) != nil || expires <= 0 {
		return "", errors.New("bff: the pushed authorization request endpoint's answer has no positive expires_in")
	}
	return uri, nil
}

// validRequestURI reports whether s can be a request_uri: not empty,
// bounded, printable ASCII without spaces.
func validRequestURI(s string) bool {
	if s == "" || len(s) > maxRequestURI {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// errorCode quotes an OAuth error code from a server for a log line; one
// outside RFC 6749's error charset, or long, is not repeated.
func errorCode(s string) string {
	if s == "" {
		return "none"
	}
	if len(s) > 64 {
		return "(too long)"
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return "(not printable)"
		}
	}
	return strconv.Quote(s)
}

// withQuery appends params to endpoint's query, as x/oauth2 builds an
// authorization URL: an endpoint may carry a query of its own.
func withQuery(endpoint string, params url.Values) string {
	sep := "?"
	if strings.Contains(endpoint, "?") {
		sep = "&"
	}
	return endpoint + sep + params.Encode()
}
