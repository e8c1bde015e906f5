package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/tokenguard/bench/internal/loadkit"
	"github.com/tokenguard/tokenguard/dpop"
	"github.com/tokenguard/tokenguard/internal/devissuer"
)

// Request shapes and what the upstream echoes back. The upstream copies
// the X-Tokenguard-Subject it received into subjectEcho and sets
// upstreamMark, so the client can tell which requests reached it and as
// whom.
const (
	requestPath     = loadkit.RequestPath
	routeScope      = loadkit.RouteScope
	upstreamMark    = loadkit.UpstreamMark
	subjectEcho     = loadkit.SubjectEcho
	identityHdr     = loadkit.IdentityHeader
	gatewayAudience = loadkit.GatewayAudience
	forgedSubject   = "forged-by-client" // every request carries it: the gateway must replace it
)

// class is a request mix measured as one phase.
type class int

const (
	classBearer  class = iota // valid Bearer tokens from a small pool, so the gateway's token cache hits
	classDPoP                 // DPoP-bound tokens, a fresh proof per request
	classInvalid              // credentials the gateway must refuse with 401
	classMixed                // mixWeights of the above
	numClasses
)

func (c class) String() string {
	switch c {
	case classBearer:
		return "cached Bearer"
	case classDPoP:
		return "DPoP, fresh proof"
	case classInvalid:
		return "invalid"
	case classMixed:
		return "mixed 70/20/10"
	}
	return fmt.Sprintf("class(%d)", int(c))
}

// variant is the shape of one request.
type variant int

const (
	vBearer        variant = iota // a valid token from the Bearer pool
	vDPoP                         // a DPoP-bound token with a fresh proof
	vMissing                      // no Authorization header
	vTampered                     // a valid token with one signature character changed
	vExpired                      // correctly signed, expired ten minutes ago
	vBoundAsBearer                // a DPoP-bound token sent as Bearer (RFC 9449 §7.1)
	vReplayed                     // a proof the gateway has already accepted, sent again
	numVariants
)

func (v variant) String() string {
	return [...]string{"bearer", "dpop", "missing", "tampered", "expired", "bound-as-bearer", "replayed"}[v]
}

// invalidVariants are drawn uniformly for classInvalid and the invalid
// share of classMixed.
var invalidVariants = [...]variant{vMissing, vTampered, vExpired, vBoundAsBearer, vReplayed}

// Mixed traffic, in percent: cached Bearer, DPoP, invalid.
const (
	mixBearer = 70
	mixDPoP   = 20
)

// pick draws the variant of the next request of class c.
func pick(c class, rng *mrand.Rand) variant {
	switch c {
	case classBearer:
		return vBearer
	case classDPoP:
		return vDPoP
	case classInvalid:
		return invalidVariants[rng.IntN(len(invalidVariants))]
	}
	switch r := rng.IntN(100); {
	case r < mixBearer:
		return vBearer
	case r < mixBearer+mixDPoP:
		return vDPoP
	}
	return invalidVariants[rng.IntN(len(invalidVariants))]
}

// targetKind says whether a target authenticates.
type targetKind int

const (
	kindBare    targetKind = iota // httputil.ReverseProxy: forwards everything
	kindGateway                   // tokenguard: forwards only what it verified
)

// expectation is the correct outcome of one request.
type expectation struct {
	Status   int
	Upstream bool   // the request must reach the upstream (and must not when false)
	Subject  string // the X-Tokenguard-Subject the upstream must have seen, when Upstream
}

// expect returns the correct outcome of a request of variant v whose
// token names subject. The bare proxy forwards everything unchanged,
// including the client's forged identity header; the gateway forwards
// valid requests with the token's subject in place of the forged one and
// answers everything else with 401 itself.
func expect(k targetKind, v variant, subject string) expectation {
	if k == kindBare {
		return expectation{Status: http.StatusOK, Upstream: true, Subject: forgedSubject}
	}
	switch v {
	case vBearer, vDPoP:
		return expectation{Status: http.StatusOK, Upstream: true, Subject: subject}
	}
	return expectation{Status: http.StatusUnauthorized}
}

// check compares a response with the expectation; a non-nil error is a
// wrong decision. Messages name statuses and subjects, never tokens.
func (e expectation) check(status int, h http.Header) error {
	reached := h.Get(upstreamMark) != ""
	switch {
	case status != e.Status:
		return fmt.Errorf("status %d, want %d", status, e.Status)
	case reached != e.Upstream:
		if reached {
			return errors.New("reached the upstream, want refused before it")
		}
		return errors.New("did not reach the upstream")
	case e.Upstream && h.Get(subjectEcho) != e.Subject:
		return fmt.Errorf("upstream saw subject %q, want %q", h.Get(subjectEcho), e.Subject)
	}
	return nil
}

// credential is a token and the subject it names.
type credential struct {
	Token   string
	Subject string
}

// dpopCredential is a DPoP-bound token with its proof key.
type dpopCredential struct {
	credential
	Key *ecdsa.PrivateKey
}

// Pool sizes: enough distinct tokens that a cache keyed wrongly would
// hand one token's subject to another (and a check would catch it),
// few enough that every one stays cached.
const (
	bearerTokens = 8
	dpopTokens   = 4
	tokenTTL     = 2 * time.Hour // beyond the longest allowed run
)

// workload holds every credential and proof the load generator sends.
// It is built before any measurement and then only read, except for the
// proof pool and the spent proofs, which have their own synchronisation.
type workload struct {
	gatewayURL string // the gateway's public_url: base of every proof's htu

	bearer        []credential
	dpop          []dpopCredential
	expired       credential
	tampered      credential
	boundAsBearer credential // dpop[0]'s token, sent as Bearer

	shapeProofs []string // proofs for the bare proxy, which ignores them: reused freely
	pool        proofPool
	spent       spentProofs
}

// newWorkload mints the tokens (with is, whose key the gateway trusts) and
// the bare proxy's proofs. gatewayURL is the gateway's public_url.
func newWorkload(is *devissuer.Issuer, gatewayURL string) (*workload, error) {
	w := &workload{gatewayURL: gatewayURL}
	for i := range bearerTokens {
		sub := fmt.Sprintf("load-bearer-%d", i)
		tok, err := is.Mint(routeScope, tokenTTL, map[string]any{"sub": sub})
		if err != nil {
			return nil, err
		}
		w.bearer = append(w.bearer, credential{tok, sub})
	}
	for i := range dpopTokens {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, err
		}
		jkt, err := dpop.Thumbprint(&key.PublicKey)
		if err != nil {
			return nil, err
		}
		sub := fmt.Sprintf("load-dpop-%d", i)
		tok, err := is.Mint(routeScope, tokenTTL, map[string]any{"sub": sub, "cnf": map[string]any{"jkt": jkt}})
		if err != nil {
			return nil, err
		}
		w.dpop = append(w.dpop, dpopCredential{credential{tok, sub}, key})
	}
	now := time.Now()
	tok, err := is.Mint(routeScope, time.Hour, map[string]any{
		"sub": "load-expired",
		"iat": now.Add(-20 * time.Minute).Unix(),
		"exp": now.Add(-10 * time.Minute).Unix(), // far beyond the 30 s leeway
	})
	if err != nil {
		return nil, err
	}
	w.expired = credential{tok, "load-expired"}
	w.tampered = credential{tamper(w.bearer[0].Token), w.bearer[0].Subject}
	w.boundAsBearer = w.dpop[0].credential
	for i := range 2 * dpopTokens {
		p, err := w.newProof(i % dpopTokens)
		if err != nil {
			return nil, err
		}
		w.shapeProofs = append(w.shapeProofs, p)
	}
	return w, nil
}

// tamper is [loadkit.Tamper].
var tamper = loadkit.Tamper

// newProof makes a fresh proof for GET requestPath on the gateway with
// DPoP credential i.
func (w *workload) newProof(i int) (string, error) {
	c := w.dpop[i]
	return dpop.NewProof(c.Key, dpop.ProofParams{
		Method:      http.MethodGet,
		URL:         w.gatewayURL + requestPath,
		AccessToken: c.Token,
	})
}

// outgoing is a request ready to send.
type outgoing struct {
	req  *http.Request
	v    variant // what was built: a replay with nothing to replay becomes vMissing
	want expectation
	used *proof // a fresh proof, to remember once the gateway has accepted it
}

// request builds the next request of variant v for a target of kind k at
// base, and what its answer must be.
func (w *workload) request(ctx context.Context, k targetKind, base string, v variant, rng *mrand.Rand) (outgoing, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+requestPath, nil)
	if err != nil {
		return outgoing{}, err
	}
	req.Header.Set(identityHdr, forgedSubject)
	var (
		subject string
		used    *proof
	)
	switch v {
	case vBearer:
		c := w.bearer[rng.IntN(len(w.bearer))]
		req.Header.Set("Authorization", "Bearer "+c.Token)
		subject = c.Subject
	case vDPoP:
		var p proof
		if k == kindGateway {
			if p, err = w.pool.take(w); err != nil {
				return outgoing{}, err
			}
			used = &p
		} else {
			i := rng.IntN(len(w.shapeProofs))
			p = proof{cred: i % dpopTokens, jwt: w.shapeProofs[i]}
		}
		c := w.dpop[p.cred]
		req.Header.Set("Authorization", "DPoP "+c.Token)
		req.Header.Set("DPoP", p.jwt)
		subject = c.Subject
	case vMissing:
	case vTampered:
		req.Header.Set("Authorization", "Bearer "+w.tampered.Token)
	case vExpired:
		req.Header.Set("Authorization", "Bearer "+w.expired.Token)
	case vBoundAsBearer:
		req.Header.Set("Authorization", "Bearer "+w.boundAsBearer.Token)
	case vReplayed:
		p, ok := w.spent.pick(rng)
		if !ok || k == kindBare {
			i := rng.IntN(len(w.shapeProofs))
			p = proof{cred: i % dpopTokens, jwt: w.shapeProofs[i]}
			// A shape proof was never sent to the gateway, so it would
			// be accepted there, not replayed: before the first proof
			// has been spent, the gateway gets a missing credential.
			if k == kindGateway {
				v = vMissing
				break
			}
		}
		req.Header.Set("Authorization", "DPoP "+w.dpop[p.cred].Token)
		req.Header.Set("DPoP", p.jwt)
	}
	return outgoing{req: req, v: v, want: expect(k, v, subject), used: used}, nil
}

// proof is a DPoP proof for credential cred, made at made.
type proof struct {
	cred int
	jwt  string
	made time.Time
}

// Proof pool limits. Proofs are made before a phase starts, so that the
// client's ECDSA signing is not measured as the gateway's latency; one
// used after maxPoolAge could come close to the gateway's five-minute
// iat window, so older ones are dropped.
const (
	maxPoolSize = 200_000 // ~120 MB of proofs at most
	maxPoolAge  = time.Minute
)

// proofPool hands out pre-made proofs, each once. fill runs only between
// phases; take is safe for concurrent use during a phase.
type proofPool struct {
	proofs []proof
	next   atomic.Int64
	inline atomic.Int64 // proofs made during a phase because the pool ran dry
}

// take returns an unused proof, making one on the spot (counted in
// inline) when the pool has run dry.
func (p *proofPool) take(w *workload) (proof, error) {
	if i := p.next.Add(1) - 1; i < int64(len(p.proofs)) {
		return p.proofs[i], nil
	}
	cred := int(p.inline.Add(1) % dpopTokens)
	jwt, err := w.newProof(cred)
	return proof{cred: cred, jwt: jwt, made: time.Now()}, err
}

// fill drops used and old proofs and makes new ones, on every CPU, until
// n (at most maxPoolSize) are ready.
func (p *proofPool) fill(ctx context.Context, w *workload, n int) error {
	n = min(n, maxPoolSize)
	used := min(int(p.next.Load()), len(p.proofs))
	keep := p.proofs[used:]
	cutoff := time.Now().Add(-maxPoolAge)
	fresh := make([]proof, 0, n)
	for _, pr := range keep {
		if pr.made.After(cutoff) && len(fresh) < n {
			fresh = append(fresh, pr)
		}
	}
	missing := n - len(fresh)
	if missing > 0 {
		made := make([]proof, missing)
		var (
			wg   sync.WaitGroup
			next atomic.Int64
			errs = make([]error, runtime.NumCPU())
		)
		for g := range errs {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= missing || ctx.Err() != nil {
						return
					}
					cred := i % dpopTokens
					jwt, err := w.newProof(cred)
					if err != nil {
						errs[g] = err
						return
					}
					made[i] = proof{cred: cred, jwt: jwt, made: time.Now()}
				}
			})
		}
		wg.Wait()
		if err := errors.Join(append(errs, ctx.Err())...); err != nil {
			return err
		}
		fresh = append(fresh, made...)
	}
	p.proofs = fresh
	p.next.Store(0)
	p.inline.Store(0)
	return nil
}

// maxSpent bounds the proofs kept for replays.
const maxSpent = 256

// spentProofs remembers proofs the gateway accepted, for replays. It is
// safe for concurrent use.
type spentProofs struct {
	n    atomic.Int64 // len(list), readable without the lock
	mu   sync.Mutex   // guards list
	list []proof
}

// add remembers p until maxSpent are kept; later ones are not needed.
func (s *spentProofs) add(p proof) {
	if s.n.Load() >= maxSpent {
		return
	}
	s.mu.Lock()
	if len(s.list) < maxSpent {
		s.list = append(s.list, p)
		s.n.Store(int64(len(s.list)))
	}
	s.mu.Unlock()
}

// pick returns one of the remembered proofs, if any.
func (s *spentProofs) pick(rng *mrand.Rand) (proof, bool) {
	n := s.n.Load()
	if n == 0 {
		return proof{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list[rng.IntN(len(s.list))], true
}
