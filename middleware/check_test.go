package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/tokenguard/dpop"
)

// TestCheckMatchesRequire runs each request through Require and through
// Check, and requires the same decision: status, code, reason,
// challenges and DPoP-Nonce, and the same count in the metrics. The
// table covers every class of answer: allowed, 400, 401 (no credential,
// bad token, bad proof, nonce needed), 403 and 503.
func TestCheckMatchesRequire(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	down := newTestIssuer(t, "ES256", "k2")
	down.FailJWKS(http.StatusInternalServerError)
	alice := newDPoPClient(t)
	const public = "https://api.example.com"
	cfg := func(dp DPoPConfig) Config {
		return Config{
			Audience: testAudience, Issuers: []Issuer{is.config(), down.config()}, PublicURL: public,
			DPoP: dp, AdvertiseResourceMetadata: true, StartupWait: 100 * time.Millisecond,
		}
	}
	guards := map[string]*Guard{
		"disabled": newGuard(t, cfg(DPoPConfig{})),
		"allowed":  newGuard(t, cfg(DPoPConfig{Mode: DPoPAllowed})),
		"required": newGuard(t, cfg(DPoPConfig{Mode: DPoPRequired})),
		"nonce":    newGuard(t, cfg(DPoPConfig{Mode: DPoPAllowed, Nonce: true})),
	}

	good := is.mint(t, "orders:read", nil)
	bound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
	expired := is.mint(t, "orders:read", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	fromDown := down.mint(t, "orders:read", nil)
	const target = public + "/orders/1"
	// proof makes a fresh proof for each call: a proof is used once.
	proof := func(method, url, tok string) func(t *testing.T) string {
		return func(t *testing.T) string { return alice.proof(t, method, url, tok) }
	}

	tests := []struct {
		name       string
		guard      string
		scopes     []string
		auth       string // "" for none
		auths      int    // how many times auth is sent; 0: once
		proof      func(*testing.T) string
		proofs     int // how many proofs are sent; 0: one
		query      string
		wantStatus int
		wantReason Reason
	}{
		{name: "allowed", guard: "disabled", scopes: []string{"orders:read"}, auth: "Bearer " + good, wantStatus: 200, wantReason: ReasonOK},
		{name: "no token", guard: "disabled", wantStatus: 401, wantReason: ReasonMissingToken},
		{name: "query token", guard: "disabled", query: "?access_token=" + good, wantStatus: 400, wantReason: ReasonMalformedRequest},
		{name: "malformed header", guard: "disabled", auth: "Bearer", wantStatus: 400, wantReason: ReasonMalformedRequest},
		{name: "unsupported scheme", guard: "disabled", auth: "Basic dXNlcjpwYXNz", wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "expired", guard: "disabled", auth: "Bearer " + expired, wantStatus: 401, wantReason: ReasonExpired},
		{name: "bad signature", guard: "disabled", auth: "Bearer " + good[:len(good)-4] + "AAAA", wantStatus: 401, wantReason: ReasonInvalidSignature},
		{name: "insufficient scope", guard: "disabled", scopes: []string{"orders:read", "orders:write"}, auth: "Bearer " + good, wantStatus: 403, wantReason: ReasonInsufficientScope},
		{name: "keys unavailable", guard: "disabled", auth: "Bearer " + fromDown, wantStatus: 503, wantReason: ReasonKeysUnavailable},
		{name: "bound token as Bearer", guard: "allowed", auth: "Bearer " + bound, wantStatus: 401, wantReason: ReasonDPoPBound},
		{name: "DPoP allowed", guard: "allowed", scopes: []string{"orders:read"}, auth: "DPoP " + bound, proof: proof("GET", target, bound), wantStatus: 200, wantReason: ReasonOK},
		{name: "DPoP no proof", guard: "allowed", auth: "DPoP " + bound, wantStatus: 401, wantReason: ReasonInvalidProof},
		{name: "DPoP wrong htu", guard: "allowed", auth: "DPoP " + bound, proof: proof("GET", public+"/admin", bound), wantStatus: 401, wantReason: ReasonInvalidProof},
		{name: "DPoP wrong htm", guard: "allowed", auth: "DPoP " + bound, proof: proof("POST", target, bound), wantStatus: 401, wantReason: ReasonInvalidProof},
		{name: "DPoP insufficient scope", guard: "allowed", scopes: []string{"orders:write"}, auth: "DPoP " + bound, proof: proof("GET", target, bound), wantStatus: 403, wantReason: ReasonInsufficientScope},
		{name: "DPoP required, Bearer sent", guard: "required", auth: "Bearer " + good, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "DPoP nonce needed", guard: "nonce", auth: "DPoP " + bound, proof: proof("GET", target, bound), wantStatus: 401, wantReason: ReasonNonceRequired},
		// Repeated credentials: what a transport that may repeat a key
		// (gRPC metadata, Connect headers) passes as the counts.
		{name: "two Authorization values", guard: "disabled", scopes: []string{"orders:read"}, auth: "Bearer " + good, auths: 2, wantStatus: 400, wantReason: ReasonMalformedRequest},
		{name: "three DPoP Authorization values", guard: "allowed", auth: "DPoP " + bound, auths: 3, proof: proof("GET", target, bound), wantStatus: 400, wantReason: ReasonMalformedRequest},
		{name: "two DPoP proofs", guard: "allowed", scopes: []string{"orders:read"}, auth: "DPoP " + bound, proof: proof("GET", target, bound), proofs: 2, wantStatus: 401, wantReason: ReasonInvalidProof},
		{name: "one empty Authorization value", guard: "disabled", auths: 1, wantStatus: 401, wantReason: ReasonUnsupportedScheme},
		{name: "two DPoP proofs beside a Bearer token are not read", guard: "allowed", scopes: []string{"orders:read"}, auth: "Bearer " + good, proof: proof("GET", target, bound), proofs: 2, wantStatus: 200, wantReason: ReasonOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := guards[tt.guard]

			// Over HTTP.
			var httpReason Reason
			req := httptest.NewRequest(http.MethodGet, "http://api.example.com/orders/1"+tt.query, nil)
			if tt.auth != "" || tt.auths > 0 {
				for range max(tt.auths, 1) {
					req.Header.Add("Authorization", tt.auth)
				}
			}
			if tt.proof != nil {
				for range max(tt.proofs, 1) {
					req.Header.Add("DPoP", tt.proof(t))
				}
			}
			rec := httptest.NewRecorder()
			before := g.metrics.requests.value(tt.wantReason)
			g.RequirePolicy(Policy{Scopes: tt.scopes})(okHandler).ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("Require: status %d, want %d (%s)", rec.Code, tt.wantStatus, rec.Body)
			}
			if rec.Code != 200 {
				var body struct{ Error string }
				if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
					t.Fatal(err)
				}
				httpReason = Reason(body.Error)
			}

			// Through Check, with the same credentials.
			cr := Request{Authorization: tt.auth, AuthorizationCount: tt.auths, DPoPCount: tt.proofs, Method: http.MethodGet, URL: target + tt.query}
			if tt.proof != nil {
				cr.DPoP = tt.proof(t)
			}
			p, err := g.Check(context.Background(), cr, tt.scopes...)
			if after := g.metrics.requests.value(tt.wantReason); after != before+2 {
				t.Errorf("%s counted %v times for the two decisions, want 2", tt.wantReason, after-before)
			}
			if tt.wantStatus == 200 {
				if err != nil || p == nil || p.Subject == "" {
					t.Fatalf("Check = %v, %v; Require allowed it", p, err)
				}
				return
			}
			if p != nil {
				t.Errorf("Check returned a Principal with its denial")
			}
			var d *Denial
			if !errors.As(err, &d) {
				t.Fatalf("Check error %v (%T) is not a *Denial", err, err)
			}
			if d.Status != rec.Code || d.Reason != tt.wantReason {
				t.Errorf("Check: %d %s; Require: %d, want reason %s", d.Status, d.Reason, rec.Code, tt.wantReason)
			}
			if d.Code != string(httpReason) {
				t.Errorf("Check code %q, Require's body %q", d.Code, httpReason)
			}
			if got, want := strings.Join(d.Challenges, ", "), rec.Header().Get("WWW-Authenticate"); got != want {
				t.Errorf("Check challenges %q\nRequire's WWW-Authenticate %q", got, want)
			}
			if (d.Status == 401 || d.Status == 403 || d.Status == 400) && len(d.Challenges) == 0 {
				t.Errorf("a %d without a challenge", d.Status)
			}
			if (d.DPoPNonce != "") != (rec.Header().Get("DPoP-Nonce") != "") || (d.Reason == ReasonNonceRequired) != (d.DPoPNonce != "") {
				t.Errorf("Check nonce %q, Require's DPoP-Nonce %q", d.DPoPNonce, rec.Header().Get("DPoP-Nonce"))
			}
			if strings.Contains(d.Error(), good[:20]) || strings.Contains(strings.Join(d.Challenges, ""), good[:20]) {
				t.Error("the denial carries token material")
			}
		})
	}
}

// TestCheckAPI covers what is particular to Check: a Denial found through
// wrapping, the Principal handed on with ContextWithPrincipal, Checker's
// policy handling, and programming errors that are not denials.
func TestCheckAPI(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()}, DPoP: DPoPConfig{Mode: DPoPAllowed}})
	tok := is.mint(t, "orders:read", map[string]any{"sub": "alice"})
	ctx := context.Background()

	t.Run("allowed: the Principal reaches the handler's context", func(t *testing.T) {
		p, err := g.Check(ctx, Request{Authorization: "Bearer " + tok}, "orders:read")
		if err != nil {
			t.Fatal(err)
		}
		got, ok := PrincipalFrom(ContextWithPrincipal(ctx, p))
		if !ok || got.Subject != "alice" {
			t.Errorf("PrincipalFrom = %+v, %v", got, ok)
		}
	})
	t.Run("denial survives wrapping", func(t *testing.T) {
		_, err := g.Check(ctx, Request{Authorization: "Bearer " + tok}, "orders:write")
		wrapped := errors.Join(errors.New("rpc"), err)
		var d *Denial
		if !errors.As(wrapped, &d) || d.Status != http.StatusForbidden || d.Code != CodeInsufficientScope {
			t.Fatalf("errors.As: %v %+v", err, d)
		}
		if !strings.Contains(d.Challenges[0], `scope="orders:write"`) {
			t.Errorf("challenge %q does not name the scope", d.Challenges[0])
		}
	})
	t.Run("repeated Authorization: 400 invalid_request with its challenge, counted", func(t *testing.T) {
		before := g.metrics.requests.value(ReasonMalformedRequest)
		_, err := g.Check(ctx, Request{Authorization: "Bearer " + tok, AuthorizationCount: 2}, "orders:read")
		var d *Denial
		if !errors.As(err, &d) || d.Status != http.StatusBadRequest || d.Code != CodeInvalidRequest || d.Reason != ReasonMalformedRequest {
			t.Fatalf("Check = %v, want 400 invalid_request", err)
		}
		if len(d.Challenges) == 0 || !strings.HasPrefix(d.Challenges[0], "Bearer ") || !strings.Contains(d.Challenges[0], `error="invalid_request"`) {
			t.Errorf("challenges %q, want a Bearer challenge with error=\"invalid_request\"", d.Challenges)
		}
		if n := g.metrics.requests.value(ReasonMalformedRequest) - before; n != 1 {
			t.Errorf("malformed_request counted %v times, want once", n)
		}
	})
	t.Run("a bad scope is a programming error, not a denial", func(t *testing.T) {
		for _, s := range []string{"", "a b", `a"b`} {
			_, err := g.Check(ctx, Request{Authorization: "Bearer " + tok}, s)
			var d *Denial
			if err == nil || errors.As(err, &d) {
				t.Errorf("Check(scope %q) = %v", s, err)
			}
		}
	})
	t.Run("Checker enforces a Policy and publishes its scopes", func(t *testing.T) {
		check := g.Checker(Policy{AnyOf: [][]string{{"orders:admin"}, {"orders:audit"}}})
		_, err := check(ctx, Request{Authorization: "Bearer " + tok})
		var d *Denial
		if !errors.As(err, &d) || d.Status != http.StatusForbidden {
			t.Fatalf("Checker: %v", err)
		}
		onlyDPoP := g.Checker(Policy{RequireDPoP: true})
		if _, err := onlyDPoP(ctx, Request{Authorization: "Bearer " + tok}); !errors.As(err, &d) || d.Reason != ReasonDPoPRequired {
			t.Errorf("RequireDPoP through Checker: %v", err)
		}
		md, _ := g.ResourceMetadata()
		if !containsString(md.ScopesSupported, "orders:audit") {
			t.Errorf("scopes_supported %v lacks a Checker's scopes", md.ScopesSupported)
		}
		defer func() {
			if recover() == nil {
				t.Error("Checker accepted a Policy CheckPolicy refuses")
			}
		}()
		g.Checker(Policy{Scopes: []string{"a b"}})
	})
	t.Run("a DPoP proof is used once", func(t *testing.T) {
		alice := newDPoPClient(t)
		bound := is.mint(t, "", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})
		url := "https://rpc.example.com/orders.v1.Orders/Get"
		req := Request{Authorization: "DPoP " + bound, DPoP: alice.proof(t, "POST", url, bound), Method: "POST", URL: url + "?ignored=1"}
		p, err := g.Check(ctx, req)
		if err != nil || p.JKT != alice.jkt {
			t.Fatalf("first use: %v", err)
		}
		_, err = g.Check(ctx, req)
		var d *Denial
		if !errors.As(err, &d) || d.Reason != ReasonReplay || !errors.Is(err, dpop.ErrReplay) {
			t.Errorf("replay: %v", err)
		}
	})
	t.Run("a server-held token skips the DPoP requirement, as over HTTP", func(t *testing.T) {
		req := Request{Authorization: "Bearer " + tok}
		onlyDPoP := g.Checker(Policy{RequireDPoP: true})
		if _, err := onlyDPoP(WithServerHeldToken(ctx), req); err != nil {
			t.Errorf("server-held: %v", err)
		}
	})
}

// TestContextWithPrincipal unit-tests a handler without an issuer: the
// Principal put in the context is the one PrincipalFrom finds.
func TestContextWithPrincipal(t *testing.T) {
	tests := []struct {
		name string
		p    *Principal
		want int
		body string
	}{
		{"a principal", &Principal{Subject: "alice", ClientID: "app", Scopes: []string{"orders:read"}}, 200, "alice"},
		{"nil is none", nil, 500, "no principal\n"},
		{"no call", nil, 500, "no principal\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/orders/1", nil)
			if tt.name != "no call" {
				req = req.WithContext(ContextWithPrincipal(req.Context(), tt.p))
			}
			rec := httptest.NewRecorder()
			okHandler.ServeHTTP(rec, req)
			if rec.Code != tt.want || rec.Body.String() != tt.body {
				t.Errorf("%d %q, want %d %q", rec.Code, rec.Body, tt.want, tt.body)
			}
		})
	}
}

// TestOnDenial checks that a custom renderer gets the right Denial for
// each class of refusal, with the headers already set, and that what it
// writes is the response; counting and OnDecision are unchanged.
func TestOnDenial(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	down := newTestIssuer(t, "ES256", "k2")
	down.FailJWKS(http.StatusInternalServerError)
	alice := newDPoPClient(t)
	type call struct {
		d      Denial
		header http.Header
	}
	var calls []call
	var decisions []Reason
	g := newGuard(t, Config{
		Audience: testAudience, Issuers: []Issuer{is.config(), down.config()}, StartupWait: 100 * time.Millisecond,
		DPoP:                      DPoPConfig{Mode: DPoPAllowed, Nonce: true},
		AdvertiseResourceMetadata: true,
		OnDecision:                func(_ *http.Request, r Reason) { decisions = append(decisions, r) },
		OnDenial: func(w http.ResponseWriter, r *http.Request, d *Denial) {
			calls = append(calls, call{d: *d, header: w.Header().Clone()})
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(d.Status)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": d.Status, "title": d.Code, "detail": d.Description})
		},
	})
	h := g.Hygiene(Hygiene{})(g.Require("orders:read")(okHandler))
	good := is.mint(t, "orders:read", nil)
	bound := is.mint(t, "orders:read", map[string]any{"cnf": map[string]any{"jkt": alice.jkt}})

	tests := []struct {
		name       string
		target     string
		auth       []string
		proof      string
		wantStatus int
		wantCode   string
		wantReason Reason
		wantHeader map[string]string // header → substring it must hold when OnDenial runs; "" must be absent
	}{
		{
			name: "401 missing", wantStatus: 401, wantCode: "missing_token", wantReason: ReasonMissingToken,
			wantHeader: map[string]string{"WWW-Authenticate": `Bearer realm="https://api.example.com", resource_metadata=`, "Cache-Control": "no-store", "Retry-After": ""},
		},
		{
			name: "401 invalid", auth: []string{"Bearer " + is.mint(t, "orders:read", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})},
			wantStatus: 401, wantCode: CodeInvalidToken, wantReason: ReasonExpired,
			wantHeader: map[string]string{"WWW-Authenticate": `error="invalid_token", error_description="token expired"`},
		},
		{
			name: "401 nonce", auth: []string{"DPoP " + bound}, proof: alice.proof(t, "GET", "http://api.example.com/orders/1", bound),
			wantStatus: 401, wantCode: CodeUseDPoPNonce, wantReason: ReasonNonceRequired,
			wantHeader: map[string]string{"WWW-Authenticate": `error="use_dpop_nonce"`},
		},
		{
			name: "403 insufficient_scope", auth: []string{"Bearer " + is.mint(t, "orders:write", nil)},
			wantStatus: 403, wantCode: CodeInsufficientScope, wantReason: ReasonInsufficientScope,
			wantHeader: map[string]string{"WWW-Authenticate": `scope="orders:read"`},
		},
		{
			name: "400 bad request", auth: []string{"Bearer " + good, "Bearer " + good},
			wantStatus: 400, wantCode: CodeInvalidRequest, wantReason: ReasonMalformedRequest,
			wantHeader: map[string]string{"WWW-Authenticate": `error="invalid_request"`},
		},
		{
			name: "400 hygiene", target: "/orders/..%2fadmin", auth: []string{"Bearer " + good},
			wantStatus: 400, wantCode: "invalid_path", wantReason: ReasonInvalidPath,
			wantHeader: map[string]string{"WWW-Authenticate": "", "Cache-Control": "no-store"},
		},
		{
			name: "503", auth: []string{"Bearer " + down.mint(t, "orders:read", nil)},
			wantStatus: 503, wantCode: "keys_unavailable", wantReason: ReasonKeysUnavailable,
			wantHeader: map[string]string{"Retry-After": "5", "WWW-Authenticate": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			calls, decisions = nil, nil
			target := cmpOr(tt.target, "/orders/1")
			req := httptest.NewRequest(http.MethodGet, target, nil) // origin-form, as Hygiene wants
			req.Host = "api.example.com"
			for _, a := range tt.auth {
				req.Header.Add("Authorization", a)
			}
			if tt.proof != "" {
				req.Header.Set("DPoP", tt.proof)
			}
			before := g.metrics.requests.value(tt.wantReason)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if len(calls) != 1 {
				t.Fatalf("OnDenial called %d times", len(calls))
			}
			d := calls[0].d
			if d.Status != tt.wantStatus || d.Code != tt.wantCode || d.Reason != tt.wantReason {
				t.Errorf("Denial %d %q %s, want %d %q %s", d.Status, d.Code, d.Reason, tt.wantStatus, tt.wantCode, tt.wantReason)
			}
			for name, want := range tt.wantHeader {
				got := calls[0].header.Get(name)
				if want == "" && got != "" || !strings.Contains(got, want) {
					t.Errorf("%s when OnDenial ran: %q, want %q", name, got, cmpOr(want, "none"))
				}
			}
			if got := calls[0].header.Get("WWW-Authenticate"); got != strings.Join(d.Challenges, ", ") {
				t.Errorf("WWW-Authenticate %q is not the Denial's challenges %q", got, d.Challenges)
			}
			if got := calls[0].header.Get("DPoP-Nonce"); got != d.DPoPNonce || (tt.wantReason == ReasonNonceRequired) != (got != "") {
				t.Errorf("DPoP-Nonce %q, Denial's %q", got, d.DPoPNonce)
			}
			// The renderer's response is the response.
			if rec.Code != tt.wantStatus || rec.Header().Get("Content-Type") != "application/problem+json" || !strings.Contains(rec.Body.String(), `"title":"`+tt.wantCode+`"`) {
				t.Errorf("response %d %q %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
			}
			// Counting, OnDecision and logging as without a renderer.
			if len(decisions) != 1 || decisions[0] != tt.wantReason {
				t.Errorf("OnDecision saw %v", decisions)
			}
			if n := g.metrics.requests.value(tt.wantReason) - before; n != 1 {
				t.Errorf("counted %d times", n)
			}
		})
	}
}

// TestOnDenialStatus checks that a renderer cannot turn a denial into a
// success: no status, or one below 400, is sent as the denial's.
func TestOnDenialStatus(t *testing.T) {
	is := newTestIssuer(t, "ES256", "k1")
	tests := []struct {
		name   string
		render func(http.ResponseWriter)
		want   int
	}{
		{"writes nothing", func(http.ResponseWriter) {}, 401},
		{"body only", func(w http.ResponseWriter) { _, _ = w.Write([]byte("nope")) }, 401},
		{"a 200", func(w http.ResponseWriter) { w.WriteHeader(200) }, 401},
		{"a 302", func(w http.ResponseWriter) { w.Header().Set("Location", "/login"); w.WriteHeader(302) }, 401},
		{"its own 4xx", func(w http.ResponseWriter) { w.WriteHeader(404) }, 404},
		// A flush before any write would send 200 on the writer below.
		{"flushes first", func(w http.ResponseWriter) { _ = http.NewResponseController(w).Flush() }, 401},
		{"flushes through http.Flusher", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGuard(t, Config{Audience: testAudience, Issuers: []Issuer{is.config()},
				OnDenial: func(w http.ResponseWriter, _ *http.Request, _ *Denial) { tt.render(w) }})
			rec := do(g.Require()(okHandler))
			if rec.Code != tt.want {
				t.Errorf("status %d, want %d", rec.Code, tt.want)
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// TestHeaderKeys pins the map keys the decision reads headers by: they
// must be the canonical forms http.Header stores, or a header would be
// missed.
func TestHeaderKeys(t *testing.T) {
	for name, key := range map[string]string{"Authorization": headerAuthorization, "DPoP": headerDPoP} {
		if c := http.CanonicalHeaderKey(name); c != key {
			t.Errorf("%s is stored as %q, read as %q", name, c, key)
		}
		h := http.Header{}
		h.Add(name, "v")
		in := request{hr: &http.Request{Header: h}}
		v1, n1 := in.authorization()
		v2, n2 := in.proof()
		if v1+v2 != "v" || n1+n2 != 1 {
			t.Errorf("%s not read: %q %d, %q %d", name, v1, n1, v2, n2)
		}
	}
}
