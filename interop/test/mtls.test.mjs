// Interop, issue #17: certificate-bound access tokens (RFC 8705) and
// signed introspection answers (RFC 9701), with oidc-provider binding the
// tokens and signing the answers and oauth4webapi getting and using them.
//
// One provider (its token endpoint on a TLS listener that asks for client
// certificates), one upstream, and three gateways:
//   - tlsGateway: HTTPS with tls.client_certs: request, its issuer asking
//     oidc-provider for signed introspection answers
//     (introspection_response: jwt);
//   - headerGateway: plain HTTP behind a "proxy" (this test, from
//     127.0.0.1, in trusted_proxies) that reports the client's
//     certificate in RFC 9440's Client-Cert; its issuer's introspection
//     endpoint is a fake that forges signed answers (the JWKS stays
//     oidc-provider's);
//   - headerASGateway: the same shape behind the same "proxy", its issuer
//     asking oidc-provider for signed introspection answers, for the
//     bound opaque token.
// Certificates are made here (lib/certs.mjs): the servers' for
// 127.0.0.1, which the client trusts, and self-signed client ones.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { clientCertHeader, makeCert } from '../lib/certs.mjs';
import { assertDenied, metric } from '../lib/checks.mjs';
import { callAPI, decodeJWT, discover, getBoundToken, getToken, tlsFetch } from '../lib/client.mjs';
import { startFakeIntrospection } from '../lib/fake-introspection.mjs';
import { buildGateway, freePort, gatewayConfig, startGateway, startUpstream, tempDir } from '../lib/processes.mjs';
import { clients, makeKey, startProvider } from '../lib/provider.mjs';

const audience = 'https://api.tokenguard.test';
const otherAudience = 'https://other.tokenguard.test';
const routes = [{ pattern: 'GET /orders/', scopes: ['orders:read'] }];

describe('certificate-bound tokens (RFC 8705) and signed introspection answers (RFC 9701)', { timeout: 60_000 }, () => {
  let provider, upstream, fake, tlsGateway, headerGateway, headerASGateway, as;
  const key = makeKey('interop-mtls-rs256', 'RS256');
  const server = makeCert('127.0.0.1', { ip: '127.0.0.1' }); // the provider's and tlsGateway's
  const certA = makeCert('mtls-client'); // registered for clients.mtls
  const certB = makeCert('mtls-opaque-client'); // registered for clients.mtlsOpaque
  const stranger = makeCert('stranger'); // registered nowhere
  // tlsFetch options: trust the servers' certificate; present c, if any.
  const tls = (c) => ({ ca: server.cert, ...(c && { cert: c.cert, key: c.key }) });
  let jwtA; // bound to certA, a JWT
  let opaqueB; // bound to certB, opaque

  before(async () => {
    const dir = tempDir();
    const binP = buildGateway(dir);
    const certFile = path.join(dir, 'server.crt');
    const keyFile = path.join(dir, 'server.key');
    fs.writeFileSync(certFile, server.cert);
    fs.writeFileSync(keyFile, server.key, { mode: 0o600 });
    provider = await startProvider({
      keys: [key], audience, otherAudience,
      mtls: { server: { cert: server.cert, key: server.key }, clientCerts: { mtls: certA.jwk, mtlsOpaque: certB.jwk } },
    });
    upstream = await startUpstream();
    fake = await startFakeIntrospection({ issuer: provider.issuer, issuerKey: key, audience, clientId: clients.rs.id });
    const [bin, p1, m1, p2, m2, p3, m3] = await Promise.all([binP, freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    const common = {
      upstream: upstream.url, audience, issuer: provider.issuer, routes,
      clientId: clients.rs.id, clientSecret: clients.rs.secret, introspectionResponse: 'jwt',
    };
    const start = async (name, port, metricsPort, extra) => {
      const d = path.join(dir, name);
      fs.mkdirSync(d);
      return startGateway({ bin, dir: d, port, metricsPort, config: gatewayConfig({ ...common, port, metricsPort, ...extra }) });
    };
    // allSettled: if one fails to start, the others are still kept, so
    // that after() stops them.
    const behindProxy = { trustedProxies: ['127.0.0.1/32'], clientCertHeader: 'Client-Cert' };
    const started = await Promise.allSettled([
      start('tls', p1, m1, { tls: { certFile, keyFile, clientCerts: 'request' } }),
      start('header', p2, m2, { ...behindProxy, introspectionEndpoint: fake.url }),
      start('header-as', p3, m3, behindProxy),
    ]);
    [tlsGateway, headerGateway, headerASGateway] = started.map((r) => r.value);
    for (const r of started) if (r.status === 'rejected') throw r.reason;
    as = await discover(provider.issuer);
  });

  after(async () => {
    await Promise.all([tlsGateway?.stop(), headerGateway?.stop(), headerASGateway?.stop()]);
    await Promise.all([upstream?.close(), fake?.close(), provider?.close()]);
  });

  after(() => {
    for (const [name, gw] of [['tls', tlsGateway], ['header', headerGateway], ['header-as', headerASGateway]]) {
      if (!gw) continue;
      if (process.env.INTEROP_VERBOSE) console.error(`--- tokenguard (${name}) log ---\n${gw.log()}`);
      else if (process.exitCode) console.error(`--- tokenguard (${name}) log (last 40 lines) ---\n${gw.logTail()}`);
    }
  });

  const denied = (gw, reason) => metric(gw.metricsURL, 'tokenguard_requests_total', { result: 'denied', reason });

  it('oidc-provider binds tokens to the certificate presented at its mTLS token endpoint', async () => {
    assert.equal(as.tls_client_certificate_bound_access_tokens, true);
    assert.match(as.mtls_endpoint_aliases.token_endpoint, /^https:\/\/127\.0\.0\.1:\d+\/token$/);
    const t = await getBoundToken(as, clients.mtls, { resource: audience, scope: 'orders:read', tls: tls(certA) });
    assert.equal(t.token_type.toLowerCase(), 'bearer');
    jwtA = t.access_token;
    const { header, payload } = decodeJWT(jwtA);
    assert.equal(header.typ, 'at+jwt');
    assert.equal(payload.aud, audience);
    assert.deepEqual(payload.cnf, { 'x5t#S256': certA.x5tS256 });
    const o = await getBoundToken(as, clients.mtlsOpaque, { resource: audience, scope: 'orders:read', tls: tls(certB) });
    opaqueB = o.access_token;
    assert.equal(opaqueB.split('.').length, 1, 'an opaque token');
    assert.ok(provider.requests.some((r) => r.path === '/token' && r.clientCert), 'a token request came with a client certificate');
  });

  it('RFC 9728 metadata at the TLS gateway says tls_client_certificate_bound_access_tokens', async () => {
    const res = await tlsFetch(tls())(`${tlsGateway.url}/.well-known/oauth-protected-resource`);
    assert.equal(res.status, 200);
    assert.equal((await res.json()).tls_client_certificate_bound_access_tokens, true);
  });

  it('TLS at the gateway: bound JWT with its certificate: 200, identity forwarded', async () => {
    const res = await callAPI(`${tlsGateway.url}/orders/1`, jwtA, { tls: tls(certA) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body.identity, {
      'x-tokenguard-subject': clients.mtls.id,
      'x-tokenguard-client-id': clients.mtls.id,
      'x-tokenguard-scope': 'orders:read',
    });
  });

  it('TLS at the gateway: bound JWT with another certificate, or none: 401 invalid_token, upstream not reached', async () => {
    const reached = upstream.received.length;
    const mismatch = await denied(tlsGateway, 'certificate_mismatch');
    const required = await denied(tlsGateway, 'certificate_required');
    assertDenied(await callAPI(`${tlsGateway.url}/orders/1`, jwtA, { tls: tls(stranger) }), 401, 'Bearer', 'invalid_token', jwtA);
    assertDenied(await callAPI(`${tlsGateway.url}/orders/1`, jwtA, { tls: tls(certB) }), 401, 'Bearer', 'invalid_token', jwtA);
    assertDenied(await callAPI(`${tlsGateway.url}/orders/1`, jwtA, { tls: tls() }), 401, 'Bearer', 'invalid_token', jwtA);
    assert.equal(upstream.received.length, reached);
    assert.equal(await denied(tlsGateway, 'certificate_mismatch'), mismatch + 2);
    assert.equal(await denied(tlsGateway, 'certificate_required'), required + 1);
  });

  it('TLS at the gateway: bound opaque token, signed introspection answer: 200 with its certificate, 401 with another', async () => {
    const introspections = () => provider.requests.filter((r) => r.path === '/token/introspection');
    const n = introspections().length;
    const active = await metric(tlsGateway.metricsURL, 'tokenguard_introspection_requests_total', { result: 'active' });
    const res = await callAPI(`${tlsGateway.url}/orders/2`, opaqueB, { tls: tls(certB) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.identity['x-tokenguard-client-id'], clients.mtlsOpaque.id);
    assert.equal(introspections().length, n + 1, 'one introspection call');
    assert.equal(introspections().at(-1).accept, 'application/token-introspection+jwt', 'a signed answer was asked for');
    assert.equal(await metric(tlsGateway.metricsURL, 'tokenguard_introspection_requests_total', { result: 'active' }), active + 1);
    // The cached answer carries the binding too.
    assertDenied(await callAPI(`${tlsGateway.url}/orders/2`, opaqueB, { tls: tls(certA) }), 401, 'Bearer', 'invalid_token', opaqueB);
    assertDenied(await callAPI(`${tlsGateway.url}/orders/2`, opaqueB, { tls: tls() }), 401, 'Bearer', 'invalid_token', opaqueB);
    assert.equal(introspections().length, n + 1, 'the refusals used the cached answer');
  });

  it("oidc-provider's signed answers: aud is the introspecting client, active or not", async (t) => {
    const ask = async (token) => {
      const res = await fetch(as.introspection_endpoint, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${clients.rs.id}:${clients.rs.secret}`).toString('base64')}`,
          accept: 'application/token-introspection+jwt',
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: new URLSearchParams({ token }),
        signal: AbortSignal.timeout(5_000),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type'), /^application\/token-introspection\+jwt/);
      return decodeJWT(await res.text());
    };
    const active = await ask(opaqueB);
    const inactive = await ask('not-a-token-this-AS-ever-issued-0123456789');
    t.diagnostic(`active: header ${JSON.stringify(active.header)}, claims ${JSON.stringify({ ...active.payload, token_introspection: '…' })}`);
    t.diagnostic(`inactive: claims ${JSON.stringify(inactive.payload)}`);
    for (const { header, payload } of [active, inactive]) {
      assert.equal(header.typ, 'token-introspection+jwt');
      assert.equal(header.kid, key.kid);
      assert.equal(payload.iss, provider.issuer);
      assert.equal(payload.aud, clients.rs.id, 'aud: the introspecting client, not the token audience');
      assert.equal(typeof payload.iat, 'number');
    }
    assert.equal(active.payload.token_introspection.aud, audience);
    assert.deepEqual(active.payload.token_introspection.cnf, { 'x5t#S256': certB.x5tS256 });
    assert.deepEqual(inactive.payload.token_introspection, { active: false });
  });

  it('TLS at the gateway: unknown opaque token, inactive signed answer: 401 invalid_token (not 503)', async () => {
    const token = 'not-a-token-this-AS-ever-issued-0123456789';
    const inactive = await metric(tlsGateway.metricsURL, 'tokenguard_introspection_requests_total', { result: 'inactive' });
    assertDenied(await callAPI(`${tlsGateway.url}/orders/3`, token, { tls: tls(certA) }), 401, 'Bearer', 'invalid_token', token);
    assert.equal(await metric(tlsGateway.metricsURL, 'tokenguard_introspection_requests_total', { result: 'inactive' }), inactive + 1);
  });

  it('TLS at the gateway: an unbound token works with or without a certificate', async () => {
    const { access_token: token } = await getToken(as, clients.m2m, { resource: audience, scope: 'orders:read' });
    assert.equal(decodeJWT(token).payload.cnf, undefined);
    assert.equal((await callAPI(`${tlsGateway.url}/orders/4`, token, { tls: tls(certA) })).status, 200);
    assert.equal((await callAPI(`${tlsGateway.url}/orders/4`, token, { tls: tls() })).status, 200);
  });

  it('TLS at a proxy: bound JWT with Client-Cert from a trusted proxy: 200, the header not forwarded', async () => {
    const res = await callAPI(`${headerGateway.url}/orders/5`, jwtA, { headers: { 'Client-Cert': clientCertHeader(certA) } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.identity['x-tokenguard-client-id'], clients.mtls.id);
    assert.deepEqual(upstream.received.at(-1).clientCert, [], 'Client-Cert is not forwarded upstream');
  });

  it('TLS at a proxy: bound JWT with another certificate in Client-Cert, or none: 401 invalid_token', async () => {
    const reached = upstream.received.length;
    const other = await callAPI(`${headerGateway.url}/orders/5`, jwtA, { headers: { 'Client-Cert': clientCertHeader(stranger) } });
    assertDenied(other, 401, 'Bearer', 'invalid_token', jwtA);
    assertDenied(await callAPI(`${headerGateway.url}/orders/5`, jwtA), 401, 'Bearer', 'invalid_token', jwtA);
    assert.equal(upstream.received.length, reached);
  });

  it('TLS at a proxy: bound opaque token, signed introspection answer: 200 with its certificate in Client-Cert, 401 with another or none', async () => {
    const introspections = () => provider.requests.filter((r) => r.path === '/token/introspection');
    const n = introspections().length;
    const reached = upstream.received.length;
    const res = await callAPI(`${headerASGateway.url}/orders/7`, opaqueB, { headers: { 'Client-Cert': clientCertHeader(certB) } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal(res.body.identity['x-tokenguard-client-id'], clients.mtlsOpaque.id);
    assert.deepEqual(upstream.received.at(-1).clientCert, [], 'Client-Cert is not forwarded upstream');
    assert.equal(introspections().length, n + 1, 'one introspection call');
    assert.equal(introspections().at(-1).accept, 'application/token-introspection+jwt', 'a signed answer was asked for');
    // The cached answer carries the binding too.
    const mismatch = await denied(headerASGateway, 'certificate_mismatch');
    const required = await denied(headerASGateway, 'certificate_required');
    for (const c of [certA, stranger]) {
      const other = await callAPI(`${headerASGateway.url}/orders/7`, opaqueB, { headers: { 'Client-Cert': clientCertHeader(c) } });
      assertDenied(other, 401, 'Bearer', 'invalid_token', opaqueB);
    }
    assertDenied(await callAPI(`${headerASGateway.url}/orders/7`, opaqueB), 401, 'Bearer', 'invalid_token', opaqueB);
    assert.equal(upstream.received.length, reached + 1, 'the refusals did not reach the upstream');
    assert.equal(introspections().length, n + 1, 'the refusals used the cached answer');
    assert.equal(await denied(headerASGateway, 'certificate_mismatch'), mismatch + 2);
    assert.equal(await denied(headerASGateway, 'certificate_required'), required + 1);
  });

  it('RFC 9701: forged signed answers (or an unsigned one) from the introspection endpoint: 503, never 200', async (t) => {
    const reached = upstream.received.length;
    const invalid = await metric(headerGateway.metricsURL, 'tokenguard_introspection_requests_total', { result: 'invalid' });
    for (const token of ['forged-unknown-kid', 'forged-issuer-kid', 'plain-json']) {
      const res = await callAPI(`${headerGateway.url}/orders/6`, token);
      assert.equal(res.status, 503, `${token}: ${res.status} ${JSON.stringify(res.body)}`);
      assert.ok(fake.requests.some((r) => r.token === token && r.accept === 'application/token-introspection+jwt'), `${token}: asked the fake, for a signed answer`);
    }
    assert.equal(upstream.received.length, reached, 'the upstream was never reached');
    assert.equal(await metric(headerGateway.metricsURL, 'tokenguard_introspection_requests_total', { result: 'invalid' }), invalid + 3);
    // The control: the same endpoint, the same claims, signed with the
    // issuer's real key, is believed.
    const genuine = await callAPI(`${headerGateway.url}/orders/6`, 'genuine');
    assert.equal(genuine.status, 200, JSON.stringify(genuine.body));
    assert.equal(genuine.body.identity['x-tokenguard-subject'], 'mallory');
    t.diagnostic('forged-unknown-kid, forged-issuer-kid, plain-json: 503; genuine: 200');
  });
});
