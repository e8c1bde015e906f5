package demo

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"

	"github.com/tokenguard/tokenguard/internal/devissuer"
	"github.com/tokenguard/tokenguard/internal/dpoptest"
	"github.com/tokenguard/tokenguard/internal/testkit"
)

func TestListenDemoFallback(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addr := busy.Addr().String()
	log := slog.New(slog.DiscardHandler)

	// A default address that is taken falls back to a free port.
	ln, err := listen("listen", addr, false, log)
	if err != nil {
		t.Fatalf("default address taken: %v", err)
	}
	if ln.Addr().String() == addr {
		t.Error("fell back to the busy address")
	}
	ln.Close()

	// An address the user chose is not silently replaced.
	_, err = listen("listen", addr, true, log)
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "-listen "+addr) {
		t.Errorf("explicit address taken: err = %v", err)
	}

	for _, bad := range []string{"0.0.0.0:0", "192.0.2.1:8080", "example.com:80", "8080"} {
		if _, err := listen("issuer", bad, true, log); err == nil {
			t.Errorf("listenDemo(%q) succeeded; the demo must stay on loopback", bad)
		}
	}
}

// The demo issuer's token endpoint mints Bearer tokens as before, and
// DPoP-bound ones (cnf.jkt, token_type DPoP) for a request with a valid
// proof of possession for it.
func TestDemoTokenEndpoint(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	key, err := devissuer.GenerateKey("ES256", "k1")
	if err != nil {
		t.Fatal(err)
	}
	is := devissuer.New("http://"+srv.Listener.Addr().String(), audience, key)
	tokenURL := is.URL() + "/token"
	h, err := newIssuerHandler(is, tokenURL, false)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()
	client := dpoptest.NewClient(t)

	type tokenResponse struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int    `json:"expires_in"`
		Scope       string `json:"scope"`
		Error       string `json:"error"`
	}
	post := func(t *testing.T, method, accept string, proofs ...string) (int, string, tokenResponse) {
		t.Helper()
		req, _ := http.NewRequest(method, tokenURL+"?scope=orders:read", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		for _, p := range proofs {
			req.Header.Add("DPoP", p)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var tr tokenResponse
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			if err := json.Unmarshal(body, &tr); err != nil {
				t.Fatalf("%v: %q", err, body)
			}
		}
		return resp.StatusCode, string(body), tr
	}

	t.Run("no proof: a Bearer token, as text", func(t *testing.T) {
		status, body, _ := post(t, "GET", "")
		if status != 200 || strings.Count(body, ".") != 2 || !strings.HasSuffix(body, "\n") {
			t.Fatalf("%d %q", status, body)
		}
		if jkt := testkit.TokenJKT(t, strings.TrimSpace(body)); jkt != "" {
			t.Errorf("an unbound request got a bound token (jkt %q)", jkt)
		}
	})
	t.Run("no proof, JSON: token_type Bearer", func(t *testing.T) {
		status, _, tr := post(t, "POST", "application/json")
		if status != 200 || tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.Scope != "orders:read" || tr.AccessToken == "" {
			t.Errorf("%d %+v", status, tr)
		}
	})
	t.Run("valid proof: bound to its key, token_type DPoP", func(t *testing.T) {
		status, _, tr := post(t, "POST", "application/json", client.Proof(t, "POST", tokenURL, "", ""))
		if status != 200 || tr.TokenType != "DPoP" {
			t.Fatalf("%d %+v", status, tr)
		}
		if jkt := testkit.TokenJKT(t, tr.AccessToken); jkt != client.JKT {
			t.Errorf("cnf.jkt = %q, want %q", jkt, client.JKT)
		}
	})
	t.Run("valid proof, text", func(t *testing.T) {
		status, body, _ := post(t, "GET", "", client.Proof(t, "GET", tokenURL, "", ""))
		if status != 200 || testkit.TokenJKT(t, strings.TrimSpace(body)) != client.JKT {
			t.Errorf("%d %q", status, body)
		}
	})

	replayed := client.Proof(t, "POST", tokenURL, "", "")
	if status, _, _ := post(t, "POST", ""); status != 200 {
		t.Fatal(status)
	}
	if status, _, _ := post(t, "POST", "", replayed); status != 200 {
		t.Fatal(status)
	}
	for _, tc := range []struct {
		name   string
		method string
		proofs []string
	}{
		{"replayed proof", "POST", []string{replayed}},
		{"proof for another method", "GET", []string{client.Proof(t, "POST", tokenURL, "", "")}},
		{"proof for another URL", "POST", []string{client.Proof(t, "POST", is.URL()+"/other", "", "")}},
		{"not a proof", "POST", []string{"not.a.proof"}},
		{"two proofs", "POST", []string{client.Proof(t, "POST", tokenURL, "", ""), client.Proof(t, "POST", tokenURL, "", "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, tr := post(t, tc.method, "", tc.proofs...)
			if status != http.StatusBadRequest || tr.Error != "invalid_dpop_proof" || tr.AccessToken != "" {
				t.Errorf("%d %q", status, body)
			}
		})
	}

	// The rest of the development issuer is still served.
	if resp, err := srv.Client().Get(is.URL() + "/jwks"); err != nil || resp.StatusCode != 200 {
		t.Errorf("/jwks: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
