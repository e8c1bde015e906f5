// Package redisstore is a [dpop.ReplayStore] kept in Redis, for when
// several replicas of a DPoP-protected API must share one record of used
// proofs. With the default in-process store (dpop.MemoryReplayStore) each
// replica remembers only the proofs it saw itself, so a proof accepted by
// one replica can be replayed at another; a single process has no need
// for this package.
//
// It is a package of its own so that programs which do not use Redis never
// link github.com/redis/go-redis: only importing redisstore does.
//
// # Use
//
//	store, err := redisstore.NewFromURL("redis://redis.internal:6379/0", redisstore.Options{})
//	if err != nil { ... }
//	defer store.Close()
//	cfg.DPoP.ReplayStore = store // middleware.Config
//
// NewFromURL makes and owns a client with short, bounded timeouts: a
// single node from redis:// or rediss://, Sentinel from
// redis+sentinel://s1:26379?master_name=mymaster&addr=s2:26379&addr=s3:26379,
// Cluster from redis+cluster://n1:7000?addr=n2:7001&addr=n3:7002 (and
// rediss+… for TLS). To configure a client beyond what a URL says, make it
// yourself, set ContextTimeoutEnabled, and pass it to [New]; the caller
// then keeps ownership and closes it.
//
// # What a call costs and what it promises
//
// Each [Store.Use] is exactly one round trip: a script that, atomically,
// refuses the proof if its record exists, counts it against its key's
// quota ([Options.KeyQuota]), and records it:
//
//	<prefix>{<base64url(key id)>}<base64url(proof id)>   1, PX <milliseconds until expires>
//	<prefix>{<base64url(key id)>}q                       the key's count for the window
//
// so of any number of concurrent calls with one proof, across any number
// of replicas, exactly one succeeds. The braces are a Cluster hash tag: a
// key's record and counter share a slot, while different keys spread over
// the slots. Records expire when the proof could no longer be accepted
// anyway, so Redis holds only proofs still inside the acceptance window.
// The key format is part of this package's compatibility promise:
// replicas on different versions during a rolling upgrade must compute
// the same keys, so the script also refuses a proof recorded under the
// previous format (<prefix><base64url(proof id)>) on single-node and
// Sentinel clients.
//
// A call is bounded by [Options.Timeout]. A timeout, a network error or
// an error reply from Redis (including OOM at maxmemory and READONLY on a
// demoted primary) makes Use return an error wrapping
// [dpop.ErrStoreUnavailable], never nil: the request is refused with 503
// rather than let through unchecked (fail closed).
//
// # Running Redis for this
//
//   - Eviction: set maxmemory-policy noeviction (the Redis default). Under
//     an evicting policy Redis may drop a record before its proof expires,
//     and that proof could then be replayed; with noeviction a full Redis
//     refuses writes and requests fail closed instead.
//   - Restarts: with persistence off, a restarted Redis has forgotten every
//     proof, so proofs used shortly before the restart can be replayed
//     until their acceptance window (dpop.DefaultMaxAge by default) runs
//     out. Turn on appendonly with appendfsync always to close that gap,
//     or accept the risk for the length of one window after each restart.
//   - Replication is asynchronous: a record the master acknowledged but
//     had not yet sent to its replica is missing after a Sentinel or
//     Cluster failover, and its proof can be accepted once more within
//     its window. TestSentinelUnreplicatedRecords cuts the replica's link
//     first: every proof acknowledged after the cut was accepted again
//     after the failover. With min-replicas-to-write 1 and
//     min-replicas-max-lag in the master's configuration the master
//     refuses those writes and Use fails with ErrStoreUnavailable (503)
//     instead; SECURITY.md has the measurements and the costs, and those
//     of WAIT, which this package does not send. While the sentinels
//     promote a replica, Use fails with ErrStoreUnavailable: service
//     resumed by itself 2.2 to 2.9 s after the master was killed
//     (down-after-milliseconds 1000).
//   - Resharding: while a Cluster slot migrates, Use fails with
//     ErrStoreUnavailable for the keys in it (Redis answers TRYAGAIN: the
//     script's keys are not all on one node) until the slot has moved;
//     records already moved are found through ASK (TestClusterAsk).
//   - TLS: rediss:// verifies the server's certificate against the
//     system's roots; SSL_CERT_FILE or SSL_CERT_DIR add a private CA
//     (for the whole process). A URL cannot name a client certificate:
//     for one, make the client with tls.Config.Certificates and pass it
//     to New.
//   - Clocks: the record lives for expires minus now by the clock of the
//     replica that wrote it. Keep the replicas' clocks synchronised (NTP),
//     as the proof window check already requires.
//   - Memory: one record is a key of len(Prefix)+88 bytes, a one-byte
//     value and an expiry (plus one counter per active key): about 212
//     bytes of Redis memory with the default prefix (measured on Redis
//     7.0 by TestMemoryPerRecord), so a million proofs per acceptance
//     window take about 210 MB.
//
// A Store is safe for concurrent use.
package redisstore
