package discovery

import (
	"encoding/json"
	"errors"
	"testing"
)

// FuzzParseMetadata feeds arbitrary documents to the parser. It must not
// panic; an accepted document must name exactly the configured issuer and
// carry endpoints that pass the URL policy; a refused one returns a
// sentinel and no metadata.
func FuzzParseMetadata(f *testing.F) {
	const issuer = "https://as.example.com/tenant1"
	seeds := []string{
		`{"issuer":"https://as.example.com/tenant1","jwks_uri":"https://as.example.com/jwks"}`,                                         // good
		`{"issuer":"https://as.example.com/tenant1","introspection_endpoint":"https://as.example.com/i"}`,                              // introspection only
		`{"issuer":"https://as.example.com/tenant1/","jwks_uri":"https://as.example.com/jwks"}`,                                        // trailing slash
		`{"issuer":"https://AS.example.com/tenant1","jwks_uri":"https://as.example.com/jwks"}`,                                         // case
		`{"issuer":"https://as.example.com/tenant%31","jwks_uri":"https://as.example.com/jwks"}`,                                       // percent-encoding
		`{"issuer":"https://as.example.com/tenant1","issuer":"https://evil","jwks_uri":"https://a/j"}`,                                 // duplicate
		`{"\u0069ssuer":"https://as.example.com/tenant1","jwks_uri":"https://a/j"}`,                                                    // escaped key
		`{"ISSUER":"https://as.example.com/tenant1","jwks_uri":"https://a/j"}`,                                                         // other case key
		`{"issuer":"https://as.example.com/tenant1","jwks_uri":"http://a/j"}`,                                                          // http endpoint
		`{"issuer":"https://as.example.com/tenant1","jwks_uri":"http://127.0.0.1/j"}`,                                                  // loopback http
		`{"issuer":"https://as.example.com/tenant1","jwks_uri":null}`,                                                                  // null
		`{"issuer":"https://as.example.com/tenant1","jwks_uri":"https://a/j","introspection_endpoint_auth_methods_supported":["a",1]}`, // bad array
		`{"issuer":"https://as.example.com/tenant1\u0000","jwks_uri":"https://a/j"}`,                                                   // NUL
		"{\"issuer\":\"https://as.example.com/tenant1\xff\",\"jwks_uri\":\"https://a/j\"}",                                             // invalid UTF-8
		`[]`,         // not an object
		`{}{}`,       // two objects
		`{"issuer":`, // truncated
		``,           // empty
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		md, err := parseMetadata(doc, issuer, false)
		if err != nil {
			if md != nil {
				t.Fatal("metadata and error")
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrIssuerMismatch) {
				t.Fatalf("error without a sentinel: %v", err)
			}
			return
		}
		if md.Issuer != issuer {
			t.Fatalf("accepted issuer %q, configured %q", md.Issuer, issuer)
		}
		// An independent parser (encoding/json, which keeps the last of
		// duplicate members) must read the same values: with duplicates
		// refused, there is no way to make the two disagree.
		var m map[string]any
		if err := json.Unmarshal(doc, &m); err != nil {
			t.Fatalf("accepted a document encoding/json refuses: %v", err)
		}
		if m["issuer"] != issuer {
			t.Fatalf("encoding/json reads issuer %q", m["issuer"])
		}
		for key, got := range map[string]string{"jwks_uri": md.JWKSURI, "introspection_endpoint": md.IntrospectionEndpoint} {
			if v, ok := m[key]; (ok || got != "") && v != got {
				t.Fatalf("encoding/json reads %s %q, we read %q", key, v, got)
			}
		}
		if md.JWKSURI == "" && md.IntrospectionEndpoint == "" {
			t.Fatal("accepted without endpoints")
		}
		for _, u := range []string{md.JWKSURI, md.IntrospectionEndpoint} {
			if u != "" {
				if err := checkURL(u, false); err != nil {
					t.Fatalf("accepted endpoint %q: %v", u, err)
				}
			}
		}
	})
}
