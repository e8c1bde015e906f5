// Interop: tokenguard's gateway in front of an API, with tokens from a
// certified authorization server (panva/oidc-provider) obtained and used
// by a real OAuth client library (oauth4webapi). None of the code that
// mints, binds, introspects or revokes tokens here is ours.
//
// The cases run in order, sharing one provider, one upstream and one
// gateway; the key rotation cases restart the provider and come last.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { assertDenied, challenge, metric, pollUntil, sleep } from '../lib/checks.mjs';
import { callAPI, decodeJWT, discover, getToken, newDPoPKey, rawCall, revoke } from '../lib/client.mjs';
import { buildGateway, freePort, gatewayConfig, startGateway, startUpstream, tempDir } from '../lib/processes.mjs';
import { clients, makeKey, startProvider } from '../lib/provider.mjs';

const audience = 'https://api.tokenguard.test';
const otherAudience = 'https://other.tokenguard.test';

// Timings, kept short so the suite runs in seconds. Each wait below is
// bounded by one of these plus a margin.
const jwks = { min: 1, max: 2, rateLimit: 1 }; // seconds
const introspectionCacheMaxAge = 3; // seconds, issuer-wide (positive answers)
const freshRouteMaxAge = 1; // seconds, introspection_max_age on GET /fresh/
const negativeCacheAge = 5; // seconds: the guard's fixed cache time for inactive answers

describe('tokenguard gateway with oidc-provider and oauth4webapi', { timeout: 150_000 }, () => {
  let dir, provider, upstream, gateway, as, issuer, providerPort;
  // Keys: k1 (RS256) signs first; k2 (ES256) replaces it in the rotation.
  const k1 = makeKey('interop-k1-rs256', 'RS256');
  const k2 = makeKey('interop-k2-es256', 'ES256');
  // Tokens shared by several cases.
  let bearer; // m2m client, orders:read, signed by k1
  let bearerUnused; // the same, never sent before the rotation
  let dpopKey, dpopToken;

  const api = (p) => `${gateway.url}${p}`;
  const restartProvider = async (keys) => {
    await provider.close();
    provider = await startProvider({ port: providerPort, issuer, keys, audience, otherAudience });
    as = await discover(issuer);
  };

  before(async () => {
    dir = tempDir();
    const binP = buildGateway(dir);
    provider = await startProvider({ keys: [k1], audience, otherAudience });
    ({ issuer, port: providerPort } = provider);
    upstream = await startUpstream();
    const [bin, port, metricsPort] = await Promise.all([binP, freePort(), freePort()]);
    const config = gatewayConfig({
      port, metricsPort, upstream: upstream.url, audience, issuer,
      clientId: clients.rs.id, clientSecret: clients.rs.secret,
      jwksMin: `${jwks.min}s`, jwksMax: `${jwks.max}s`, jwksRateLimit: `${jwks.rateLimit}s`,
      introspectionCacheMaxAge: `${introspectionCacheMaxAge}s`,
      routes: [
        { pattern: 'GET /orders/', scopes: ['orders:read'] },
        { pattern: 'POST /orders/', scopes: ['orders:write'] },
        { pattern: 'GET /dpop-only/', scopes: ['orders:read'], requireDPoP: true },
        { pattern: 'GET /fresh/', scopes: ['orders:read'], introspectionMaxAge: `${freshRouteMaxAge}s` },
      ],
    });
    gateway = await startGateway({ bin, dir, config, port, metricsPort });
    as = await discover(issuer);
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.close();
    await provider?.close();
  });

  // Report the gateway's last log lines when something failed (all of
  // them with INTEROP_VERBOSE=1).
  after(() => {
    if (!gateway) return;
    if (process.env.INTEROP_VERBOSE) console.error(`--- tokenguard log ---\n${gateway.log()}`);
    else if (process.exitCode) console.error(`--- tokenguard log (last 40 lines) ---\n${gateway.logTail()}`);
  });

  it('discovers jwks_uri from the issuer metadata (the introspection endpoint: see the opaque cases)', () => {
    const paths = provider.requests.map((r) => r.path);
    assert.ok(
      paths.includes('/.well-known/oauth-authorization-server') || paths.includes('/.well-known/openid-configuration'),
      `metadata fetched (saw ${paths.join(' ')})`,
    );
    assert.ok(paths.includes(new URL(as.jwks_uri).pathname), 'the discovered jwks_uri was fetched');
  });

  it('no credential: 401 with Bearer and DPoP challenges naming resource metadata and DPoP algs', async () => {
    const reached = upstream.received.length;
    const res = await rawCall(api('/orders/1'));
    assert.equal(res.status, 401);
    const www = res.headers.get('www-authenticate');
    assert.match(www, /Bearer realm="[^"]+"/);
    // The audience is an https URL, so it is the RFC 9728 resource and
    // the metadata URL is derived from it.
    assert.ok(www.includes(`resource_metadata="${audience}/.well-known/oauth-protected-resource"`), www);
    assert.match(www, /DPoP [^]*algs="[^"]*ES256[^"]*"/);
    assert.doesNotMatch(www, /error=/, 'no error code when no credential was sent (RFC 6750 §3.1)');
    assert.equal(upstream.received.length, reached, 'the upstream was not reached');
  });

  it('serves RFC 9728 protected resource metadata naming the issuer', async () => {
    const res = await rawCall(api('/.well-known/oauth-protected-resource'));
    assert.equal(res.status, 200);
    assert.equal(res.body.resource, audience);
    assert.deepEqual(res.body.authorization_servers, [issuer]);
    assert.ok(res.body.scopes_supported.includes('orders:read'));
    assert.ok(res.body.dpop_signing_alg_values_supported.includes('ES256'));
  });

  it('Bearer RFC 9068 JWT from the AS: 200, identity forwarded, spoofed identity headers dropped', async () => {
    const t = await getToken(as, clients.m2m, { resource: audience, scope: 'orders:read' });
    bearer = t.access_token;
    const { header, payload } = decodeJWT(bearer);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(header.kid, k1.kid);
    assert.equal(payload.aud, audience);
    bearerUnused = (await getToken(as, clients.m2m, { resource: audience, scope: 'orders:read' })).access_token;

    const res = await callAPI(api('/orders/1'), bearer, { headers: { 'X-Tokenguard-Subject': 'admin' } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.upstream, true);
    assert.deepEqual(res.body.identity, {
      'x-tokenguard-subject': clients.m2m.id, // client credentials: sub is the client
      'x-tokenguard-client-id': clients.m2m.id,
      'x-tokenguard-scope': 'orders:read',
    });
  });

  it('missing scope: 403 insufficient_scope naming the scope, upstream not reached', async () => {
    const reached = upstream.received.length;
    const res = await callAPI(api('/orders/1'), bearer, { method: 'POST' });
    assertDenied(res, 403, 'Bearer', 'insufficient_scope', bearer);
    assert.equal(challenge(res, 'Bearer').parameters.scope, 'orders:write');
    assert.equal(upstream.received.length, reached);
  });

  it('token issued for another resource (aud): 401 invalid_token', async () => {
    const t = await getToken(as, clients.m2m, { resource: otherAudience, scope: 'orders:read' });
    assert.equal(decodeJWT(t.access_token).payload.aud, otherAudience);
    const res = await callAPI(api('/orders/1'), t.access_token);
    assertDenied(res, 401, 'Bearer', 'invalid_token', t.access_token);
  });

  it('DPoP-bound JWT with a proof from oauth4webapi: 200', async () => {
    dpopKey = await newDPoPKey();
    const t = await getToken(as, clients.dpop, { resource: audience, scope: 'orders:read', dpopKey });
    assert.equal(t.token_type.toLowerCase(), 'dpop');
    dpopToken = t.access_token;
    assert.ok(decodeJWT(dpopToken).payload.cnf?.jkt, 'the token is bound (cnf.jkt)');

    const res = await callAPI(api('/orders/2'), dpopToken, { dpopKey });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.identity['x-tokenguard-client-id'], clients.dpop.id);
    assert.match(upstream.received.at(-1).authorization, /^DPoP /);
    // The require_dpop route takes it too.
    const only = await callAPI(api('/dpop-only/1'), dpopToken, { dpopKey });
    assert.equal(only.status, 200);
  });

  it('the same DPoP-bound token sent as Bearer: 401 invalid_token', async () => {
    const res = await callAPI(api('/orders/2'), dpopToken);
    assertDenied(res, 401, 'Bearer', 'invalid_token', dpopToken);
  });

  it('DPoP-bound token with a proof from another key: 401', async () => {
    const res = await callAPI(api('/orders/2'), dpopToken, { dpopKey: await newDPoPKey() });
    assertDenied(res, 401, 'DPoP', 'invalid_token', dpopToken);
  });

  it('a replayed DPoP proof: 401 invalid_dpop_proof, counted as a replay', async () => {
    const first = await callAPI(api('/orders/3'), dpopToken, { dpopKey });
    assert.equal(first.status, 200);
    assert.ok(first.proof, 'captured the proof oauth4webapi sent');
    const replaysBefore = await metric(gateway.metricsURL, 'tokenguard_dpop_replays_total');
    const reached = upstream.received.length;
    const res = await rawCall(api('/orders/3'), { headers: { authorization: `DPoP ${dpopToken}`, dpop: first.proof } });
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate'), /DPoP [^]*error="invalid_dpop_proof"/);
    assert.equal(upstream.received.length, reached);
    assert.equal(await metric(gateway.metricsURL, 'tokenguard_dpop_replays_total'), replaysBefore + 1);
  });

  it('a Bearer token on a require_dpop route: 401', async () => {
    const res = await callAPI(api('/dpop-only/1'), bearer);
    assert.equal(res.status, 401);
    assert.match(res.headers.get('www-authenticate'), /error="invalid_token"/);
  });

  it('opaque token: 200 via discovered introspection; the answer is cached', async () => {
    const t = await getToken(as, clients.opaque, { resource: audience, scope: 'orders:read' });
    assert.equal(t.access_token.split('.').length, 1, 'an opaque token, not a JWT');
    const calls = () => provider.count(new URL(as.introspection_endpoint).pathname);
    const n = calls();
    const res = await callAPI(api('/orders/4'), t.access_token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.identity['x-tokenguard-client-id'], clients.opaque.id);
    assert.equal(res.body.identity['x-tokenguard-scope'], 'orders:read');
    assert.equal(calls(), n + 1, 'one introspection call');
    const again = await callAPI(api('/orders/4'), t.access_token);
    assert.equal(again.status, 200);
    assert.equal(calls(), n + 1, 'the second request used the cached answer');
  });

  it('unknown opaque token: 401 invalid_token; the inactive answer is cached', async () => {
    const token = 'not-a-token-this-AS-ever-issued-0123456789';
    const calls = () => provider.count(new URL(as.introspection_endpoint).pathname);
    const n = calls();
    const res = await callAPI(api('/orders/5'), token);
    assertDenied(res, 401, 'Bearer', 'invalid_token', token);
    assert.equal(calls(), n + 1);
    const again = await callAPI(api('/orders/5'), token);
    assert.equal(again.status, 401);
    assert.equal(calls(), n + 1, `within ${negativeCacheAge}s the inactive answer is reused`);
  });

  it(`opaque token revoked at the AS: 401 once the cached answer is older than ${introspectionCacheMaxAge}s`, async (t) => {
    const { access_token: token } = await getToken(as, clients.opaque, { resource: audience, scope: 'orders:read' });
    const ok = await callAPI(api('/orders/6'), token);
    const cachedAt = Date.now();
    assert.equal(ok.status, 200);
    await revoke(as, clients.opaque, token);
    // Within the cache age the gateway still answers from its cache: the
    // documented revocation latency. Only checked when this run got here
    // well inside the window (a loaded machine may not).
    const early = await callAPI(api('/orders/6'), token);
    if (Date.now() - cachedAt < (introspectionCacheMaxAge - 1) * 1000) {
      assert.equal(early.status, 200, 'answer cached for introspection_cache_max_age');
    } else {
      t.diagnostic('machine too slow to check the cached 200 inside the window');
    }
    await pollUntil(() => callAPI(api('/orders/6'), token), (r) => r.status === 401, (introspectionCacheMaxAge + 3) * 1000);
    t.diagnostic(`revocation seen ${Date.now() - cachedAt} ms after the first introspection`);
    assertDenied(await callAPI(api('/orders/6'), token), 401, 'Bearer', 'invalid_token', token);
  });

  it(`opaque token revoked at the AS: a route with introspection_max_age ${freshRouteMaxAge}s sees it within about a second`, async () => {
    const t = await getToken(as, clients.opaque, { resource: audience, scope: 'orders:read' });
    assert.equal((await callAPI(api('/fresh/1'), t.access_token)).status, 200);
    await revoke(as, clients.opaque, t.access_token);
    await sleep(freshRouteMaxAge * 1000 + 200);
    const res = await callAPI(api('/fresh/1'), t.access_token);
    assertDenied(res, 401, 'Bearer', 'invalid_token', t.access_token);
  });

  it('key rotation, step 1: new key published and signing; its tokens 200 at once (unknown kid), old-key tokens still 200', async (t) => {
    // Restart just after a scheduled JWKS fetch, so the next scheduled one
    // is at least jwks_min_refresh_interval away: the first request with
    // the new kid must then be what makes the gateway refetch.
    const jwksPath = new URL(as.jwks_uri).pathname;
    const since = Date.now();
    await pollUntil(async () => ({ status: provider.count(jwksPath, since) }), (r) => r.status > 0, (jwks.max + 2) * 1000, 20);
    const fetchedAt = Date.now();
    await restartProvider([k2, k1]);
    const { access_token: token } = await getToken(as, clients.m2m, { resource: audience, scope: 'orders:read' });
    assert.equal(decodeJWT(token).header.kid, k2.kid, 'the new key signs');

    t.diagnostic(`first new-key request ${Date.now() - fetchedAt} ms after the last scheduled JWKS fetch`);
    const res = await callAPI(api('/orders/7'), token);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const forced = provider.requests.filter((r) => r.path === jwksPath && /no-cache/.test(r.cacheControl));
    assert.ok(forced.length >= 1, 'the unknown kid made the gateway refetch the JWKS (Cache-Control: no-cache)');

    // Old key still published: its tokens still pass, including one the
    // gateway has never seen (no verified-token cache entry).
    assert.equal((await callAPI(api('/orders/8'), bearer)).status, 200);
    assert.equal((await callAPI(api('/orders/8'), bearerUnused)).status, 200);
  });

  it('key rotation, step 2: old key removed; its tokens 401 within the refresh interval, new-key tokens stay 200', async (t) => {
    const t2 = (await getToken(as, clients.m2m, { resource: audience, scope: 'orders:read' })).access_token;
    await restartProvider([k2]);
    const t3 = (await getToken(as, clients.m2m, { resource: audience, scope: 'orders:read' })).access_token;
    const { elapsed } = await pollUntil(() => callAPI(api('/orders/9'), bearer), (r) => r.status === 401, (jwks.max + 3) * 1000);
    t.diagnostic(`old-key token refused ${elapsed} ms after the key left the JWKS`);
    assertDenied(await callAPI(api('/orders/9'), bearer), 401, 'Bearer', 'invalid_token', bearer);
    assertDenied(await callAPI(api('/orders/9'), bearerUnused), 401, 'Bearer', 'invalid_token', bearerUnused);
    assert.equal((await callAPI(api('/orders/10'), t2)).status, 200, 'new-key token minted before the removal');
    assert.equal((await callAPI(api('/orders/10'), t3)).status, 200, 'new-key token minted after the removal');
  });
});
