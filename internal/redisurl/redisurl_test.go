package redisurl

import (
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestTopologies(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want string // the client's type
		tls  bool
	}{
		{"redis://:pw@h:6379/2", "single", false},
		{"rediss://h:6380/0", "single", true},
		{"REDIS+SENTINEL://s1:26379?master_name=m&addr=s2:26379&addr=s3:26379", "sentinel", false},
		{"rediss+sentinel://u:pw@s1:26379/1?master_name=m&password=mpw", "sentinel", true},
		{"redis+cluster://n1:7000?addr=n2:7001&addr=n3:7002", "cluster", false},
		{"rediss+cluster://u:pw@n1:7000/0?addr=n2:7001", "cluster", true},
	} {
		c, err := NewClient(tc.url)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		known, ok := HonoursContext(c)
		if !known || !ok {
			t.Errorf("%s: HonoursContext = %v, %v", tc.url, known, ok)
		}
		switch c := c.(type) {
		case *redis.Client:
			o := c.Options()
			if o.DialTimeout != ClientTimeout || o.ReadTimeout != ClientTimeout || o.PoolSize == 0 {
				t.Errorf("%s: timeouts/pool not defaulted: %v %v %d", tc.url, o.DialTimeout, o.ReadTimeout, o.PoolSize)
			}
			if (o.TLSConfig != nil) != tc.tls {
				t.Errorf("%s: TLS = %v", tc.url, o.TLSConfig != nil)
			}
			// A failover client's Addr is the "FailoverClient" placeholder.
			got := "single"
			if o.Addr == "FailoverClient" {
				got = "sentinel"
			}
			if got != tc.want {
				t.Errorf("%s: a %s client, want %s", tc.url, got, tc.want)
			}
		case *redis.ClusterClient:
			o := c.Options()
			if tc.want != "cluster" {
				t.Errorf("%s: a cluster client, want %s", tc.url, tc.want)
			}
			if len(o.Addrs) < 2 || o.DialTimeout != ClientTimeout || o.PoolTimeout != ClientTimeout {
				t.Errorf("%s: %v %v %v", tc.url, o.Addrs, o.DialTimeout, o.PoolTimeout)
			}
			if (o.TLSConfig != nil) != tc.tls {
				t.Errorf("%s: TLS = %v", tc.url, o.TLSConfig != nil)
			}
		default:
			t.Errorf("%s: client type %T", tc.url, c)
		}
		c.Close()
	}
}

func TestURLOptionsKept(t *testing.T) {
	c, err := NewClient("redis+sentinel://s1:26379?master_name=m&dial_timeout=3s&pool_size=7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := c.(*redis.Client).Options()
	if o.DialTimeout != 3*time.Second || o.PoolSize != 7 || o.ReadTimeout != ClientTimeout {
		t.Errorf("got dial %v pool %d read %v", o.DialTimeout, o.PoolSize, o.ReadTimeout)
	}
}

// TestRefused: each is refused, and no error quotes the password.
func TestRefused(t *testing.T) {
	const secret = "s3cr3tPW"
	for _, u := range []string{
		"memcached://:" + secret + "@h:1",
		"redis+ring://:" + secret + "@h:1",
		"rediss://:" + secret + "@h:6380?skip_verify=true",
		"rediss+sentinel://:" + secret + "@s:26379?master_name=m&skip_verify=true",
		"rediss+cluster://:" + secret + "@n:7000?skip_verify=true",
		"redis+sentinel://:" + secret + "@s:26379",                              // no master_name
		"redis+sentinel://:" + secret + "@s:26379?master_name=m&replica_only=1", // replicas
		"redis+sentinel://:" + secret + "@s:26379?master_name=m&route_randomly=1",
		"redis+sentinel://:" + secret + "@s:26379?master_name=m&route_by_latency=true",
		"redis+cluster://:" + secret + "@n:7000?read_only=true",
		"redis+cluster://:" + secret + "@n:7000?route_randomly=true",
		"redis+cluster://:" + secret + "@n:7000/3",
		"redis+cluster://:" + secret + "@n:7000?master_name=m",
		"redis+sentinel://:" + secret + "@s:26379?master_name=m&addr=nohost",
		"redis+cluster://:" + secret + "@n:port",
		"redis+sentinel://s:26379?master_name=m&password=" + secret + "&dial_timeout=x",
		"redis://:" + secret + "@h:6379/x",
		"redis://:" + secret + "@h:6379/0?password=" + secret + "&pool_size=x",
		// Characters that end the authority early: net/url's own error
		// would quote the password up to them.
		"redis://:" + secret + "/rest@h:6379/0",
		"rediss://:" + secret + "?rest@h:6380/0",
		"rediss://:" + secret + "#rest@h:6380/0",
		"redis+sentinel://:" + secret + "/rest@s:26379?master_name=m",
		"redis+cluster://:" + secret + "/rest@n:7000",
		"redis://:" + secret + "%zz@h:6379/0", // a bad escape
	} {
		c, err := NewClient(u)
		if err == nil {
			c.Close()
			t.Errorf("%s: accepted", u)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error quotes the password: %v", err)
		}
	}
}

// TestTLSServerName: go-redis verifies every node of a rediss+sentinel://
// or rediss+cluster:// URL (sentinels, master and replicas, cluster
// nodes) against the URL's first host, not the address it dials, so
// each node's certificate must be valid for that name (docs/config.md
// says so).
func TestTLSServerName(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"rediss://redis.internal:6380/0", "redis.internal"},
		{"rediss+sentinel://s1.internal:26379?master_name=m&addr=s2.internal:26379", "s1.internal"},
		{"rediss+cluster://n1.internal:7000?addr=n2.internal:7000", "n1.internal"},
	} {
		c, err := NewClient(tc.url)
		if err != nil {
			t.Fatalf("%s: %v", tc.url, err)
		}
		var cfg *tls.Config
		switch c := c.(type) {
		case *redis.Client:
			cfg = c.Options().TLSConfig
		case *redis.ClusterClient:
			cfg = c.Options().TLSConfig
		}
		c.Close()
		if cfg == nil || cfg.ServerName != tc.want || cfg.InsecureSkipVerify || cfg.MinVersion < tls.VersionTLS12 {
			t.Errorf("%s: TLS config %+v, want ServerName %q, verification on, TLS 1.2 or later", tc.url, cfg, tc.want)
		}
	}
}

func TestSplit(t *testing.T) {
	for in, want := range map[string]string{
		"redis+sentinel://a:1?master_name=m": "redis://a:1?master_name=m",
		"rediss+cluster://a:1":               "rediss://a:1",
		"rediss://a:1":                       "rediss://a:1",
	} {
		if _, got, ok := Split(in); !ok || got != want {
			t.Errorf("Split(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, _, ok := Split("http://a"); ok {
		t.Error("http accepted")
	}
}
