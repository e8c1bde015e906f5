package introspect

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"
)

func TestConfigValidation(t *testing.T) {
	valid := func() Config {
		return Config{
			Endpoint:     "https://as.example.com/introspect",
			Issuer:       testIssuer,
			Audience:     testAudience,
			ClientID:     "rs",
			ClientSecret: "s3cret",
		}
	}
	smallRSA, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p224, err := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pkjwt := func(c *Config) {
		c.AuthMethod, c.ClientSecret, c.PrivateKey = PrivateKeyJWT, "", testKeys().p256
	}
	tests := []struct {
		name string
		edit func(*Config)
		want []string // substrings of the error; nil means valid
	}{
		{"valid basic", func(*Config) {}, nil},
		{"valid post", func(c *Config) { c.AuthMethod = ClientSecretPost }, nil},
		{"valid private_key_jwt", pkjwt, nil},
		{"valid private_key_jwt PS384", func(c *Config) { pkjwt(c); c.PrivateKey, c.Algorithm = testKeys().rsa, "PS384" }, nil},
		{"http loopback", func(c *Config) { c.Endpoint = "http://127.0.0.1:8080/i" }, nil},
		{"http localhost", func(c *Config) { c.Endpoint = "http://localhost/i" }, nil},
		{"http ::1", func(c *Config) { c.Endpoint = "http://[::1]:9/i" }, nil},
		{"http remote insecure", func(c *Config) { c.Endpoint, c.InsecureAllowHTTP = "http://as.example.com/i", true }, nil},
		{"zero config", func(c *Config) { *c = Config{} }, []string{"Endpoint: required", "Issuer: required", "Audience: required", "ClientID: required", "ClientSecret: required"}},
		{"http remote", func(c *Config) { c.Endpoint = "http://as.example.com/i" }, []string{"Endpoint: must be https"}},
		{"ftp", func(c *Config) { c.Endpoint = "ftp://as.example.com/i" }, []string{"Endpoint: must be https"}},
		{"relative", func(c *Config) { c.Endpoint = "/introspect" }, []string{"Endpoint: must be an absolute URL"}},
		{"user info", func(c *Config) { c.Endpoint = "https://u:p@as.example.com/i" }, []string{"Endpoint: must not contain user info"}},
		{"fragment", func(c *Config) { c.Endpoint = "https://as.example.com/i#x" }, []string{"Endpoint: must not contain a fragment"}},
		{"bad URL", func(c *Config) { c.Endpoint = "https://as.example.com/%zz" }, []string{"Endpoint: not a valid URL"}},
		{"unknown method", func(c *Config) { c.AuthMethod = 7 }, []string{"AuthMethod: unknown method 7"}},
		{"key with basic", func(c *Config) { c.PrivateKey = testKeys().p256 }, []string{"PrivateKey: set, but AuthMethod is client_secret_basic"}},
		{"alg with post", func(c *Config) { c.AuthMethod, c.Algorithm = ClientSecretPost, "ES256" }, []string{"KeyID and Algorithm are only for PrivateKeyJWT"}},
		{"jwt without key", func(c *Config) { pkjwt(c); c.PrivateKey = nil }, []string{"PrivateKey: required for private_key_jwt"}},
		{"jwt with secret", func(c *Config) { pkjwt(c); c.ClientSecret = "x" }, []string{"ClientSecret: set, but AuthMethod is private_key_jwt"}},
		{"jwt alg mismatch", func(c *Config) { pkjwt(c); c.Algorithm = "RS256" }, []string{`Algorithm: "RS256" does not fit`}},
		{"jwt HS256", func(c *Config) { pkjwt(c); c.Algorithm = "HS256" }, []string{`Algorithm: "HS256" does not fit`}},
		{"jwt small RSA", func(c *Config) { pkjwt(c); c.PrivateKey = smallRSA }, []string{"Algorithm: RSA keys must have at least 2048 bits"}},
		{"jwt P-224", func(c *Config) { pkjwt(c); c.PrivateKey = p224 }, []string{"Algorithm: unsupported ECDSA curve"}},
		{"negatives", func(c *Config) {
			c.Timeout, c.MaxCacheAge, c.NegativeCacheAge, c.Leeway = -1, -1, -1, -1
			c.MaxResponseSize, c.CacheSize = -1, -1
		}, []string{"Timeout: must not be negative", "MaxCacheAge: must not be negative", "NegativeCacheAge: must not be negative", "Leeway: must not be negative", "MaxResponseSize: must not be negative", "CacheSize: must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid()
			tt.edit(&cfg)
			c, err := New(cfg)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatal("New succeeded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q leaks the secret", err)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, _, err := Config{
		Endpoint: "https://as.example.com/i", Issuer: testIssuer, Audience: testAudience,
		ClientID: "rs", ClientSecret: "x",
	}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 5*time.Second || cfg.MaxResponseSize != 64<<10 || cfg.CacheSize != 10_000 ||
		cfg.MaxCacheAge != time.Minute || cfg.NegativeCacheAge != 5*time.Second || cfg.Leeway != 30*time.Second || cfg.Now == nil {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestAuthMethodString(t *testing.T) {
	for m, want := range map[AuthMethod]string{
		ClientSecretBasic: "client_secret_basic", ClientSecretPost: "client_secret_post",
		PrivateKeyJWT: "private_key_jwt", 9: "AuthMethod(9)",
	} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(m), got, want)
		}
	}
}
