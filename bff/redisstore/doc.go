// Package redisstore is a [bff.Store] kept in Redis, for when several
// replicas of the token handler must share its sessions and pending
// logins. With the in-process store (bff.MemoryStore) a session made on
// one replica is unknown to the others; a single process has no need for
// this package.
//
// It is a package of its own so that programs which do not use Redis never
// link github.com/redis/go-redis: only importing redisstore does.
//
// # Use
//
//	store, err := redisstore.NewFromURL("redis://redis.internal:6379/0", redisstore.Options{})
//	if err != nil { ... }
//	defer store.Close()
//	cfg.Store = store // bff.Config, with a session key
//
// NewFromURL makes and owns a client with short, bounded timeouts
// (internal/redisurl, as dpop/redisstore): a single node from redis:// or
// rediss://, Sentinel from redis+sentinel://s1:26379?master_name=mymaster&addr=s2:26379,
// Cluster from redis+cluster://n1:7000?addr=n2:7001. Every operation
// (the index script included) touches one key, so any Cluster slot
// layout works. To configure a client
// beyond what a URL says, make it yourself, set ContextTimeoutEnabled, and
// pass it to [New]; the caller then keeps ownership and closes it.
//
// # What is stored
//
// The values are opaque bytes, at most [bff.MaxValueSize] each: sessions
// (the access, refresh and ID tokens, the ID token's claims, the
// session's times), the states of completed logins (so that a login
// completes once), the tokens of refresh locks and, with back-channel
// logout (bff.Config.BackchannelLogout), the jti markers of logout tokens
// seen and the indexes of sessions by sid and by subject: Redis SETs
// whose key is a hash of the issuer and the sid or subject and whose
// members are session key suffixes (hashes of session ids), so Redis
// never holds a sid, a subject or a session id in the clear. A started login is
// not stored: it lives in the browser's sealed login cookie, so
// anonymous requests write nothing here. The bff package seals sessions
// with its session key (AES-256-GCM) before it calls
// Set, and bff.Config requires a SessionKey with any store but its own
// MemoryStore, so Redis, its backups and whoever reads its traffic see
// only ciphertext; this package neither encrypts nor looks inside. Keys are the handler's, which never contain a
// cookie's value (a session's key is a hash of its id), under
// [Options.Prefix], inside a Cluster hash tag:
//
//	<prefix>{<key>}   value, PX <ttl in milliseconds>
//	<prefix>{<key>}   SET of members (an index), PEXPIRE <ttl in milliseconds>
//
// Every key has a time to live: Set's, Lock's and IndexAdd's ttl, rounded
// up to a whole millisecond, so Redis drops sessions, login markers,
// locks and indexes by itself when they run out, and nothing here sweeps.
// An index's time to live only grows: IndexAdd extends it to the ttl
// given when that is longer (the handler gives the session lifetime, so
// an index outlives every session in it), never shortens it. Each operation
// touches a single key, so a Cluster never answers CROSSSLOT; the hash
// tag only keeps the prefix out of the slot, so the keys spread over the
// slots while a prefix that has a hash tag of its own still wins. The key
// format is part of this package's compatibility promise: replicas on
// different versions during a rolling upgrade must compute the same keys.
//
// # What a call costs and what it promises
//
// Each call is one round trip, bounded by [Options.Timeout] (on top of
// the client's own dial, read and write timeouts and the caller's
// context):
//
//   - Get is GET; Set is SET PX; Delete is DEL.
//   - Lock is SET NX PX with a token of 256 random bits; Unlock is a
//     script that deletes the lock only if it still holds that token, so
//     a replica whose lock expired cannot release another's.
//   - IndexAdd is a script: SADD, then PEXPIRE when PTTL is shorter than
//     the ttl (so a set never exists without a time to live, and this
//     works on Redis before 7.0, which has no PEXPIRE GT);
//     IndexMembers is SMEMBERS; IndexRemove is SREM (Redis deletes an
//     empty set).
//
// A missing key is [bff.ErrNotFound]. A timeout, a cancelled context, a
// network error or an error reply from Redis (including OOM at maxmemory,
// READONLY on a demoted primary) is an error
// wrapping [bff.ErrStoreUnavailable] and its cause: the handler answers
// 503 rather than guess (fail closed). Errors never quote the Redis URL or
// its password.
//
// # Running Redis for this
//
//   - Memory: this package puts no bound on how many entries it writes;
//     Redis's maxmemory does. One session is its sealed value (a few KiB,
//     with the tokens) plus its key; the handler bounds values to
//     bff.MaxValueSize. Set maxmemory to what you will give sessions,
//     with the policy noeviction (the Redis default): a
//     full Redis then refuses new sessions, and logins fail with 503,
//     rather than evict live sessions or, worse, locks. With an evicting
//     policy (volatile-ttl, allkeys-lru) Redis logs users out to make
//     room instead.
//   - Restarts: with persistence off, a restarted Redis has forgotten
//     every session, and every user must log in again. Turn on appendonly
//     to keep them. Replication is asynchronous: after a Sentinel or
//     Cluster failover the newest sessions may be missing, and a refresh
//     token the AS rotated just before may be lost with them.
//   - Access: the values are sealed, but whoever can write to Redis can
//     delete sessions; keep it on a private network, with a password or
//     ACL user, and TLS (rediss://) where the network is not trusted.
//
// A Store is safe for concurrent use.
package redisstore
