package introspect

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestParseResponse(t *testing.T) {
	deep := func(n int) string {
		return `{"active":true,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	tests := []struct {
		name    string
		body    string
		want    *Result // compared without Raw; nil when wantErr is set
		wantErr error
	}{
		{"minimal active", `{"active":true}`, &Result{Active: true}, nil},
		{"minimal inactive", `{"active":false}`, &Result{}, nil},
		{"white space", " \n{ \"active\" : true } \r\n", &Result{Active: true}, nil},
		{"all members", `{"active":true,"iss":"i","sub":"s","client_id":"c","scope":"a b","username":"u","token_type":"Bearer","aud":["x","y"],"exp":2,"iat":1,"nbf":1.5,"cnf":{"jkt":"k"}}`,
			&Result{Active: true, Issuer: "i", hasIssuer: true, Subject: "s", ClientID: "c", Scope: "a b", Username: "u", TokenType: "Bearer",
				Audience: []string{"x", "y"}, ExpiresAt: time.Unix(2, 0), IssuedAt: time.Unix(1, 0), NotBefore: time.Unix(1, 5e8), JKT: "k", Bound: true}, nil},
		{"step-up claims", `{"active":true,"acr":"mfa","auth_time":1700000000,"jti":"j1"}`, &Result{Active: true, ACR: "mfa", AuthTime: time.Unix(1700000000, 0), JTI: "j1"}, nil},
		{"cnf by escaped name", `{"active":true,"\u0063nf":{"x5t#S256":"t"}}`, &Result{Active: true, Bound: true}, nil},
		{"aud string", `{"active":true,"aud":"x"}`, &Result{Active: true, Audience: []string{"x"}}, nil},
		{"escaped strings", `{"active":true,"sub":"a\"b\u00e9\/"}`, &Result{Active: true, Subject: `a"bé/`}, nil},
		{"unknown members of any type", `{"active":true,"x":{"a":[1,{"b":null}]},"y":null,"z":-1.5e3}`, &Result{Active: true}, nil},
		{"other cnf methods: bound, no jkt", `{"active":true,"cnf":{"x5t#S256":"t"}}`, &Result{Active: true, Bound: true}, nil},
		{"depth at limit", deep(maxDepth - 1), &Result{Active: true}, nil},

		{"depth over limit", deep(maxDepth), nil, errTooDeep},
		{"active string", `{"active":"true"}`, nil, errActiveType},
		{"active object", `{"active":{}}`, nil, errActiveType},
		{"active missing", `{"sub":"x"}`, nil, errNoActive},
		{"empty object", `{}`, nil, errNoActive},
		{"duplicate active", `{"active":true,"active":true}`, nil, errDuplicate},
		{"duplicate iss", `{"active":true,"iss":"a","iss":"b"}`, nil, errDuplicate},
		{"duplicate aud", `{"active":true,"aud":"a","aud":"b"}`, nil, errDuplicate},
		{"duplicate exp", `{"active":true,"exp":1,"exp":2}`, nil, errDuplicate},
		{"duplicate cnf", `{"active":true,"cnf":{},"cnf":{}}`, nil, errDuplicate},
		{"duplicate cnf.jkt", `{"active":true,"cnf":{"jkt":"a","jkt":"b"}}`, nil, errDuplicate},
		{"duplicate active via escape", `{"active":false,"\u0061ctive":true}`, nil, errDuplicate},
		{"escaped name is active", `{"\u0061ctive":true}`, &Result{Active: true}, nil},
		{"invalid UTF-8", "{\"active\":true,\"sub\":\"\xff\"}", nil, errUTF8},
		{"control character in string", "{\"active\":true,\"sub\":\"a\nb\"}", nil, errSyntax},
		{"bad escape", `{"active":true,"sub":"\x"}`, nil, errSyntax},
		{"duplicate unknown member", `{"active":true,"x":1,"x":2}`, nil, errDuplicate},
		{"scope array", `{"active":true,"scope":["a"]}`, nil, errClaimType},
		{"sub null", `{"active":true,"sub":null}`, nil, errClaimType},
		{"aud number", `{"active":true,"aud":1}`, nil, errClaimType},
		{"aud array with number", `{"active":true,"aud":["a",1]}`, nil, errClaimType},
		{"aud object", `{"active":true,"aud":{}}`, nil, errClaimType},
		{"exp string", `{"active":true,"exp":"1"}`, nil, errClaimType},
		{"exp negative", `{"active":true,"exp":-1}`, nil, errNumber},
		{"exp huge", `{"active":true,"exp":1e300}`, nil, errNumber},
		{"exp overflow", `{"active":true,"exp":1e400}`, nil, errNumber},
		{"cnf string", `{"active":true,"cnf":"k"}`, nil, errClaimType},
		{"cnf.jkt number", `{"active":true,"cnf":{"jkt":1}}`, nil, errClaimType},
		{"array", `[]`, nil, errNotObject},
		{"string", `"active"`, nil, errNotObject},
		{"empty", ``, nil, errSyntax},
		{"truncated", `{"active":true`, nil, errSyntax},
		{"trailing comma", `{"active":true,}`, nil, errSyntax},
		{"single quotes", `{'active':true}`, nil, errSyntax},
		{"leading zero", `{"active":true,"exp":01}`, nil, errSyntax},
		{"trailing object", `{"active":true} {}`, nil, errTrailing},
		{"trailing garbage", `{"active":true}x`, nil, errTrailing},
		{"BOM", "\ufeff{\"active\":true}", nil, errSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseResponse([]byte(tt.body))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			}
			if tt.want == nil {
				return
			}
			if string(got.Raw) != tt.body {
				t.Errorf("Raw = %q, want the body", got.Raw)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.IgnoreFields(Result{}, "Raw"), cmp.AllowUnexported(Result{})); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
