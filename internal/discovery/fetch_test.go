package discovery

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestMetadataURLs(t *testing.T) {
	tests := []struct {
		issuer, oauth, oidc string
	}{
		{"https://as.example.com", "https://as.example.com/.well-known/oauth-authorization-server", "https://as.example.com/.well-known/openid-configuration"},
		{"https://as.example.com/", "https://as.example.com/.well-known/oauth-authorization-server", "https://as.example.com/.well-known/openid-configuration"},
		{"https://as.example.com/tenant1", "https://as.example.com/.well-known/oauth-authorization-server/tenant1", "https://as.example.com/tenant1/.well-known/openid-configuration"},
		{"https://as.example.com/tenant1/", "https://as.example.com/.well-known/oauth-authorization-server/tenant1", "https://as.example.com/tenant1/.well-known/openid-configuration"},
		{"https://as.example.com:8443/a/b", "https://as.example.com:8443/.well-known/oauth-authorization-server/a/b", "https://as.example.com:8443/a/b/.well-known/openid-configuration"},
		{"https://as.example.com/t%2F1", "https://as.example.com/.well-known/oauth-authorization-server/t%2F1", "https://as.example.com/t%2F1/.well-known/openid-configuration"},
		{"http://[::1]:9000/x", "http://[::1]:9000/.well-known/oauth-authorization-server/x", "http://[::1]:9000/x/.well-known/openid-configuration"},
	}
	for _, tt := range tests {
		if err := checkIssuer(tt.issuer, false); err != nil {
			t.Fatalf("checkIssuer(%q): %v", tt.issuer, err)
		}
		got := metadataURLs(tt.issuer)
		if got[0] != tt.oauth || got[1] != tt.oidc {
			t.Errorf("metadataURLs(%q) = %q, want [%q %q]", tt.issuer, got, tt.oauth, tt.oidc)
		}
	}
}

func TestFetchRFC8414(t *testing.T) {
	for _, path := range []string{"", "/tenant1"} {
		t.Run("path="+path, func(t *testing.T) {
			as := newTestAS(t)
			issuer := as.URL() + path
			as.serveDoc(pathOAuth+path, goodDoc(t, issuer))
			as.serveDoc(path+pathOIDC, goodDoc(t, issuer))

			md, err := Fetch(t.Context(), Config{Issuer: issuer})
			if err != nil {
				t.Fatal(err)
			}
			want := &Metadata{
				Issuer:                   issuer,
				JWKSURI:                  issuer + "/jwks",
				IntrospectionEndpoint:    issuer + "/introspect",
				IntrospectionAuthMethods: []string{"client_secret_basic", "private_key_jwt"},
				TokenEndpoint:            issuer + "/token",
				Source:                   as.URL() + pathOAuth + path,
			}
			if diff := cmp.Diff(want, md); diff != "" {
				t.Errorf("Fetch (-want +got):\n%s", diff)
			}
			if n := as.hitCount(path + pathOIDC); n != 0 {
				t.Errorf("OIDC location fetched %d times after RFC 8414 succeeded", n)
			}
		})
	}
}

func TestFetchOIDCFallback(t *testing.T) {
	for _, path := range []string{"", "/tenant1"} {
		t.Run("path="+path, func(t *testing.T) {
			as := newTestAS(t)
			issuer := as.URL() + path
			as.serveDoc(path+pathOIDC, metaDoc(t, map[string]any{"issuer": issuer, "jwks_uri": issuer + "/jwks"}))

			md, err := Fetch(t.Context(), Config{Issuer: issuer})
			if err != nil {
				t.Fatal(err)
			}
			want := &Metadata{Issuer: issuer, JWKSURI: issuer + "/jwks", Source: issuer + pathOIDC}
			if diff := cmp.Diff(want, md); diff != "" {
				t.Errorf("Fetch (-want +got):\n%s", diff)
			}
			if n := as.hitCount(pathOAuth + path); n != 1 {
				t.Errorf("RFC 8414 location fetched %d times, want 1 (first)", n)
			}
		})
	}
}

func TestFetchFallbackAfterNon200AndCatchAll(t *testing.T) {
	for name, h := range map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
		"html 200": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>single-page app</html>"))
		},
	} {
		t.Run(name, func(t *testing.T) {
			as := newTestAS(t)
			as.handle(pathOAuth, h)
			as.serveDoc(pathOIDC, goodDoc(t, as.URL()))
			md, err := Fetch(t.Context(), Config{Issuer: as.URL()})
			if err != nil {
				t.Fatal(err)
			}
			if md.Source != as.URL()+pathOIDC {
				t.Errorf("Source = %q", md.Source)
			}
		})
	}
}

func TestFetchBothFail(t *testing.T) {
	as := newTestAS(t)
	_, err := Fetch(t.Context(), Config{Issuer: as.URL()})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), pathOIDC) || !strings.Contains(err.Error(), pathOAuth) {
		t.Errorf("err = %v, want both locations named", err)
	}
	if as.hitCount(pathOAuth) != 1 || as.hitCount(pathOIDC) != 1 {
		t.Errorf("hits = %v", as.hits)
	}
}

// TestFetchRejects serves a bad document at the RFC 8414 location (and
// nothing at the OIDC one) and checks the sentinel.
func TestFetchRejects(t *testing.T) {
	const iss = "ISSUER" // replaced by the server's URL
	tests := []struct {
		name     string
		issuer   string // configured: "" means the server URL; may contain ISSUER
		doc      string // ISSUER replaced by the server's URL
		insecure bool
		wantErr  error
	}{
		{name: "issuer with added trailing slash", doc: `{"issuer":"ISSUER/","jwks_uri":"ISSUER/jwks"}`, wantErr: ErrIssuerMismatch},
		{name: "configured with trailing slash", issuer: "ISSUER/", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks"}`, wantErr: ErrIssuerMismatch},
		{name: "issuer in upper case", doc: `{"issuer":"HTTP://127.0.0.1:PORT","jwks_uri":"ISSUER/jwks"}`, wantErr: ErrIssuerMismatch},
		{name: "other issuer", doc: `{"issuer":"https://evil.example.com","jwks_uri":"ISSUER/jwks"}`, wantErr: ErrIssuerMismatch},
		{name: "issuer with other path", issuer: "ISSUER/a", doc: `{"issuer":"ISSUER/b","jwks_uri":"ISSUER/jwks"}`, wantErr: ErrIssuerMismatch},
		{name: "issuer missing", doc: `{"jwks_uri":"ISSUER/jwks"}`, wantErr: ErrInvalid},
		{name: "issuer only in other case", doc: `{"Issuer":"ISSUER","jwks_uri":"ISSUER/jwks"}`, wantErr: ErrInvalid},
		{name: "issuer null", doc: `{"issuer":null,"jwks_uri":"ISSUER/jwks"}`, wantErr: ErrInvalid},
		{name: "issuer number", doc: `{"issuer":1,"jwks_uri":"ISSUER/jwks"}`, wantErr: ErrInvalid},
		{name: "issuer array", doc: `{"issuer":["ISSUER"],"jwks_uri":"ISSUER/jwks"}`, wantErr: ErrInvalid},
		{name: "jwks_uri http non-loopback", doc: `{"issuer":"ISSUER","jwks_uri":"http://keys.example.com/jwks"}`, wantErr: ErrInvalid},
		{name: "jwks_uri relative", doc: `{"issuer":"ISSUER","jwks_uri":"/jwks"}`, wantErr: ErrInvalid},
		{name: "jwks_uri empty", doc: `{"issuer":"ISSUER","jwks_uri":""}`, wantErr: ErrInvalid},
		{name: "jwks_uri user info", doc: `{"issuer":"ISSUER","jwks_uri":"https://u:p@keys.example.com/jwks"}`, wantErr: ErrInvalid},
		{name: "jwks_uri fragment", doc: `{"issuer":"ISSUER","jwks_uri":"https://keys.example.com/jwks#x"}`, wantErr: ErrInvalid},
		{name: "jwks_uri other scheme", doc: `{"issuer":"ISSUER","jwks_uri":"file:///etc/passwd"}`, wantErr: ErrInvalid},
		{name: "jwks_uri null", doc: `{"issuer":"ISSUER","jwks_uri":null,"introspection_endpoint":"ISSUER/i"}`, wantErr: ErrInvalid},
		{name: "jwks_uri object", doc: `{"issuer":"ISSUER","jwks_uri":{}}`, wantErr: ErrInvalid},
		{name: "introspection http non-loopback", doc: `{"issuer":"ISSUER","introspection_endpoint":"http://as.example.com/i"}`, wantErr: ErrInvalid},
		{name: "auth methods not strings", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks","introspection_endpoint_auth_methods_supported":["a",null]}`, wantErr: ErrInvalid},
		{name: "auth methods a string", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks","introspection_endpoint_auth_methods_supported":"a"}`, wantErr: ErrInvalid},
		{name: "no endpoint", doc: `{"issuer":"ISSUER"}`, wantErr: ErrInvalid},
		{name: "duplicate issuer", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks","issuer":"ISSUER"}`, wantErr: ErrInvalid},
		{name: "duplicate issuer, escaped", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks","\u0069ssuer":"https://evil.example.com"}`, wantErr: ErrInvalid},
		{name: "duplicate jwks_uri", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks","jwks_uri":"https://evil.example.com/jwks"}`, wantErr: ErrInvalid},
		{name: "duplicate introspection_endpoint", doc: `{"issuer":"ISSUER","introspection_endpoint":"ISSUER/i","introspection_endpoint":"ISSUER/i"}`, wantErr: ErrInvalid},
		{name: "not JSON", doc: `<html>hello</html>`, wantErr: ErrInvalid},
		{name: "empty body", doc: ``, wantErr: ErrInvalid},
		{name: "JSON array", doc: `[{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks"}]`, wantErr: ErrInvalid},
		{name: "JSON string", doc: `"ISSUER"`, wantErr: ErrInvalid},
		{name: "truncated", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks"`, wantErr: ErrInvalid},
		{name: "two objects", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks"}{}`, wantErr: ErrInvalid},
		{name: "trailing garbage", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks"} x`, wantErr: ErrInvalid},
		{name: "bad JSON in other member", doc: `{"issuer":"ISSUER","jwks_uri":"ISSUER/jwks","x":[1,}`, wantErr: ErrInvalid},
		// Accepted, for contrast.
		{name: "jwks_uri http non-loopback, insecure", doc: `{"issuer":"ISSUER","jwks_uri":"http://keys.example.com/jwks"}`, insecure: true},
		{name: "whitespace and other members", doc: " {\n \"issuer\" : \"ISSUER\" ,\"x\":{\"issuer\":1},\"jwks_uri\":\t\"ISSUER/jwks\"} \n"},
		{name: "introspection only", doc: `{"issuer":"ISSUER","introspection_endpoint":"ISSUER/i"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as := newTestAS(t)
			base := as.URL()
			repl := strings.NewReplacer(iss, base, "PORT", base[strings.LastIndex(base, ":")+1:])
			issuer := base
			if tt.issuer != "" {
				issuer = repl.Replace(tt.issuer)
			}
			as.serveDoc(metadataURLs(issuer)[0][len(base):], []byte(repl.Replace(tt.doc)))

			md, err := Fetch(t.Context(), Config{Issuer: issuer, InsecureAllowHTTP: tt.insecure})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if md.Issuer != issuer {
					t.Fatalf("Issuer = %q", md.Issuer)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if md != nil {
				t.Fatal("metadata returned with an error")
			}
			oidcHits := as.hitCount(metadataURLs(issuer)[1][len(base):])
			if tt.wantErr == ErrIssuerMismatch && oidcHits != 0 {
				t.Errorf("OIDC location tried after an issuer mismatch")
			}
			if strings.Contains(err.Error(), "evil") || strings.Contains(err.Error(), "html") {
				t.Errorf("error echoes the document: %v", err)
			}
		})
	}
}

func TestFetchMismatchAtOIDC(t *testing.T) {
	as := newTestAS(t)
	as.serveDoc(pathOIDC, goodDoc(t, "https://evil.example.com"))
	_, err := Fetch(t.Context(), Config{Issuer: as.URL()})
	if !errors.Is(err, ErrIssuerMismatch) {
		t.Fatalf("err = %v, want ErrIssuerMismatch", err)
	}
	if !errors.Is(err, ErrUnavailable) { // the RFC 8414 404 is wrapped in too
		t.Errorf("err = %v, want the first attempt's ErrUnavailable wrapped", err)
	}
}

func TestFetchBodySize(t *testing.T) {
	as := newTestAS(t)
	doc := goodDoc(t, as.URL())
	padded := func(n int) []byte { // a valid document of exactly n bytes
		pad := n - len(doc) - len(`,"pad":""`)
		return append(append([]byte{}, doc[:len(doc)-1]...), []byte(`,"pad":"`+strings.Repeat("x", pad)+`"}`)...)
	}
	tests := []struct {
		name    string
		max     int64
		size    int
		wantErr bool
	}{
		{"default, at limit", 0, 256 << 10, false},
		{"default, over limit", 0, 256<<10 + 1, true},
		{"default, far over", 0, 4 << 20, true},
		{"small limit, at", 1024, 1024, false},
		{"small limit, over", 1024, 1025, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := padded(tt.size)
			if len(body) != tt.size {
				t.Fatalf("body is %d bytes", len(body))
			}
			as.serveDoc(pathOAuth, body)
			as.serveDoc(pathOIDC, body)
			_, err := Fetch(t.Context(), Config{Issuer: as.URL(), MaxBodySize: tt.max})
			if tt.wantErr != (err != nil) {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestFetchRedirects(t *testing.T) {
	t.Run("to http non-loopback", func(t *testing.T) {
		as := newTestAS(t)
		redirect := func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "http://as.example.invalid/metadata", http.StatusFound)
		}
		as.handle(pathOAuth, redirect)
		as.handle(pathOIDC, redirect)
		_, err := Fetch(t.Context(), Config{Issuer: as.URL()})
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errRedirect) {
			t.Fatalf("err = %v, want ErrUnavailable and errRedirect", err)
		}
	})
	t.Run("https to loopback http", func(t *testing.T) {
		plain := newTestAS(t)
		plainIssuer := plain.URL()
		plain.serveDoc(pathOAuth, goodDoc(t, plainIssuer))

		tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, plainIssuer+pathOAuth, http.StatusFound)
		}))
		defer tlsSrv.Close()
		client, tr := defaultClient(tlsSrv.Client().Transport.(*http.Transport), false, nil)
		defer tr.CloseIdleConnections()
		c, err := Config{Issuer: tlsSrv.URL}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		_, err = fetch(t.Context(), &c, client)
		if !errors.Is(err, errRedirect) {
			t.Fatalf("err = %v, want errRedirect", err)
		}
		if n := plain.totalHits(); n != 0 {
			t.Errorf("redirect target hit %d times", n)
		}
	})
	t.Run("loopback http to loopback http", func(t *testing.T) {
		as := newTestAS(t)
		as.handle(pathOAuth, func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/moved", http.StatusFound)
		})
		as.serveDoc("/moved", goodDoc(t, as.URL()))
		md, err := Fetch(t.Context(), Config{Issuer: as.URL()})
		if err != nil {
			t.Fatal(err)
		}
		if md.Source != as.URL()+"/moved" {
			t.Errorf("Source = %q, want the final URL", md.Source)
		}
	})
	t.Run("too many", func(t *testing.T) {
		as := newTestAS(t)
		loop := func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, r.URL.Path, http.StatusFound) }
		as.handle(pathOAuth, loop)
		as.handle(pathOIDC, loop)
		_, err := Fetch(t.Context(), Config{Issuer: as.URL()})
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
		if n := as.totalHits(); n > 2*(maxRedirects+1) {
			t.Errorf("%d requests", n)
		}
	})
}

func TestFetchTimeout(t *testing.T) {
	as := newTestAS(t)
	release := make(chan struct{})
	defer close(release)
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}
	as.handle(pathOAuth, slow)
	as.handle(pathOIDC, slow)
	start := time.Now()
	_, err := Fetch(t.Context(), Config{Issuer: as.URL(), Timeout: 200 * time.Millisecond})
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Fetch took %v with a 200ms Timeout", el)
	}
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrUnavailable and context.DeadlineExceeded", err)
	}
	if n := as.hitCount(pathOIDC); n != 0 {
		t.Errorf("OIDC location tried after the time ran out")
	}
}

func TestFetchSlowBody(t *testing.T) {
	as := newTestAS(t)
	as.handle(pathOAuth, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"issuer":`))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	start := time.Now()
	_, err := Fetch(t.Context(), Config{Issuer: as.URL(), Timeout: 200 * time.Millisecond})
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("Fetch took %v", el)
	}
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestFetchContextCanceled(t *testing.T) {
	as := newTestAS(t)
	as.serveDoc(pathOAuth, goodDoc(t, as.URL()))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Fetch(ctx, Config{Issuer: as.URL()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // substring; "" means valid
	}{
		{"https", Config{Issuer: "https://as.example.com"}, ""},
		{"loopback http", Config{Issuer: "http://localhost:8080/x"}, ""},
		{"http with opt-out", Config{Issuer: "http://as.example.com", InsecureAllowHTTP: true}, ""},
		{"empty", Config{}, "discovery: Issuer: required"},
		{"http", Config{Issuer: "http://as.example.com"}, "Issuer: must be https"},
		{"relative", Config{Issuer: "as.example.com"}, "Issuer: must be an absolute URL"},
		{"query", Config{Issuer: "https://as.example.com/?a=b"}, "Issuer: must not have a query"},
		{"empty query", Config{Issuer: "https://as.example.com/?"}, "Issuer: must not have a query"},
		{"fragment", Config{Issuer: "https://as.example.com/#x"}, "Issuer: must not have a query or fragment"},
		{"user info", Config{Issuer: "https://u@as.example.com"}, "Issuer: must not contain user info"},
		{"scheme", Config{Issuer: "ftp://as.example.com"}, "Issuer: must be https"},
		{"negative size", Config{Issuer: "https://as.example.com", MaxBodySize: -1}, "MaxBodySize: must not be negative"},
		{"negative timeout", Config{Issuer: "https://as.example.com", Timeout: -1}, "Timeout: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.cfg.withDefaults()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.MaxBodySize != defaultMaxBodySize || c.Timeout != defaultTimeout {
					t.Errorf("defaults not filled: %+v", c)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if _, ferr := Fetch(t.Context(), tt.cfg); ferr == nil {
				t.Fatal("Fetch accepted the config")
			}
		})
	}
	_, err := Config{Issuer: "http://as.example.com", MaxBodySize: -1, Timeout: -1}.withDefaults()
	for _, f := range []string{"Issuer", "MaxBodySize", "Timeout"} {
		if err == nil || !strings.Contains(err.Error(), "discovery: "+f+":") {
			t.Errorf("joined error %v does not name %s", err, f)
		}
	}
}

// TestParseClientEndpoints: the endpoints a client uses are read and held
// to the same URL policy as jwks_uri; a repeated or mistyped member is an
// error.
func TestParseClientEndpoints(t *testing.T) {
	const iss = "https://as.example.com"
	doc := `{"issuer":"` + iss + `","jwks_uri":"https://as.example.com/jwks",
		"authorization_endpoint":"https://as.example.com/authorize","token_endpoint":"https://as.example.com/token",
		"revocation_endpoint":"https://as.example.com/revoke","end_session_endpoint":"https://as.example.com/logout",
		"pushed_authorization_request_endpoint":"https://as.example.com/par","code_challenge_methods_supported":["S256"],
		"require_pushed_authorization_requests":true,"dpop_signing_alg_values_supported":["ES256","EdDSA"]}`
	md, err := parseMetadata([]byte(doc), iss, false)
	if err != nil {
		t.Fatal(err)
	}
	want := &Metadata{
		Issuer: iss, JWKSURI: iss + "/jwks",
		AuthorizationEndpoint: iss + "/authorize", TokenEndpoint: iss + "/token", RevocationEndpoint: iss + "/revoke",
		EndSessionEndpoint: iss + "/logout", PAREndpoint: iss + "/par", CodeChallengeMethods: []string{"S256"},
		RequirePAR: true, DPoPSigningAlgs: []string{"ES256", "EdDSA"},
	}
	if diff := cmp.Diff(want, md); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, bad := range []string{
		`{"issuer":"` + iss + `","jwks_uri":"https://as.example.com/jwks","token_endpoint":"http://as.example.com/token"}`,
		`{"issuer":"` + iss + `","jwks_uri":"https://as.example.com/jwks","authorization_endpoint":"https://u:p@as.example.com/a"}`,
		`{"issuer":"` + iss + `","jwks_uri":"https://as.example.com/jwks","token_endpoint":"https://a/t","token_endpoint":"https://b/t"}`,
		`{"issuer":"` + iss + `","jwks_uri":"https://as.example.com/jwks","code_challenge_methods_supported":"S256"}`,
		`{"issuer":"` + iss + `","jwks_uri":"https://as.example.com/jwks","require_pushed_authorization_requests":"true"}`,
		`{"issuer":"` + iss + `","jwks_uri":"https://as.example.com/jwks","require_pushed_authorization_requests":1}`,
		`{"issuer":"` + iss + `","jwks_uri":"https://as.example.com/jwks","dpop_signing_alg_values_supported":"ES256"}`,
	} {
		if _, err := parseMetadata([]byte(bad), iss, false); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", bad, err)
		}
	}
}
