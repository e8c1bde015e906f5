package faulttest

import (
	"crypto/ecdsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/internal/redistest"
)

// flakyServer is an HTTP server on a fixed 127.0.0.1 port that can be
// taken down (connections refused) and brought back on the same port, as
// a crashed and restarted dependency would be.
type flakyServer struct {
	addr string
	h    http.Handler

	mu  sync.Mutex   // guards srv
	srv *http.Server // nil while down
}

func newFlakyServer(t *testing.T, h http.Handler) *flakyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &flakyServer{addr: ln.Addr().String(), h: h}
	s.serve(ln)
	t.Cleanup(s.down)
	return s
}

func (s *flakyServer) URL() string { return "http://" + s.addr }

func (s *flakyServer) serve(ln net.Listener) {
	srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 5 * time.Second}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
	go srv.Serve(ln)
}

// down closes the listener and every connection: new connections are
// refused.
func (s *flakyServer) down() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

// up listens on the same port again (retrying briefly if the port is
// still held). It may run on a fault script's goroutine, so it reports
// failure with t.Errorf.
func (s *flakyServer) up(t *testing.T) {
	t.Helper()
	var ln net.Listener
	err := waitFor(t, 5*time.Second, func() bool {
		var err error
		ln, err = net.Listen("tcp", s.addr)
		return err == nil
	})
	if err != nil {
		t.Errorf("cannot listen on %s again: %v", s.addr, err)
		return
	}
	s.serve(ln)
}

// jwksFault is how the key server misbehaves on /jwks; nil is normal
// service.
type jwksFault struct {
	status int    // answer with this status (and body)
	body   []byte // the body to send (with status 200 when status is 0)
	hang   bool   // answer nothing until released or the client gives up
}

// keyServer is a devissuer behind a flakyServer, with faults injected on
// /jwks.
type keyServer struct {
	*flakyServer
	is      *devissuer.Issuer
	fault   atomic.Pointer[jwksFault]
	release chan struct{} // closed to let hanging requests go; replaced by hang()
	relMu   sync.Mutex    // guards release
	hits    atomic.Int64  // every /jwks request, faulty or not
}

// newKeyServer starts an issuer whose identifier is its own loopback URL
// and which signs with a fresh ES256 key "k1".
func newKeyServer(t *testing.T) *keyServer {
	t.Helper()
	ks := &keyServer{release: make(chan struct{})}
	ks.flakyServer = newFlakyServer(t, http.HandlerFunc(ks.serveHTTP))
	ks.is = devissuer.New(ks.URL(), audience, genKey(t, "k1"))
	t.Cleanup(ks.unhang)
	return ks
}

func (ks *keyServer) JWKSURI() string { return ks.URL() + "/jwks" }

func (ks *keyServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/jwks" {
		ks.is.Handler().ServeHTTP(w, r)
		return
	}
	ks.hits.Add(1)
	f := ks.fault.Load()
	if f != nil && f.hang {
		ks.relMu.Lock()
		rel := ks.release
		ks.relMu.Unlock()
		select {
		case <-rel:
		case <-r.Context().Done():
			return
		case <-time.After(time.Minute): // bounded even if the test forgets
		}
		// Released: answer as the server now would.
		if f = ks.fault.Load(); f != nil && f.hang {
			f = nil
		}
	}
	if f == nil {
		ks.is.Handler().ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	if f.status != 0 {
		w.WriteHeader(f.status)
	}
	w.Write(f.body)
}

// setFault changes how /jwks answers (nil: normally).
func (ks *keyServer) setFault(f *jwksFault) {
	if f != nil && f.hang {
		ks.relMu.Lock()
		ks.release = make(chan struct{})
		ks.relMu.Unlock()
	}
	ks.fault.Store(f)
}

// unhang releases requests held by a hang fault.
func (ks *keyServer) unhang() {
	ks.relMu.Lock()
	defer ks.relMu.Unlock()
	select {
	case <-ks.release:
	default:
		close(ks.release)
	}
}

// waitFetches waits until /jwks has been requested from+n times. With one
// fetch at a time in the gateway, the (n-1)th fetch after a change has
// completed by then. It may run on a fault script's goroutine, so it
// reports failure with t.Errorf.
func (ks *keyServer) waitFetches(t *testing.T, from int64, n int64, timeout time.Duration) {
	t.Helper()
	if err := waitFor(t, timeout, func() bool { return ks.hits.Load() >= from+n }); err != nil {
		t.Errorf("the gateway fetched /jwks %d times, want %d more than %d: %v", ks.hits.Load(), n, from, err)
	}
}

func genKey(t testing.TB, kid string) *devissuer.Key {
	t.Helper()
	k, err := devissuer.GenerateKey("ES256", kid)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// upstream is the API behind the gateway. It records every request that
// reaches it by the test's X-Test-Id and, for DPoP requests, by the
// proof's jti, and echoes the identity the gateway asserted.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex     // guards the fields below
	ids      map[string]int // X-Test-Id → times seen
	jtis     map[string]int // DPoP proof jti → times seen
	noSub    int            // requests without X-Tokenguard-Subject
	received int
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{ids: map[string]int{}, jtis: map[string]int{}}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sub := r.Header.Get("X-Tokenguard-Subject")
		u.mu.Lock()
		u.received++
		if sub == "" {
			u.noSub++
		}
		if id := r.Header.Get("X-Test-Id"); id != "" {
			u.ids[id]++
		}
		if p := r.Header.Get("DPoP"); p != "" {
			u.jtis[proofJTI(p)]++
		}
		u.mu.Unlock()
		w.Header().Set("X-Echo-Subject", sub)
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(u.Close)
	return u
}

// snapshot returns copies of what the upstream saw so far.
func (u *upstream) snapshot() (ids, jtis map[string]int, noSub, received int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	ids = make(map[string]int, len(u.ids))
	for k, v := range u.ids {
		ids[k] = v
	}
	jtis = make(map[string]int, len(u.jtis))
	for k, v := range u.jtis {
		jtis[k] = v
	}
	return ids, jtis, u.noSub, u.received
}

// proofJTI reads the jti of a DPoP proof the gateway accepted (its
// signature was checked by the gateway; here only the identifier counts).
func proofJTI(proof string) string {
	parts := strings.Split(proof, ".")
	if len(parts) != 3 {
		return "malformed"
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "malformed"
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if json.Unmarshal(b, &c) != nil || c.JTI == "" {
		return "malformed"
	}
	return c.JTI
}

// dpopClient is a client's DPoP key and its thumbprint.
type dpopClient struct {
	priv *ecdsa.PrivateKey
	jkt  string
}

func newDPoPClient(t testing.TB) *dpopClient {
	t.Helper()
	k, jkt := dpoptest.NewKey(t)
	return &dpopClient{priv: k, jkt: jkt}
}

// introState is the introspection endpoint's behaviour.
type introState int32

const (
	introUp      introState = iota // answers from its token table
	introErr                       // 500
	introHang                      // never answers (until the client gives up)
	introRefused                   // listener closed: connection refused
)

func (s introState) String() string {
	return [...]string{"up", "500", "hang", "refused"}[s]
}

// introServer is an RFC 7662 endpoint: tokens it knows are active (with
// the given subject) or inactive; unknown tokens are inactive. It records
// when it last said "active" for each token.
type introServer struct {
	*flakyServer
	issuer       string
	clientID     string
	clientSecret string
	state        atomic.Int32 // an introState

	mu         sync.Mutex        // guards the fields below
	active     map[string]string // token → sub
	lastActive map[string]time.Time
	calls      int
}

func newIntroServer(t *testing.T, issuer string) *introServer {
	t.Helper()
	s := &introServer{issuer: issuer, clientID: "gw", clientSecret: "s3cret-faulttest",
		active: map[string]string{}, lastActive: map[string]time.Time{}}
	s.flakyServer = newFlakyServer(t, http.HandlerFunc(s.serveHTTP))
	t.Cleanup(func() { s.state.Store(int32(introUp)) }) // lets hung handlers go
	return s
}

func (s *introServer) setActive(tok, sub string) {
	s.mu.Lock()
	s.active[tok] = sub
	s.mu.Unlock()
}

func (s *introServer) revoke(tok string) {
	s.mu.Lock()
	delete(s.active, tok)
	s.mu.Unlock()
}

// lastActiveAnswer is when the endpoint last answered active=true for tok
// (zero if never).
func (s *introServer) lastActiveAnswer(tok string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastActive[tok]
}

func (s *introServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	// A hung endpoint answers nothing until the test changes its state
	// (then it answers as the new state says) or the client gives up.
	for limit := time.Now().Add(time.Minute); introState(s.state.Load()) == introHang; {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(limit) {
			return
		}
	}
	if introState(s.state.Load()) == introErr {
		http.Error(w, "flapping", http.StatusInternalServerError)
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok || id != s.clientID || secret != s.clientSecret {
		http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	tok := r.PostForm.Get("token")
	s.mu.Lock()
	s.calls++
	sub, active := s.active[tok]
	if active {
		s.lastActive[tok] = time.Now()
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if !active {
		io.WriteString(w, `{"active":false}`)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"active": true, "sub": sub, "client_id": "faulttest-client", "scope": "api:read",
		"iss": s.issuer, "aud": audience, "exp": time.Now().Add(time.Hour).Unix(),
	})
}

// redisServer is a redis-server child process on 127.0.0.1
// (internal/redistest, shared with dpop/redisstore's tests): killed with
// SIGKILL like a crash and restarted on the same port.
type redisServer struct {
	*redistest.Server
	t *testing.T
}

// startRedis starts redis-server with extra arguments; it skips the test
// when redis-server is not installed.
func startRedis(t *testing.T, extra ...string) *redisServer {
	t.Helper()
	srv, err := redistest.Start(t.TempDir(), extra...)
	if errors.Is(err, redistest.ErrNotInstalled) {
		t.Skip(err.Error() + " to run the Redis fault test")
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &redisServer{Server: srv, t: t}
	t.Cleanup(s.kill)
	return s
}

// kill sends SIGKILL (a crash) and waits for the process to exit.
func (s *redisServer) kill() {
	if err := s.Kill(); err != nil {
		s.t.Error(err)
	}
}
