package main

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
)

// want is the correct outcome of one request.
type want struct {
	// accept: the request must reach the upstream and get its 200;
	// otherwise it must be refused with one of refuse and not reach it.
	accept bool
	// subject, when accepting, is the identity the upstream must have
	// seen in loadkit.IdentityHeader ("" means not checked).
	subject string
	refuse  []int
}

// check compares a response with w; a non-nil error is a wrong decision.
// Messages name statuses and subjects, never tokens.
func (w want) check(status int, h http.Header) error {
	reached := h.Get(loadkit.UpstreamMark) != ""
	if w.accept {
		switch {
		case !reached:
			return fmt.Errorf("status %d without reaching the upstream, want it forwarded", status)
		case status != http.StatusOK:
			return fmt.Errorf("status %d, want 200", status)
		case w.subject != "" && h.Get(loadkit.SubjectEcho) != w.subject:
			return fmt.Errorf("upstream saw subject %q, want %q", h.Get(loadkit.SubjectEcho), w.subject)
		}
		return nil
	}
	switch {
	case reached:
		return fmt.Errorf("reached the upstream (status %d), want refused before it", status)
	case !slices.Contains(w.refuse, status):
		return fmt.Errorf("status %d, want one of %v", status, w.refuse)
	}
	return nil
}

// errLetThrough marks a refusal check that failed because the peer
// forwarded the request: it cannot check that case.
var errLetThrough = errors.New("forwarded to the upstream")

// classify turns the result of a negative case into: refused (nil), let
// through (errLetThrough: the peer cannot check it), or another wrong
// answer (e.g. a 500: a broken peer, not a missing check).
func classify(status int, h http.Header, refuse []int) error {
	if h.Get(loadkit.UpstreamMark) != "" {
		return errLetThrough
	}
	if !slices.Contains(refuse, status) {
		return fmt.Errorf("status %d, want one of %v", status, refuse)
	}
	return nil
}
