package dpop

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/tokenguard/tokenguard/internal/dpopdigest"
	"github.com/tokenguard/tokenguard/internal/httpauth"
	"github.com/tokenguard/tokenguard/internal/jose"
	"github.com/tokenguard/tokenguard/internal/tokencache"
)

// supportedAlgorithms are the proof algorithms the verifier implements.
var supportedAlgorithms = []string{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Config configures a Verifier. Every zero value is a safe default.
type Config struct {
	// Algorithms is the proof "alg" allow-list. nil means
	// DefaultAlgorithms; only asymmetric algorithms can be listed.
	Algorithms []string
	// MaxProofSize bounds the proof, in bytes. Zero means
	// DefaultMaxProofSize.
	MaxProofSize int
	// MaxAge is how old "iat" may be. Zero means DefaultMaxAge.
	MaxAge time.Duration
	// MaxClockSkew is how far in the future "iat" may be. Zero means
	// DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// MaxJTILength bounds "jti", in bytes. Zero means
	// DefaultMaxJTILength.
	MaxJTILength int
	// ReplayStore remembers used proofs. nil means a new
	// MemoryReplayStore of DefaultReplayStoreSize entries.
	ReplayStore ReplayStore
	// Nonces, when set, makes a valid server nonce mandatory.
	Nonces *Nonces
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks DPoP proofs. It is safe for concurrent use.
type Verifier struct {
	cfg  Config
	algs map[string]bool
	keys *tokencache.Cache[*proofKey] // parsed "jwk" values by SHA-256 of their text
	// headers holds the protected headers of proofs that verified: a
	// client's proofs all have the same one.
	headers *jose.HeaderCache
}

// proofKey is a vetted proof key.
type proofKey struct {
	pub crypto.PublicKey
	jkt string
}

// keyCacheSize bounds the parsed-key cache. Each entry is one client key;
// a miss only costs a jwx parse.
const keyCacheSize = 4096

// keyCacheTTL is how long a parsed key stays cached.
const keyCacheTTL = time.Hour

// NewVerifier checks cfg and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("dpop: "+format, args...)) }
	if cfg.Algorithms == nil {
		cfg.Algorithms = DefaultAlgorithms()
	} else if len(cfg.Algorithms) == 0 {
		bad("Algorithms: empty allow-list (nil means the default)")
	}
	algs := make(map[string]bool, len(cfg.Algorithms))
	for _, a := range cfg.Algorithms {
		if !slices.Contains(supportedAlgorithms, a) {
			bad("Algorithms: %q is not a supported asymmetric algorithm", a)
		}
		algs[a] = true
	}
	cfg.Algorithms = slices.Clone(cfg.Algorithms)
	setDefault := func(name string, v *time.Duration, def, limit time.Duration) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0 || *v > limit:
			bad("%s: must be between 0 and %v, got %v", name, limit, *v)
		}
	}
	setDefault("MaxAge", &cfg.MaxAge, DefaultMaxAge, time.Hour)
	setDefault("MaxClockSkew", &cfg.MaxClockSkew, DefaultMaxClockSkew, 5*time.Minute)
	setInt := func(name string, v *int, def, limit int) {
		switch {
		case *v == 0:
			*v = def
		case *v < 0 || *v > limit:
			bad("%s: must be between 1 and %d, got %d", name, limit, *v)
		}
	}
	setInt("MaxProofSize", &cfg.MaxProofSize, DefaultMaxProofSize, 64<<10)
	setInt("MaxJTILength", &cfg.MaxJTILength, DefaultMaxJTILength, 4096)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReplayStore == nil {
		s, err := NewMemoryReplayStore(DefaultReplayStoreSize)
		if err != nil {
			return nil, err
		}
		s.now = cfg.Now
		cfg.ReplayStore = s
	}
	keys, err := tokencache.New[*proofKey](keyCacheSize)
	if err != nil {
		return nil, err
	}
	return &Verifier{cfg: cfg, algs: algs, keys: keys, headers: jose.NewHeaderCache()}, nil
}

// Algorithms returns the proof alg allow-list, for the challenge's algs=.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.cfg.Algorithms) }

// Nonces returns the configured nonce source, or nil.
func (v *Verifier) Nonces() *Nonces { return v.cfg.Nonces }

// Request is what a proof is checked against.
type Request struct {
	// Proof is the DPoP header's value.
	Proof string
	// Method is the request's HTTP method.
	Method string
	// URL is the request's URL as the client addressed it (scheme, host,
	// path; query and fragment are ignored).
	URL string
	// AccessToken is the access token sent with the proof; "" when none
	// (then "ath" is not checked).
	AccessToken string
	// JKT, when set, is the access token's "cnf.jkt": the proof key's
	// thumbprint must equal it.
	JKT string

	// accessTokenSHA256, when not all zero, is the SHA-256 of
	// AccessToken, passed by this module's guard (internal/dpopdigest),
	// which has already computed it as its token cache key: "ath" is
	// checked against it instead of hashing the token again. Unexported,
	// so no caller can hand Check a digest of another token. All zero (no
	// input is known to hash to it) means Check hashes AccessToken.
	accessTokenSHA256 [sha256.Size]byte
}

func init() {
	dpopdigest.Check = func(v *Verifier, req Request, sum [32]byte) (*Proof, error) {
		req.accessTokenSHA256 = sum
		return v.Check(req)
	}
}

// Proof is a verified proof.
type Proof struct {
	// JKT is the RFC 7638 SHA-256 thumbprint of the proof key, to compare
	// with the access token's "cnf.jkt".
	JKT string
	// JTI is the proof's identifier.
	JTI string
	// IssuedAt is the proof's "iat".
	IssuedAt time.Time
	// RenewNonce is true when nonces are on and the proof's nonce is
	// near the end of its life: send a fresh DPoP-Nonce with the
	// response (RFC 9449 §8.2).
	RenewNonce bool

	// Expires is when the proof stops being acceptable (iat + MaxAge),
	// and so how long its replay record lives.
	Expires time.Time
}

// invalid wraps a reason in ErrInvalidProof.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidProof}, args...)...)
}

// Verify checks a proof against req per RFC 9449 §4.3 and §7.1, and
// records it as used: Check, then Record. Errors wrap ErrInvalidProof,
// ErrTokenBinding, ErrUseNonce, ErrReplay, ErrKeyQuota,
// ErrStoreUnavailable or ErrStoreFull, checked in that order. The replay
// store is consulted last, so a proof that fails any other check never
// uses up its jti.
func (v *Verifier) Verify(ctx context.Context, req Request) (*Proof, error) {
	p, err := v.Check(req)
	if err == nil {
		err = v.Record(ctx, p)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Record records a proof that Check accepted as used, in the replay
// store. Call it once the request is otherwise authorised (its token's
// scopes and the route's policy checked), so a request refused anyway
// never takes a store entry. Errors wrap ErrReplay, ErrKeyQuota,
// ErrStoreUnavailable or ErrStoreFull.
func (v *Verifier) Record(ctx context.Context, p *Proof) error {
	err := v.cfg.ReplayStore.Use(ctx, NewReplay(p.JKT, p.JTI, p.Expires))
	if err != nil && !errors.Is(err, ErrReplay) && !errors.Is(err, ErrKeyQuota) &&
		!errors.Is(err, ErrStoreFull) && !errors.Is(err, ErrStoreUnavailable) {
		// A store that breaks its contract must still fail closed.
		err = fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return err
}

// Check is Verify without the replay check: every rule of RFC 9449 §4.3
// but the jti's single use. A proof it accepts must still be recorded
// with Record before the request is served. Errors wrap ErrInvalidProof,
// ErrTokenBinding or ErrUseNonce.
func (v *Verifier) Check(req Request) (*Proof, error) {
	if req.Proof == "" {
		return nil, invalid("no proof")
	}
	if len(req.Proof) > v.cfg.MaxProofSize {
		return nil, invalid("proof larger than %d bytes", v.cfg.MaxProofSize)
	}
	t, jwkJSON, err := v.headers.ParseProof(req.Proof)
	if err != nil {
		return nil, invalid("%w", err)
	}
	// ASCII-only case folding: neither name has a "k" or an "s", the only
	// letters strings.EqualFold also matches with non-ASCII characters.
	if !httpauth.EqualFoldASCII(t.Header.Typ, "dpop+jwt") && !httpauth.EqualFoldASCII(t.Header.Typ, "application/dpop+jwt") {
		return nil, invalid(`typ is not "dpop+jwt"`)
	}
	if !v.algs[t.Header.Alg] {
		return nil, invalid("alg not allowed")
	}
	now := v.cfg.Now()
	// A header kept from an earlier proof comes with its vetted key: the
	// same "jwk" text parses to the same key.
	key, _ := t.Kept().(*proofKey)
	if key == nil {
		if key, err = v.key(jwkJSON, now); err != nil {
			return nil, err
		}
	}
	if err := t.Verify(t.Header.Alg, key.pub); err != nil {
		return nil, invalid("%w", err)
	}
	// The key in this header signed it: the client's next proof, whose
	// header is the same, need not be read again.
	v.headers.KeepWith(&t, key)

	var c jose.ProofClaims
	if err := jose.ParseProofClaims(t.Payload, &c); err != nil {
		return nil, invalid("%w", err)
	}
	switch {
	case c.JTI == "":
		return nil, invalid("no jti")
	case len(c.JTI) > v.cfg.MaxJTILength:
		return nil, invalid("jti longer than %d bytes", v.cfg.MaxJTILength)
	case c.HTM == "" || c.HTM != req.Method:
		return nil, invalid("htm does not match the request method")
	case c.HTU == "":
		return nil, invalid("no htu")
	case !c.IssuedAt.Valid:
		return nil, invalid("no iat")
	}
	want, err := NormalizeHTU(req.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: request URL: %w", ErrInvalidProof, err)
	}
	// The same text normalises to the same URL: an htu that is the
	// request URL byte for byte (as clients usually send it) matches.
	if c.HTU != req.URL {
		if got, err := NormalizeHTU(c.HTU); err != nil || got != want {
			return nil, invalid("htu does not match the request URL")
		}
	}
	iat := c.IssuedAt.Time()
	if iat.After(now.Add(v.cfg.MaxClockSkew)) {
		return nil, invalid("iat in the future")
	}
	if now.Sub(iat) > v.cfg.MaxAge {
		return nil, invalid("proof too old")
	}
	if req.AccessToken != "" {
		if c.ATH == "" {
			return nil, invalid("no ath")
		}
		// "ath" is the unpadded base64url of the token's SHA-256 (RFC
		// 9449 §4.2); decoding it strictly (one encoding per digest)
		// and comparing digests is comparing it with that encoding.
		ath, ok := jose.ThumbprintSHA256(c.ATH)
		if !ok {
			return nil, invalid("ath does not match the access token")
		}
		sum := req.accessTokenSHA256
		if sum == ([sha256.Size]byte{}) {
			sum = tokencache.KeyOf(req.AccessToken) // SHA-256, without copying the token
		}
		if ath != sum {
			return nil, invalid("ath does not match the access token")
		}
	}
	if req.JKT != "" && req.JKT != key.jkt {
		return nil, ErrTokenBinding
	}
	// The proof stays acceptable until iat+MaxAge; so does its record.
	p := &Proof{JKT: key.jkt, JTI: c.JTI, IssuedAt: iat, Expires: iat.Add(v.cfg.MaxAge)}
	if n := v.cfg.Nonces; n != nil {
		ok, renew := n.Check(c.Nonce, now)
		if !ok {
			return nil, ErrUseNonce
		}
		p.RenewNonce = renew
	}
	return p, nil
}

// key returns the vetted proof key for a "jwk" JSON text: public,
// asymmetric, parsed by jwx, with its thumbprint.
func (v *Verifier) key(jwkJSON string, now time.Time) (*proofKey, error) {
	id := tokencache.KeyOf(jwkJSON) // SHA-256, hashed in place: []byte(jwkJSON) would copy it to the heap
	if k, ok := v.keys.Get(id, now); ok {
		return k, nil
	}
	k, err := jwk.ParseKey([]byte(jwkJSON))
	if err != nil {
		return nil, invalid("jwk: %w", err)
	}
	if private, err := jwk.IsPrivateKey(k); err != nil || private {
		return nil, invalid("jwk is not a public key")
	}
	var pub any
	if err := jwk.Export(k, &pub); err != nil {
		return nil, invalid("jwk: %w", err)
	}
	if _, symmetric := pub.([]byte); symmetric {
		return nil, invalid("jwk is a symmetric key")
	}
	tp, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, invalid("jwk thumbprint: %w", err)
	}
	pk := &proofKey{pub: pub, jkt: b64.EncodeToString(tp)}
	v.keys.Add(id, pk, now.Add(keyCacheTTL), now)
	return pk, nil
}
