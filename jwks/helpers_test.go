package jwks

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// testKeys are generated once per test binary: RSA generation is slow
// under -race.
var testKeys = sync.OnceValue(func() (k struct {
	rsa1, rsa2, rsa3 *rsa.PrivateKey
	p256, p384, p521 *ecdsa.PrivateKey
	ed               ed25519.PrivateKey
}) {
	mustRSA := func() *rsa.PrivateKey {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return key
	}
	mustEC := func(c elliptic.Curve) *ecdsa.PrivateKey {
		key, err := ecdsa.GenerateKey(c, rand.Reader)
		if err != nil {
			panic(err)
		}
		return key
	}
	k.rsa1, k.rsa2, k.rsa3 = mustRSA(), mustRSA(), mustRSA()
	k.p256, k.p384, k.p521 = mustEC(elliptic.P256()), mustEC(elliptic.P384()), mustEC(elliptic.P521())
	_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
	return k
})

// jwkJSON renders key (public or private, as jwx imports it) as a JWK
// with extra members set or, for a nil value, removed.
func jwkJSON(tb testing.TB, key any, members map[string]any) json.RawMessage {
	tb.Helper()
	jk, err := jwk.Import(key)
	if err != nil {
		tb.Fatalf("jwk.Import: %v", err)
	}
	b, err := json.Marshal(jk)
	if err != nil {
		tb.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatal(err)
	}
	for k, v := range members {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// rsaJWK renders an RSA public key by hand, for keys jwx refuses to
// import (too short).
func rsaJWK(kid string, pub *rsa.PublicKey) json.RawMessage {
	e := beBytes(pub.E)
	return json.RawMessage(fmt.Sprintf(`{"kty":"RSA","kid":%q,"n":%q,"e":%q}`, kid,
		base64.RawURLEncoding.EncodeToString(pub.N.Bytes()), base64.RawURLEncoding.EncodeToString(e)))
}

func beBytes(e int) []byte {
	var b []byte
	for ; e > 0; e >>= 8 {
		b = append([]byte{byte(e)}, b...)
	}
	return b
}

// jwksDoc builds a JWKS document from JWKs.
func jwksDoc(keys ...json.RawMessage) []byte {
	if keys == nil {
		keys = []json.RawMessage{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// Shorthands for the usual test keys, each with a kid.
func kRSA1(tb testing.TB) json.RawMessage {
	return jwkJSON(tb, &testKeys().rsa1.PublicKey, map[string]any{"kid": "rsa1"})
}
func kRSA2(tb testing.TB) json.RawMessage {
	return jwkJSON(tb, &testKeys().rsa2.PublicKey, map[string]any{"kid": "rsa2"})
}
func kEC(tb testing.TB) json.RawMessage {
	return jwkJSON(tb, &testKeys().p256.PublicKey, map[string]any{"kid": "ec1"})
}

// issuer is a JWKS endpoint on 127.0.0.1 whose answers a test changes
// while it runs.
type issuer struct {
	srv  *httptest.Server
	hits atomic.Int64

	mu       sync.Mutex    // guards the fields below
	doc      []byte        // the body of a 200
	status   int           // 0: 200
	header   http.Header   // extra response headers
	delay    time.Duration // before answering
	hangup   bool          // close the connection without an answer
	failN    int           // answer this many requests with 503 first
	requests []http.Header // headers of every request, in order
}

func newIssuer(tb testing.TB, doc []byte) *issuer {
	tb.Helper()
	iss := &issuer{doc: doc}
	iss.srv = httptest.NewServer(http.HandlerFunc(iss.serve))
	tb.Cleanup(iss.srv.Close)
	return iss
}

func (iss *issuer) serve(w http.ResponseWriter, r *http.Request) {
	iss.hits.Add(1)
	iss.mu.Lock()
	iss.requests = append(iss.requests, r.Header.Clone())
	doc, status, header, delay, hangup := iss.doc, iss.status, iss.header.Clone(), iss.delay, iss.hangup
	if iss.failN > 0 {
		iss.failN--
		status = http.StatusServiceUnavailable
	}
	iss.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if hangup {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	for k, v := range header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	if status != 0 && status != http.StatusOK {
		w.WriteHeader(status)
		fmt.Fprint(w, `{"error":"unavailable"}`)
		return
	}
	w.Write(doc)
}

// update changes the issuer's behaviour under its lock.
func (iss *issuer) update(f func(*issuer)) {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	f(iss)
}

func (iss *issuer) requestHeaders() []http.Header {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return slices.Clone(iss.requests)
}

// results records OnRefresh calls.
type results struct {
	mu  sync.Mutex
	got []string
}

func (r *results) record(result string) {
	r.mu.Lock()
	r.got = append(r.got, result)
	r.mu.Unlock()
}

func (r *results) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// testConfig returns a Config for iss with test-friendly values: no
// scheduled refresh during the test, a short rate limit.
func testConfig(url string, res *results) Config {
	return Config{
		URL:                url,
		MinRefreshInterval: time.Hour,
		MaxRefreshInterval: 2 * time.Hour,
		RefreshRateLimit:   50 * time.Millisecond,
		UnknownKIDWait:     5 * time.Second,
		InitialWait:        5 * time.Second,
		OnRefresh:          res.record,
	}
}

// newTestSet starts a Set and closes it when the test ends.
func newTestSet(tb testing.TB, cfg Config) *Set {
	tb.Helper()
	s, err := New(context.Background(), cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// waitFor polls cond until it holds or d passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func sha256b64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return b64(sum[:])
}
