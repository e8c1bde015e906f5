package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/tokenguard/tokenguard/bff"
	"github.com/tokenguard/tokenguard/dpop/redisstore"
	"github.com/tokenguard/tokenguard/internal/keyfile"
	"github.com/tokenguard/tokenguard/middleware"
)

// errOffline is what every outbound request made during check gets.
var errOffline = errors.New("tokenguard check makes no network requests")

type offlineTransport struct{}

func (offlineTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, errOffline }

// checkOffline runs the checks startGateway runs after loading: the
// client key files, the Redis URLs as the client parses them,
// middleware.New's and bff.New's validation and every route's policy. middleware.New gets a client that
// refuses every request and does not wait for keys, so nothing leaves the
// machine.
func (c *config) checkOffline() error {
	discard := slog.New(slog.DiscardHandler)
	mc := c.guardConfig(discard, nil)
	mc.HTTPClient = &http.Client{Transport: offlineTransport{}}
	mc.StartupWait = -1
	if err := c.loadIssuerKeys(&mc); err != nil {
		return err
	}
	if c.ReplayStore == "" {
		mc.DPoP.ReplayKeyQuota = c.ReplayKeyQuota // the guard's own memory store checks it
	} else {
		s, err := redisstore.NewFromURL(c.ReplayStore, redisstore.Options{KeyQuota: c.ReplayKeyQuota})
		if err != nil {
			return c.replayStoreError(err)
		}
		defer s.Close()
		mc.DPoP.ReplayStore = s
	}
	guard, err := middleware.New(context.Background(), mc)
	if err != nil {
		return c.guardError(err)
	}
	defer guard.Close()
	// bff.New does no I/O either: metadata is read at the first login.
	store, err := c.openSessionStore()
	if err != nil {
		return err
	}
	var bs bff.Store
	if store != nil {
		defer store.Close()
		bs = store
	}
	th, err := c.newBFF(discard, nil, bs, nil)
	if err != nil {
		return err
	}
	if th != nil {
		defer th.Close()
	}
	_, err = newProxyHandler(c, guard, th, http.NotFoundHandler(), discard)
	return err
}

// loadIssuerKeys reads each issuer's client_key_file (private_key_jwt) into
// mc. Its errors name the key's line.
func (c *config) loadIssuerKeys(mc *middleware.Config) error {
	for i, is := range c.Issuers {
		if is.ClientKeyFile == "" {
			continue
		}
		key, err := keyfile.ReadPrivateKey(is.ClientKeyFile)
		if err != nil {
			p, _ := c.keyFor(fmt.Sprintf("Issuers[%d].IntrospectionKey", i))
			return &ConfigError{File: c.File, Err: err, Fields: []*FieldError{{Line: p.Line, Key: p.Key, Msg: err.Error()}}}
		}
		mc.Issuers[i].IntrospectionKey = key
	}
	return nil
}
