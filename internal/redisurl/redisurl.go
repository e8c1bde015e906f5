// Package redisurl makes the go-redis clients of tokenguard's Redis-backed
// stores (dpop/redisstore, bff/redisstore) from the URL a configuration
// names, with the same hardening for each: bounded timeouts, context
// deadlines honoured, TLS verification never off. It is a package of its
// own so only programs that use Redis link go-redis.
package redisurl

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientTimeout bounds dialling, each read and write and the wait for a
// pooled connection, unless the URL sets them.
const ClientTimeout = time.Second

// Topology is what a URL's scheme names.
type Topology int

const (
	Single   Topology = iota // redis://, rediss://, unix://
	Sentinel                 // redis+sentinel://, rediss+sentinel://
	Cluster                  // redis+cluster://, rediss+cluster://
)

// Schemes lists the URL schemes NewClient accepts for a networked Redis
// (unix:// is accepted too, for programs that want it).
var Schemes = []string{"redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"}

// Split returns the topology a URL's scheme names and the URL with
// "+sentinel" or "+cluster" dropped from its scheme, which is what
// go-redis's parsers take. ok is false for a scheme not in Schemes (nor
// unix). It never fails on, or quotes, the rest of the URL.
func Split(rawURL string) (t Topology, goRedisURL string, ok bool) {
	scheme, rest, found := strings.Cut(rawURL, "://")
	if !found {
		return 0, "", false
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss", "unix":
		return Single, rawURL, true
	case "redis+sentinel":
		return Sentinel, "redis://" + rest, true
	case "rediss+sentinel":
		return Sentinel, "rediss://" + rest, true
	case "redis+cluster":
		return Cluster, "redis://" + rest, true
	case "rediss+cluster":
		return Cluster, "rediss://" + rest, true
	}
	return 0, "", false
}

// NewClient returns a client made from a URL, whose scheme names the
// topology and whose rest is go-redis's own URL grammar:
//
//	redis://[user:password@]host[:port][/db]                      single node (redis.ParseURL)
//	rediss://…                                                    the same over TLS
//	unix://[user:password@]/path/to/redis.sock[?db=N]             single node, Unix socket
//	redis+sentinel://[user:password@]s1:26379[/db]?master_name=mymaster&addr=s2:26379&addr=s3:26379
//	rediss+sentinel://…                                           Sentinel (redis.ParseFailoverURL):
//	                                                              the hosts are sentinels; user and
//	                                                              password in the authority are the
//	                                                              sentinels', the master's are the
//	                                                              username= and password= parameters
//	redis+cluster://[user:password@]n1:7000?addr=n2:7001&addr=n3:7002
//	rediss+cluster://…                                            Cluster (redis.ParseClusterURL):
//	                                                              seed nodes; no database number
//
// It returns a *redis.Client for a single node and for Sentinel
// (redis.NewFailoverClient: it asks the sentinels for the master and
// follows a failover) and a *redis.ClusterClient for Cluster (it follows
// MOVED and ASK redirections).
//
// Query parameters set client options as go-redis's parsers document them
// (for example pool_size=20, dial_timeout=2s). Timeouts not set there are
// ClientTimeout each, the pool holds at most two connections per CPU (per
// node, for Cluster), and ContextTimeoutEnabled is always on. Refused:
// skip_verify (TLS verification off), and options that send commands to
// replicas (replica_only, route_by_latency, route_randomly, read_only),
// which could miss a record just written to the master. Errors never
// quote the URL, which may hold a password. The caller owns the client.
func NewClient(rawURL string) (redis.UniversalClient, error) {
	topo, u, ok := Split(rawURL)
	if !ok {
		return nil, errors.New("bad Redis URL: the scheme must be one of redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster (or unix)")
	}
	switch topo {
	case Sentinel:
		return newFailover(u)
	case Cluster:
		return newCluster(u)
	}
	copts, err := redis.ParseURL(u)
	if err != nil {
		return nil, parseError(err)
	}
	if err := checkTLS(copts.TLSConfig != nil && copts.TLSConfig.InsecureSkipVerify); err != nil {
		return nil, err
	}
	setTimeouts(&copts.DialTimeout, &copts.ReadTimeout, &copts.WriteTimeout, &copts.PoolTimeout)
	setPool(&copts.PoolSize)
	copts.ContextTimeoutEnabled = true
	return redis.NewClient(copts), nil
}

func newFailover(u string) (redis.UniversalClient, error) {
	fopts, err := redis.ParseFailoverURL(u)
	if err != nil {
		return nil, parseError(err)
	}
	if fopts.MasterName == "" {
		return nil, errors.New("bad Redis URL: a Sentinel URL needs master_name=<the name the sentinels monitor>")
	}
	if err := checkTLS(fopts.TLSConfig != nil && fopts.TLSConfig.InsecureSkipVerify); err != nil {
		return nil, err
	}
	if fopts.ReplicaOnly || fopts.RouteByLatency || fopts.RouteRandomly || fopts.UseDisconnectedReplicas {
		// redis.NewFailoverClient panics on the routing options, and
		// replicas refuse writes or answer stale reads.
		return nil, errors.New("bad Redis URL: replica_only, route_by_latency, route_randomly and use_disconnected_replicas are refused: the stores must talk to the master")
	}
	setTimeouts(&fopts.DialTimeout, &fopts.ReadTimeout, &fopts.WriteTimeout, &fopts.PoolTimeout)
	setPool(&fopts.PoolSize)
	fopts.ContextTimeoutEnabled = true
	return redis.NewFailoverClient(fopts), nil
}

func newCluster(u string) (redis.UniversalClient, error) {
	// ParseClusterURL ignores the path; a database number other than 0
	// would be silently dropped (Cluster has only database 0).
	if pu, err := url.Parse(u); err == nil {
		if p := strings.Trim(pu.Path, "/"); p != "" && p != "0" {
			return nil, errors.New("bad Redis URL: a Cluster URL has no database number (Cluster has only database 0)")
		}
	}
	copts, err := redis.ParseClusterURL(u)
	if err != nil {
		// skip_verify is not a Cluster URL option: go-redis refuses it
		// as unexpected, so TLS verification cannot be turned off here.
		return nil, parseError(err)
	}
	if err := checkTLS(copts.TLSConfig != nil && copts.TLSConfig.InsecureSkipVerify); err != nil {
		return nil, err
	}
	if copts.ReadOnly || copts.RouteByLatency || copts.RouteRandomly {
		return nil, errors.New("bad Redis URL: read_only, route_by_latency and route_randomly are refused: replicas could answer without a record just written to their master")
	}
	if copts.TLSConfig != nil && copts.TLSConfig.MinVersion == 0 {
		copts.TLSConfig.MinVersion = tls.VersionTLS12 // as the other parsers set
	}
	setTimeouts(&copts.DialTimeout, &copts.ReadTimeout, &copts.WriteTimeout, &copts.PoolTimeout)
	setPool(&copts.PoolSize)
	copts.ContextTimeoutEnabled = true
	return redis.NewClusterClient(copts), nil
}

// errNotURL replaces net/url's errors, which quote pieces of the URL.
var errNotURL = errors.New("bad Redis URL: it does not parse as a URL " +
	"(is the port a number? a password holding / ? # % or a space must be percent-encoded, / as %2F)")

// parseError strips what could quote the URL from a go-redis parser's
// error.
func parseError(err error) error {
	// A *url.Error repeats the URL, and its own message quotes a piece
	// of it: with a password holding "/", `invalid port ":<the password
	// up to the slash>" after host`. Neither is shown.
	if ue := (*url.Error)(nil); errors.As(err, &ue) {
		return errNotURL
	}
	return fmt.Errorf("bad Redis URL: %w", err)
}

func checkTLS(skipVerify bool) error {
	if skipVerify {
		// rediss://...?skip_verify=true: whoever sits between us and
		// Redis could answer anything.
		return errors.New("skip_verify turns off TLS certificate verification; refused (use a CA the system trusts)")
	}
	return nil
}

func setTimeouts(ds ...*time.Duration) {
	for _, d := range ds {
		if *d == 0 {
			*d = ClientTimeout
		}
	}
}

func setPool(n *int) {
	if *n == 0 {
		*n = 2 * runtime.GOMAXPROCS(0)
	}
}

// HonoursContext reports whether client is a type whose options can be
// inspected (known) and, if so, whether it honours context deadlines.
func HonoursContext(client redis.UniversalClient) (known, ok bool) {
	switch c := client.(type) {
	case *redis.Client:
		return true, c.Options().ContextTimeoutEnabled
	case *redis.ClusterClient:
		return true, c.Options().ContextTimeoutEnabled
	case *redis.Ring:
		return true, c.Options().ContextTimeoutEnabled
	}
	return false, false
}

// CheckClient reports what makes client unusable by a store whose calls
// are bounded by timeout: a nil client, a negative timeout, or a client
// whose options leave ContextTimeoutEnabled false (a deadline could not
// bound its calls). Both Redis stores' New call it, with their package
// name as the errors' prefix.
func CheckClient(pkg string, client redis.UniversalClient, timeout time.Duration) []error {
	if client == nil {
		return []error{errors.New(pkg + ": nil client")}
	}
	var errs []error
	if timeout < 0 {
		errs = append(errs, fmt.Errorf("%s: Options.Timeout: must not be negative, got %v", pkg, timeout))
	}
	if known, ok := HonoursContext(client); known && !ok {
		errs = append(errs, errors.New(pkg+": client: ContextTimeoutEnabled must be set, or Options.Timeout cannot bound calls"))
	}
	return errs
}
