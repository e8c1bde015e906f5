package gateway

import (
	"strings"
	"testing"

	"github.com/tokenguard/tokenguard/internal/envexpand"
)

func TestExpandEnv(t *testing.T) {
	env := envOf(map[string]string{"PASS": "s3cr3t", "HOST": "redis", "_X1": "x", "EVIL": "a}\n- b: ${PASS}"})
	tests := []struct {
		in, want string
		names    []string
		err      string
	}{
		{in: "plain", want: "plain"},
		{in: "${PASS}", want: "s3cr3t", names: []string{"PASS"}},
		{in: "redis://:${PASS}@${HOST}:6379/0", want: "redis://:s3cr3t@redis:6379/0", names: []string{"PASS", "HOST"}},
		{in: "${_X1}", want: "x", names: []string{"_X1"}},
		{in: "$${PASS}", want: "${PASS}"},   // the escape
		{in: "$$${PASS}", want: "$${PASS}"}, // read left to right: a lone "$", then the escape "$${"
		{in: "cost: $5", want: "cost: $5"},  // a bare $ stays
		{in: "$", want: "$"},
		{in: "a$b$$c", want: "a$b$$c"},
		{in: "${EVIL}", want: "a}\n- b: ${PASS}", names: []string{"EVIL"}}, // a value is never expanded again
		{in: "${UNSET}", err: "environment variable UNSET is not set"},
		{in: "${}", err: "is not a valid variable reference"},
		{in: "${1ABC}", err: "is not a valid variable reference"},
		{in: "${A-B}", err: "is not a valid variable reference"},
		{in: "${PASS", err: "has no closing }"},
		{in: "${ PASS }", err: "is not a valid variable reference"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, names, err := envexpand.Expand(tt.in, env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "s3cr3t") {
					t.Errorf("error shows a value: %v", err)
				}
				return
			}
			if err != nil || got != tt.want || strings.Join(names, ",") != strings.Join(tt.names, ",") {
				t.Errorf("= %q %v %v, want %q %v", got, names, err, tt.want, tt.names)
			}
		})
	}
}

func TestParseConfigEnv(t *testing.T) {
	secretYAML := edit(t, "    jwks_uri: http://127.0.0.1:7000/jwks\n",
		"    jwks_uri: http://127.0.0.1:7000/jwks\n    introspection_endpoint: http://127.0.0.1:7000/introspect\n    client_id: rs\n    client_secret: ${INTROSPECTION_SECRET}\n")
	t.Run("expands values", func(t *testing.T) {
		c, err := parseConfigEnv("t.yaml", []byte(secretYAML), envOf(map[string]string{"INTROSPECTION_SECRET": "hunter2"}))
		if err != nil {
			t.Fatal(err)
		}
		if c.Issuers[0].ClientSecret != "hunter2" {
			t.Errorf("client_secret %q", c.Issuers[0].ClientSecret)
		}
		if c.FromEnv["issuers[0].client_secret"] != "${INTROSPECTION_SECRET}" {
			t.Errorf("FromEnv %v", c.FromEnv)
		}
	})
	tests := []struct {
		name, yaml string
		env        map[string]string
		err        string
	}{
		{"unset names variable, key and line", secretYAML, nil,
			"line 11: issuers[0].client_secret: environment variable INTROSPECTION_SECRET is not set"},
		{"empty is unset", secretYAML, map[string]string{"INTROSPECTION_SECRET": ""},
			"line 11: issuers[0].client_secret: environment variable INTROSPECTION_SECRET is not set"},
		{"a value cannot inject structure", secretYAML, map[string]string{"INTROSPECTION_SECRET": "x\nrealm: injected\nlisten: 0.0.0.0:1"}, ""},
		{"keys are not expanded", validYAML + "${KEY}: x\n", map[string]string{"KEY": "realm"}, "line 18: ${KEY}: unknown key"},
		{"not in numbers", validYAML + "max_token_size: ${SIZE}\n", map[string]string{"SIZE": "100"}, "line 18: max_token_size: environment variables (${...}) are expanded only in string values"},
		{"not in booleans", validYAML + "insecure_allow_http: ${B}\n", map[string]string{"B": "true"}, "line 18: insecure_allow_http: environment variables"},
		{"bad name", validYAML + "realm: ${my-realm}\n", nil, "line 18: realm: ${my-realm} is not a valid variable reference"},
		{"a bad value is shown as written", strings.Replace(validYAML, "upstream: http://127.0.0.1:9000", "upstream: ${UPSTREAM}", 1), map[string]string{"UPSTREAM": "ftp://secret-host"},
			`line 3: upstream: "${UPSTREAM}" must be an absolute http:// or https:// URL`},
		{"in a list", edit(t, "scopes: [orders:read]", "scopes: [\"${SCOPE}\"]"), nil, "line 15: routes[0].scopes[0]: environment variable SCOPE is not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseConfigEnv("t.yaml", []byte(tt.yaml), envOf(tt.env))
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Realm != "" || c.Listen != "127.0.0.1:8080" || c.Issuers[0].ClientSecret != tt.env["INTROSPECTION_SECRET"] {
					t.Errorf("the variable changed the structure: realm %q listen %q", c.Realm, c.Listen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			for _, v := range tt.env {
				if v != "" && strings.Contains(err.Error(), v) && !strings.Contains(tt.err, v) {
					t.Errorf("error shows the variable's value: %v", err)
				}
			}
		})
	}
}

// FuzzExpandEnv checks the expander's properties on any input: it never
// panics; a string without "$" is unchanged; with every variable set to a
// value without "$", the output holds no "${" unless the input escaped one
// (so nothing is left half-expanded); and an error never contains a
// variable's value.
func FuzzExpandEnv(f *testing.F) {
	for _, s := range []string{
		"", "plain", "${A}", "$${A}", "$$${A}", "${", "${}", "${A", "$", "a$b", "${A}${B}", "${1}", "${A}}", "$}{", "${${A}}",
	} {
		f.Add(s)
	}
	const secret = "VALUE"
	getenv := func(name string) string {
		if name == "UNSET" {
			return ""
		}
		return secret
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, names, err := envexpand.Expand(s, getenv)
		if err != nil {
			if strings.Contains(err.Error(), secret) && !strings.Contains(s, secret) {
				t.Fatalf("error shows a value: %v", err)
			}
			return
		}
		if !strings.Contains(s, "$") && (out != s || names != nil) {
			t.Fatalf("%q changed to %q", s, out)
		}
		if strings.Contains(out, "${") && !strings.Contains(s, "$${") {
			t.Fatalf("%q expanded to %q, which still holds ${", s, out)
		}
		for _, n := range names {
			if !envexpand.ValidName(n) {
				t.Fatalf("used invalid name %q", n)
			}
		}
	})
}
