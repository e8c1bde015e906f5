package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/dpop/redisstore"
	"github.com/tokenguard/tokenguard/internal/keyfile"
	"github.com/tokenguard/tokenguard/middleware"
)

// errOffline is what every outbound request made during check gets.
var errOffline = errors.New("tokenguard check makes no network requests")

type offlineTransport struct{}

func (offlineTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, errOffline }

// checkOffline runs the checks New runs after loading: the client key
// files, the Redis URLs as the client parses them, middleware.New's and
// bff.New's validation and every route's policy, and reports every
// mistake they find together, as one *ConfigError in line order. A step
// that fails does not stop the others: with a bad replay_store URL the
// guard is still checked (on the memory store), and so on.
// middleware.New gets a client that refuses every request and does not
// wait for keys, so nothing leaves the machine.
//
// found are the mistakes the file's own checks found (parseConfigEnv),
// which the caller reports with these; nil for a valid file. With some,
// the config is partial, and the steps that would only find them again,
// or that need what a mistake left out, are skipped: the token handler
// when public_url (which it needs, and whose absence with a bff block is
// one) or the bff block had one (bff.New's errors name the block, not the
// key, so they cannot be told apart from the file's), and
// the proxy step, whose routes and policies validate has checked already
// (what only it finds, a route on the metadata path, shows once the
// file's mistakes are fixed).
func (c *config) checkOffline(found []*FieldError) error {
	partial := len(found) > 0
	bffFound := slices.ContainsFunc(found, func(f *FieldError) bool {
		return f.Key == "public_url" || f.Key == "bff" || strings.HasPrefix(f.Key, "bff.")
	})
	var errs []error
	discard := slog.New(slog.DiscardHandler)
	mc := c.guardConfig(discard, nil)
	mc.HTTPClient = &http.Client{Transport: offlineTransport{}}
	mc.StartupWait = -1
	errs = append(errs, c.loadIssuerKeys(&mc))
	if c.ReplayStore == "" {
		mc.DPoP.ReplayKeyQuota = c.ReplayKeyQuota // the guard's own memory store checks it
	} else if s, err := redisstore.NewFromURL(c.ReplayStore, redisstore.Options{KeyQuota: c.ReplayKeyQuota}); err != nil {
		errs = append(errs, c.replayStoreError(err))
	} else {
		defer s.Close()
		mc.DPoP.ReplayStore = s
	}
	guard, err := middleware.New(context.Background(), mc)
	if err != nil {
		errs = append(errs, c.guardError(err))
	} else {
		defer guard.Close()
	}
	// bff.New does no I/O either: metadata is read at the first login.
	var bs bff.Store
	if store, err := c.openSessionStore(); err != nil {
		errs = append(errs, err)
	} else if store != nil {
		defer store.Close()
		bs = store
	}
	var th *bff.Handler
	if !bffFound {
		if th, err = c.newBFF(discard, nil, bs, nil, nil); err != nil {
			errs = append(errs, err)
		} else if th != nil {
			defer th.Close()
		}
	}
	if guard != nil && !partial {
		if _, err := newProxyHandler(c, guard, th, http.NotFoundHandler(), discard); err != nil {
			errs = append(errs, err)
		}
	}
	return c.joinErrors(errs)
}

// joinErrors merges the errors of several checks into one *ConfigError,
// their fields in line order without repeats; nil if there are none.
func (c *config) joinErrors(errs []error) error {
	ce := &ConfigError{File: c.File}
	var causes []error
	reported := map[int]bool{} // lines an earlier check reported
	for _, err := range errs {
		if err == nil {
			continue
		}
		causes = append(causes, err)
		var e *ConfigError
		if !errors.As(err, &e) {
			ce.Fields = append(ce.Fields, &FieldError{Msg: err.Error()})
			continue
		}
		var lines []int
		for _, f := range e.Fields {
			// A later check's error on a line already reported is the
			// same mistake seen again (a key file that did not load is
			// then missing to the guard).
			if f.Line == 0 || !reported[f.Line] {
				ce.Fields = append(ce.Fields, f)
				lines = append(lines, f.Line)
			}
		}
		for _, l := range lines {
			reported[l] = true
		}
	}
	switch len(causes) {
	case 0:
		return nil
	case 1:
		ce.Err = causes[0]
		var e *ConfigError
		if errors.As(causes[0], &e) {
			ce.Err = e.Err
		}
	default:
		ce.Err = errors.Join(causes...)
	}
	slices.SortStableFunc(ce.Fields, func(a, b *FieldError) int { return a.Line - b.Line })
	return ce
}

// loadIssuerKeys reads each issuer's client_key_file (private_key_jwt) into
// mc. Its errors name the key's line.
func (c *config) loadIssuerKeys(mc *middleware.Config) error {
	ce := &ConfigError{File: c.File}
	for i, is := range c.Issuers {
		if is.ClientKeyFile == "" {
			continue
		}
		key, err := keyfile.ReadPrivateKey(is.ClientKeyFile)
		if err != nil {
			p, _ := c.keyFor(fmt.Sprintf("Issuers[%d].IntrospectionKey", i))
			ce.Fields = append(ce.Fields, &FieldError{Line: p.Line, Key: p.Key, Msg: err.Error()})
			ce.Err = errors.Join(ce.Err, err)
			continue
		}
		mc.Issuers[i].IntrospectionKey = key
	}
	if len(ce.Fields) > 0 {
		return ce
	}
	return nil
}
