package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// Negative cases of the correctness pass and the invalid scenario.
const (
	negTampered = "tampered-signature"
	negWrongAud = "wrong-aud"
	negWrongIss = "wrong-iss"
	negExpired  = "expired"
	negMissing  = "missing-token"
)

// negatives is their order in reports.
var negatives = []string{negTampered, negWrongAud, negWrongIss, negExpired, negMissing}

// Token lifetimes and pool sizes.
const (
	tokenTTL     = 2 * time.Hour // beyond the longest allowed run
	bearerTokens = 8             // bearer-cached: a small pool, so caches hit
	dpopTokens   = 4
	// forgedSubject is on every request: tokenguard must replace it.
	forgedSubject = "forged-by-client"
)

// credential is a token and the subject it names.
type credential struct {
	Token   string
	Subject string
}

// tokens holds every credential the bench sends. It is built before any
// measurement; the uncached pool grows only between phases.
type tokens struct {
	is        *devissuer.Issuer
	bearer    []credential
	negatives map[string]string // Authorization value by negative case ("" for missing)
	dpop      []dpopCredential
	// uncached are distinct valid tokens; each peer takes them in order
	// from its own cursor, so it never sees one twice.
	uncached []credential
}

type dpopCredential struct {
	credential
	key *ecdsa.PrivateKey
}

// newTokens mints the fixed credentials with is.
func newTokens(is *devissuer.Issuer) (*tokens, error) {
	t := &tokens{is: is, negatives: map[string]string{}}
	for i := range bearerTokens {
		sub := fmt.Sprintf("gw-bearer-%d", i)
		tok, err := is.Mint(loadkit.RouteScope, tokenTTL, map[string]any{"sub": sub})
		if err != nil {
			return nil, err
		}
		t.bearer = append(t.bearer, credential{tok, sub})
	}
	now := time.Now()
	mint := func(extra map[string]any) (string, error) {
		return is.Mint(loadkit.RouteScope, tokenTTL, extra)
	}
	var errs [3]error
	var wrongAud, wrongIss, expired string
	wrongAud, errs[0] = mint(map[string]any{"sub": "gw-wrong-aud", "aud": "https://other-api.example"})
	wrongIss, errs[1] = mint(map[string]any{"sub": "gw-wrong-iss", "iss": "https://other-issuer.example"})
	expired, errs[2] = mint(map[string]any{
		"sub": "gw-expired",
		"iat": now.Add(-20 * time.Minute).Unix(),
		"exp": now.Add(-10 * time.Minute).Unix(), // beyond any leeway
	})
	if err := errors.Join(errs[:]...); err != nil {
		return nil, err
	}
	t.negatives[negTampered] = "Bearer " + loadkit.Tamper(t.bearer[0].Token)
	t.negatives[negWrongAud] = "Bearer " + wrongAud
	t.negatives[negWrongIss] = "Bearer " + wrongIss
	t.negatives[negExpired] = "Bearer " + expired
	t.negatives[negMissing] = ""
	for i := range dpopTokens {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		jkt, err := dpop.Thumbprint(&key.PublicKey)
		if err != nil {
			return nil, err
		}
		sub := fmt.Sprintf("gw-dpop-%d", i)
		tok, err := is.Mint(loadkit.RouteScope, tokenTTL, map[string]any{"sub": sub, "cnf": map[string]any{"jkt": jkt}})
		if err != nil {
			return nil, err
		}
		t.dpop = append(t.dpop, dpopCredential{credential{tok, sub}, key})
	}
	return t, nil
}

// publicKeyPEM returns the issuer's signing key as a PEM public key.
func publicKeyPEM(is *devissuer.Issuer) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(is.SigningKey().Private.Public())
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// mintUncached makes n more distinct valid tokens, on every CPU.
func (t *tokens) mintUncached(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	base := len(t.uncached)
	made := make([]credential, n)
	err := parallel(ctx, n, func(i int) error {
		sub := fmt.Sprintf("gw-uncached-%d", base+i)
		tok, err := t.is.Mint(loadkit.RouteScope, tokenTTL, map[string]any{"sub": sub})
		made[i] = credential{tok, sub}
		return err
	})
	if err != nil {
		return err
	}
	t.uncached = append(t.uncached, made...)
	return nil
}

// newProof makes a fresh DPoP proof for GET RequestPath at base with
// DPoP credential i.
func (t *tokens) newProof(base string, i int) (string, error) {
	c := t.dpop[i]
	return dpop.NewProof(c.key, dpop.ProofParams{
		Method:      http.MethodGet,
		URL:         base + loadkit.RequestPath,
		AccessToken: c.Token,
	})
}

// proof is a DPoP proof for credential cred.
type proof struct {
	cred int
	jwt  string
}

// makeProofs makes n fresh proofs for base, on every CPU.
func (t *tokens) makeProofs(ctx context.Context, base string, n int) ([]proof, error) {
	out := make([]proof, n)
	err := parallel(ctx, n, func(i int) error {
		cred := i % len(t.dpop)
		jwt, err := t.newProof(base, cred)
		out[i] = proof{cred, jwt}
		return err
	})
	return out, err
}

// parallel runs f(0..n-1) on every CPU and returns the first errors.
func parallel(ctx context.Context, n int, f func(i int) error) error {
	var (
		wg   sync.WaitGroup
		next atomic.Int64
		errs = make([]error, runtime.NumCPU())
	)
	for g := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}
