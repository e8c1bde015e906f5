// An authorization server none of us wrote: panva's oidc-provider (an
// OpenID Certified implementation), configured the way a user of
// tokenguard would configure theirs:
//   - RFC 8707 resource indicators: tokens are issued for our audience,
//     which getResourceServerInfo maps to a resource server;
//   - RFC 9068 JWT access tokens (typ at+jwt) for most clients, opaque
//     tokens for one, so the gateway has to use RFC 7662 introspection;
//   - RFC 9449 DPoP (enabled by default in oidc-provider 9), with one
//     client whose tokens are always DPoP-bound;
//   - RFC 7009 revocation and RFC 7662 introspection;
//   - optionally (the mtls option), RFC 8705 certificate-bound access
//     tokens: a TLS listener that asks for client certificates, announced
//     as the token endpoint's mtls_endpoint_aliases, and two clients that
//     authenticate with their self-signed certificate
//     (self_signed_tls_client_auth) and whose tokens are always bound to
//     it, one with JWT access tokens, one with opaque ones; and RFC 9701
//     signed introspection answers (jwtIntrospection) for the resource
//     server's client, when it asks for them;
//   - optionally (the bff option), a confidential client for tokenguard's
//     token handler: the authorization code flow with PKCE, a test-only
//     interaction that logs in the fixed user "alice" and grants what
//     was asked, refresh tokens (offline_access) rotated at every use,
//     short-lived JWT access tokens for our audience, and a test-only
//     GET /__test/state that reports what the AS did (grants, refresh
//     tokens issued, consumed and destroyed);
//   - optionally (options of bff, for interop/bff_round2_test.go):
//     OpenID Connect Back-Channel Logout 1.0 to the token handler
//     (backchannelLogoutURI) with a second client, "other-app", that
//     logs in at the same provider session and logs out from it
//     (RP-initiated logout); a PAR-only client (RFC 9126
//     require_pushed_authorization_requests); a DPoP-bound token
//     handler client whose token requests must carry a server nonce
//     (RFC 9449 §8, features.dPoP.nonceSecret and requireNonce);
//   - everything in memory, on 127.0.0.1 only.
//
// Run as a script (node lib/provider.mjs --serve '<json>'), it serves
// until its standard input closes: that is how interop/bff_test.go runs
// it (see serve below).
//
// It runs in the test process. "Restarting" it (startProvider again on
// the same port with other keys) gives a fresh provider with a fresh
// in-memory store, which is what a key rotation with a redeploy looks
// like from the outside: the same issuer URL, a different JWKS.

import { X509Certificate, hkdfSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import Provider from 'oidc-provider';

import { newKeyPair } from './keys.mjs';

// Client IDs and secrets. Secrets are test-only values.
export const clients = {
  // Machine-to-machine client: Bearer JWT access tokens.
  m2m: { id: 'm2m-client', secret: 'm2m-secret-0123456789abcdef0123456789' },
  // Its tokens are always DPoP-bound (dpop_bound_access_tokens).
  dpop: { id: 'dpop-client', secret: 'dpop-secret-0123456789abcdef01234567' },
  // Gets opaque access tokens: only introspection can tell what they are.
  opaque: { id: 'opaque-client', secret: 'opaque-secret-0123456789abcdef0123' },
  // The resource server's own client, used by tokenguard to introspect.
  rs: { id: 'tokenguard-rs', secret: 'rs-secret-0123456789abcdef0123456789' },
  // tokenguard's token handler (bff): a confidential client using the
  // authorization code flow. Registered only with startProvider's bff
  // option.
  bff: { id: 'tokenguard-bff', secret: 'bff-secret-0123456789abcdef012345678' },
  // RFC 8705 clients, registered only with startProvider's mtls option:
  // no secret; each authenticates with its self-signed certificate
  // (self_signed_tls_client_auth) and gets tokens bound to it
  // (tls_client_certificate_bound_access_tokens). mtls gets JWT access
  // tokens, mtlsOpaque opaque ones.
  mtls: { id: 'mtls-client' },
  mtlsOpaque: { id: 'mtls-opaque-client' },
  // With startProvider's bff option and its otherApp member: another
  // application of the same user (a confidential code-flow client) that
  // logs in at the same provider session, and logs out from it.
  otherApp: { id: 'other-app', secret: 'other-app-secret-0123456789abcdef012' },
  // With bff.parOnly: a token handler client that must push its
  // authorization requests (require_pushed_authorization_requests).
  bffPAR: { id: 'tokenguard-bff-par', secret: 'bff-par-secret-0123456789abcdef0123456' },
  // With bff.dpop: a token handler client whose tokens are always
  // DPoP-bound (dpop_bound_access_tokens).
  bffDPoP: { id: 'tokenguard-bff-dpop', secret: 'bff-dpop-secret-0123456789abcdef012345' },
};

// Every scope the resource servers know.
export const scopes = ['orders:read', 'orders:write'];

// The OpenID Connect scopes the token handler's client may ask for.
const oidcScopes = ['openid', 'offline_access'];

// The only user: the test-only interaction logs every login in as her.
export const user = 'alice';

// makeKey returns a private JWK for the provider's keystore. kid is set
// so tests can tell which key signed a token.
export function makeKey(kid, alg) {
  const { privateKey } = alg.startsWith('ES')
    ? newKeyPair('ec', { namedCurve: 'P-256' })
    : newKeyPair('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

// startProvider starts oidc-provider on 127.0.0.1:port (0: any free
// port). keys are private JWKs; the first one signs access tokens (its
// alg is the resource servers' signing alg), the others are only
// published, as during a key rotation. audience is our API's resource
// indicator; otherAudience is a second resource server, for tokens that
// tokenguard must refuse.
//
// bff, when set, registers clients.bff for tokenguard's token handler:
// { redirectURIs, postLogoutRedirectURIs, accessTokenTTL (seconds, its
// access tokens only: short, so that tests can wait for a refresh),
// tokenDelay (ms the token endpoint waits before answering, so that
// concurrent requests surely meet a refresh in flight),
// and, for interop/bff_round2_test.go:
//   backchannelLogoutURI: turns on features.backchannelLogout and
//     registers it as clients.bff's backchannel_logout_uri, with
//     backchannel_logout_session_required (its ID tokens and logout
//     tokens carry sid). The logout tokens the provider sends are
//     recorded (state.logoutTokens) - test-only, like the refresh tokens;
//   otherApp: { redirectURIs } registers clients.otherApp;
//   parOnly: registers clients.bffPAR, which must use PAR;
//   dpop: registers clients.bffDPoP, whose tokens are DPoP-bound;
//   dpopNonce: every DPoP proof the provider checks must carry its nonce
//     (features.dPoP.nonceSecret, requireNonce), and
//     POST /__test/dpop-nonce-demand makes it demand a new one
//     (use_dpop_nonce) at the next DPoP token request, as an AS whose
//     nonces have rotated does.
// clients.bffPAR and clients.bffDPoP have clients.bff's redirect and
// post-logout redirect URIs, scopes and refresh token policy.
//
// mtls, when set, turns on RFC 8705 and RFC 9701 (see the top of this
// file): { server: { cert, key } (PEM: the TLS listener's certificate),
// clientCerts: { mtls, mtlsOpaque } (each client's certificate as a
// public JWK with x5c, as lib/certs.mjs's jwk) }. The provider then
// learns a request's client certificate from its TLS connection
// (features.mTLS.getCertificate): only the TLS listener asks for one, and
// accepts any (rejectUnauthorized: false; the client's registered JWKS is
// what authenticates it). Its URL is the metadata's
// mtls_endpoint_aliases.token_endpoint. The resource server's client then
// gets signed introspection answers (signed like access tokens, by
// keys[0]) when it sends Accept: application/token-introspection+jwt.
//
// It returns { issuer, port, mtlsBase (the TLS listener's URL, with
// mtls), requests, state, close }. requests records every request the
// provider received ({ method, path, cacheControl, userAgent, accept,
// clientCert (a certificate was presented on TLS), at }),
// so tests can see the gateway's discovery, JWKS and introspection calls.
// state is what the provider did for clients.bff (see bffState), also
// served as JSON on GET /__test/state when bff is set.
export async function startProvider({ port = 0, issuer, keys, audience, otherAudience, tokenTTL = 300, bff, mtls }) {
  const requests = [];
  const signingAlg = keys[0].alg;
  const server = http.createServer();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  port = server.address().port;
  issuer ??= `http://127.0.0.1:${port}`;
  // The TLS listener of the mtls option: asks every client for a
  // certificate, verifies none (self-signed ones are the point).
  let tlsServer;
  if (mtls) {
    tlsServer = https.createServer({ ...mtls.server, requestCert: true, rejectUnauthorized: false });
    tlsServer.listen(0, '127.0.0.1');
    await once(tlsServer, 'listening');
  }
  const mtlsBase = tlsServer && `https://127.0.0.1:${tlsServer.address().port}`;

  // The token handler's clients: clients.bff, and those of the options.
  const handlerClientIDs = new Set([clients.bff.id,
    ...(bff?.parOnly ? [clients.bffPAR.id] : []), ...(bff?.dpop ? [clients.bffDPoP.id] : [])]);
  const handlerClient = (id, secret, extra) => ({
    client_id: id, client_secret: secret,
    token_endpoint_auth_method: 'client_secret_basic',
    grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'],
    redirect_uris: bff.redirectURIs,
    post_logout_redirect_uris: bff.postLogoutRedirectURIs ?? [],
    scope: [...oidcScopes, ...scopes].join(' '),
    ...extra,
  });
  // The provider's DPoP nonce secret (dpopNonce): test-only, random.
  const nonceSecret = bff?.dpopNonce ? randomBytes(32) : undefined;
  const state = bffState(handlerClientIDs);

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clients.m2m.id, client_secret: clients.m2m.secret,
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
        scope: scopes.join(' '),
      },
      {
        client_id: clients.dpop.id, client_secret: clients.dpop.secret,
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
        scope: scopes.join(' '),
        dpop_bound_access_tokens: true,
      },
      {
        client_id: clients.opaque.id, client_secret: clients.opaque.secret,
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
        scope: scopes.join(' '),
      },
      {
        client_id: clients.rs.id, client_secret: clients.rs.secret,
        grant_types: [], response_types: [], redirect_uris: [],
        // RFC 9701: signed answers when asked for (Accept).
        ...(mtls ? { introspection_signed_response_alg: signingAlg } : {}),
      },
      ...(mtls ? [clients.mtls, clients.mtlsOpaque].map(({ id }) => ({
        client_id: id,
        token_endpoint_auth_method: 'self_signed_tls_client_auth',
        jwks: { keys: [mtls.clientCerts[id === clients.mtls.id ? 'mtls' : 'mtlsOpaque']] },
        tls_client_certificate_bound_access_tokens: true,
        grant_types: ['client_credentials'], response_types: [], redirect_uris: [],
        scope: scopes.join(' '),
      })) : []),
      ...(bff ? [handlerClient(clients.bff.id, clients.bff.secret, bff.backchannelLogoutURI ? {
        backchannel_logout_uri: bff.backchannelLogoutURI,
        backchannel_logout_session_required: true,
      } : {})] : []),
      ...(bff?.parOnly ? [handlerClient(clients.bffPAR.id, clients.bffPAR.secret, {
        require_pushed_authorization_requests: true,
      })] : []),
      ...(bff?.dpop ? [handlerClient(clients.bffDPoP.id, clients.bffDPoP.secret, {
        dpop_bound_access_tokens: true,
      })] : []),
      ...(bff?.otherApp ? [{
        client_id: clients.otherApp.id, client_secret: clients.otherApp.secret,
        grant_types: ['authorization_code'], response_types: ['code'],
        redirect_uris: bff.otherApp.redirectURIs,
        scope: 'openid',
      }] : []),
    ],
    clientDefaults: { id_token_signed_response_alg: signingAlg },
    // oidc-provider's default methods, plus the mtls clients' (enabling
    // features.mTLS.selfSignedTlsClientAuth only makes it available).
    clientAuthMethods: ['client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt', 'none',
      ...(mtls ? ['self_signed_tls_client_auth'] : [])],
    // RFC 8705 §5: where a client that uses certificates finds the token
    // endpoint (oauth4webapi: client.use_mtls_endpoint_aliases).
    discovery: mtlsBase ? { mtls_endpoint_aliases: { token_endpoint: `${mtlsBase}/token` } } : {},
    jwks: { keys },
    scopes: [...oidcScopes, ...scopes],
    // Test-only values; they sign the interaction and session cookies.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    findAccount: (ctx, sub) => (sub === user ? { accountId: sub, claims: () => ({ sub }) } : undefined),
    // The test-only interaction below (devInteractions stays off: its
    // form would need a browser that fills it in).
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // Rotate at every use, whatever the token's age: the default only
    // rotates a confidential client's token after 70 % of its lifetime.
    // A rotated token used again revokes the whole grant (oidc-provider's
    // reuse detection), so a second refresh with the same token would
    // show.
    rotateRefreshToken: true,
    // oidc-provider follows OpenID Connect Core §11 to the letter: it
    // drops offline_access from an authorization request without
    // prompt=consent, and the default policy then issues no refresh
    // token. The token handler asks for offline_access but sends no
    // prompt (the app may add one: /bff/login?prompt=consent), so this
    // AS uses the spec's "other conditions permitting offline access":
    // its first-party token handler always gets a refresh token, one
    // that outlives the user's session at the AS, as offline access does.
    issueRefreshToken: (ctx, client, code) => handlerClientIDs.has(client.clientId)
      ? client.grantTypeAllowed('refresh_token')
      : client.grantTypeAllowed('refresh_token') && code.scopes.has('offline_access'),
    expiresWithSession: (ctx, code) => !handlerClientIDs.has(code.clientId) && !code.scopes.has('offline_access'),
    // With backchannelLogoutURI: oidc-provider's fetch (the back-channel
    // logout call) refuses loopback addresses (its SSRF protection, a
    // dispatcher of its own), and the token handler is on 127.0.0.1, so
    // it goes without; it also records the logout tokens sent, with the
    // answer's status.
    ...(bff?.backchannelLogoutURI ? {
      fetch: async (url, options) => {
        const { dispatcher, ...rest } = options;
        const token = rest.body instanceof URLSearchParams ? rest.body.get('logout_token') : null;
        const sent = token ? { uri: String(url), token, status: 0 } : undefined;
        if (sent) state.logoutTokens.push(sent);
        const resp = await globalThis.fetch(url, rest);
        if (sent) sent.status = resp.status;
        return resp;
      },
    } : {}),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      // Only the resource server may introspect (a real deployment
      // would not let one client learn about another's tokens), and a
      // client may revoke only its own tokens.
      introspection: {
        enabled: true,
        allowedPolicy: (ctx, client, token) => client.clientId === clients.rs.id || client.clientId === token.clientId,
      },
      revocation: {
        enabled: true,
        allowedPolicy: (ctx, client, token) => client.clientId === token.clientId,
      },
      dPoP: nonceSecret ? { enabled: true, nonceSecret, requireNonce: () => true } : { enabled: true },
      ...(bff?.backchannelLogoutURI ? { backchannelLogout: { enabled: true } } : {}),
      ...(mtls ? {
        mTLS: {
          enabled: true,
          certificateBoundAccessTokens: true,
          selfSignedTlsClientAuth: true,
          // The certificate the client presented on this connection, as
          // PEM; none on the plain http listener (its sockets have no
          // getPeerCertificate), nor when the client sent none ({}).
          getCertificate(ctx) {
            const peer = ctx.socket.getPeerCertificate?.();
            return peer?.raw ? new X509Certificate(peer.raw).toString() : undefined;
          },
        },
        jwtIntrospection: { enabled: true },
      } : {}),
      resourceIndicators: {
        enabled: true,
        // The client must name the resource; no guessing.
        defaultResource: () => undefined,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          if (resourceIndicator !== audience && resourceIndicator !== otherAudience) {
            throw new Provider.errors.InvalidTarget();
          }
          return {
            audience: resourceIndicator,
            scope: scopes.join(' '),
            accessTokenTTL: handlerClientIDs.has(client.clientId) ? bff.accessTokenTTL ?? tokenTTL : tokenTTL,
            accessTokenFormat: [clients.opaque.id, clients.mtlsOpaque.id].includes(client.clientId) ? 'opaque' : 'jwt',
            jwt: { sign: { alg: signingAlg } },
          };
        },
      },
    },
    ttl: {
      // The resource server's lifetime (getResourceServerInfo), so the
      // token handler's tokens can be short.
      AccessToken: (ctx, token) => token.resourceServer?.accessTokenTTL ?? tokenTTL,
      ClientCredentials: tokenTTL,
    },
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));
  state.watch(provider);

  const callback = provider.callback();
  let nonceDemands = 0; // POST /__test/dpop-nonce-demand
  const onRequest = (req, res) => {
    const path = new URL(req.url, issuer).pathname;
    requests.push({
      method: req.method,
      path,
      cacheControl: req.headers['cache-control'] ?? '',
      userAgent: req.headers['user-agent'] ?? '',
      accept: req.headers.accept ?? '',
      clientCert: Boolean(req.socket.getPeerCertificate?.()?.raw),
      at: Date.now(),
    });
    // The test's own client (oauth4webapi over Node's fetch) gets no
    // keep-alive: after a restart, a pooled connection to the old server
    // could be picked before its close is noticed, failing a request for
    // a reason that has nothing to do with what is tested. The gateway
    // keeps its connections, so it does face an AS that restarts.
    if (/^(oauth4webapi|node)\b/.test(req.headers['user-agent'] ?? '')) res.setHeader('Connection', 'close');
    // Test-only endpoints, with the bff option only.
    if (bff && path.startsWith('/interaction/')) {
      login(provider, req, res, audience).catch((err) => {
        console.error('test interaction failed:', err);
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
      return;
    }
    if (bff && path === '/__test/state' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(JSON.stringify(state.snapshot()));
      return;
    }
    if (bff && path === '/token' && req.method === 'POST') state.tokenRequest(req, res);
    if (nonceSecret && path === '/__test/dpop-nonce-demand' && req.method === 'POST') {
      nonceDemands += 1;
      res.writeHead(204);
      res.end();
      return;
    }
    if (nonceDemands > 0 && path === '/token' && req.method === 'POST' && req.headers.dpop) {
      // What the provider answers a proof whose nonce it no longer
      // takes (validate_dpop.js), with its current nonce.
      nonceDemands -= 1;
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'no-store');
      res.setHeader('dpop-nonce', currentNonce(nonceSecret));
      res.statusCode = 400;
      res.end(JSON.stringify({ error: 'use_dpop_nonce', error_description: 'test: the nonce was rotated' }));
      return;
    }
    if (bff?.tokenDelay && path === '/token' && req.method === 'POST') {
      setTimeout(callback, bff.tokenDelay, req, res);
      return;
    }
    callback(req, res);
  };
  server.on('request', onRequest);
  tlsServer?.on('request', onRequest);

  return {
    issuer,
    port,
    mtlsBase,
    requests,
    state,
    // count returns how many requests went to path (optionally since a
    // time in ms).
    count(path, since = 0) {
      return requests.filter((r) => r.path === path && r.at >= since).length;
    },
    async close() {
      for (const srv of [server, tlsServer].filter(Boolean)) {
        srv.closeAllConnections();
        srv.close();
        await once(srv, 'close');
      }
    },
  };
}

// login is the test-only interaction (GET /interaction/:uid, where the
// provider sends the browser when it needs a login or a consent): no
// form, no password. It logs in `user` and grants exactly what the
// authorization request asked for among the scopes the provider knows:
// as the provider's own scopes (openid, offline_access and, since they
// are in its scopes list, orders:*) and, for each requested resource
// that is our audience, as that resource server's scopes (what its
// access tokens carry). Then it sends the browser back to the
// authorization endpoint, which redirects to the client.
async function login(provider, req, res, audience) {
  const details = await provider.interactionDetails(req, res);
  const { params, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: user, clientId: params.client_id });
  const requested = String(params.scope ?? '').split(' ').filter(Boolean);
  const op = requested.filter((s) => oidcScopes.includes(s) || scopes.includes(s));
  if (op.length) grant.addOIDCScope(op.join(' '));
  const resources = [params.resource ?? []].flat();
  for (const resource of resources) {
    if (resource !== audience) continue; // our API: the only resource the token handler names
    const rs = requested.filter((s) => scopes.includes(s));
    if (rs.length) grant.addResourceScope(resource, rs.join(' '));
  }
  const saved = await grant.save();
  await provider.interactionFinished(req, res, {
    login: { accountId: user },
    consent: { grantId: saved },
  }, { mergeWithLastSubmission: false });
}

// currentNonce is the DPoP nonce oidc-provider hands out now with secret
// (its ServerChallenge.nextChallenge, lib/helpers/challenge.js: 60-second
// steps, the next one's value); it accepts it for about five minutes.
function currentNonce(secret) {
  const step = Math.floor(Date.now() / 1000 / 60) + 1;
  const salt = Buffer.alloc(8);
  salt.writeBigUInt64BE(BigInt(step));
  return Buffer.from(hkdfSync('sha256', secret, salt, 'DPoP', 32)).toString('base64url');
}

// bffState counts what the provider does for the token handler's clients
// (ids, a Set: clients.bff and those of the bff option's members), from
// its own events (so, what the AS did, not what a client says it asked):
//   grants: successful token endpoint grants by grant_type;
//   grantErrors: refused ones, by error code (a reused refresh token
//     shows here as invalid_grant, and its grant is then revoked);
//   refreshTokens: every refresh token saved, in order, with its grant
//     ({ value, grantId, rotations }) - test-only: a real AS never shows
//     them; tests introspect them to see rotation and revocation;
//   consumed / destroyed: refresh tokens rotated away / deleted
//     (revocation, reuse detection);
//   revokedGrants: grants revoked (revocation of a refresh token revokes
//     its grant);
//   clientGrants: grants by client id, then grant_type;
//   tokenRequests: every POST /token from those clients, in order, as
//     { clientId, dpop (a proof was sent), nonce (it carried one),
//     status, nonceDemand (400 with a DPoP-Nonce: use_dpop_nonce) };
//   logoutTokens: the back-channel logout tokens sent ({ uri, token,
//     status }, test-only: tests replay them).
function bffState(ids) {
  const s = {
    grants: {}, grantErrors: {}, refreshTokens: [], consumed: 0, destroyed: 0, revokedGrants: 0, endSessions: 0,
    clientGrants: {}, tokenRequests: [], logoutTokens: [],
  };
  const ours = (clientId) => ids.has(clientId);
  return {
    watch(provider) {
      provider.on('grant.success', (ctx) => {
        if (!ours(ctx.oidc.client?.clientId)) return;
        const gty = ctx.oidc.params.grant_type;
        s.grants[gty] = (s.grants[gty] ?? 0) + 1;
        const cg = (s.clientGrants[ctx.oidc.client.clientId] ??= {});
        cg[gty] = (cg[gty] ?? 0) + 1;
      });
      provider.on('grant.error', (ctx, err) => {
        if (!ours(ctx.oidc.client?.clientId)) return;
        s.grantErrors[err.error] = (s.grantErrors[err.error] ?? 0) + 1;
      });
      provider.on('refresh_token.saved', (t) => {
        if (ours(t.clientId)) {
          s.refreshTokens.push({ value: t.jti, grantId: t.grantId, rotations: t.rotations ?? 0, clientId: t.clientId });
        }
      });
      provider.on('refresh_token.consumed', (t) => { if (ours(t.clientId)) s.consumed += 1; });
      provider.on('refresh_token.destroyed', (t) => { if (ours(t.clientId)) s.destroyed += 1; });
      provider.on('grant.revoked', (ctx) => { if (ours(ctx.oidc.client?.clientId)) s.revokedGrants += 1; });
      provider.on('end_session.success', () => { s.endSessions += 1; });
    },
    // tokenRequest records a POST /token (see tokenRequests) when its
    // answer is sent; the client is the one of its Basic credentials.
    tokenRequest(req, res) {
      let clientId;
      const [scheme, cred] = (req.headers.authorization ?? '').split(' ');
      if (/^basic$/i.test(scheme ?? '') && cred) {
        clientId = decodeURIComponent(Buffer.from(cred, 'base64').toString().split(':')[0]);
      }
      if (!ours(clientId)) return;
      let proof;
      try {
        proof = req.headers.dpop && JSON.parse(Buffer.from(req.headers.dpop.split('.')[1], 'base64url'));
      } catch { proof = {}; }
      const r = { clientId, dpop: Boolean(req.headers.dpop), nonce: Boolean(proof?.nonce), status: 0, nonceDemand: false };
      s.tokenRequests.push(r);
      res.on('finish', () => {
        r.status = res.statusCode;
        r.nonceDemand = res.statusCode === 400 && Boolean(res.getHeader('dpop-nonce'));
      });
    },
    logoutTokens: s.logoutTokens,
    snapshot() {
      return structuredClone(s);
    },
  };
}

// serve is the script mode: node lib/provider.mjs --serve '<json>', the
// JSON being startProvider's options ({ audience, otherAudience, bff,
// keys }). It starts the provider on 127.0.0.1 with keys or, without
// them, a fresh RS256 key (a test that signs tokens of its own as the
// provider's, such as forged logout tokens, gives its private JWK), prints
// one line of JSON to standard output, { issuer, user, clients: { bff,
// rs, and otherApp, bffPAR, bffDPoP when registered } } (ids and the
// test-only secrets), and serves
// until its standard input closes (the parent ended, however it ended)
// or it gets SIGTERM or SIGINT.
async function serve(json) {
  const opts = JSON.parse(json);
  const provider = await startProvider({ ...opts, keys: opts.keys ?? [makeKey('interop-bff-rs256', 'RS256')] });
  let closing = false;
  const stop = async () => {
    if (closing) return;
    closing = true;
    setTimeout(() => process.exit(1), 2_000).unref(); // bounded
    await provider.close();
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  const { bff } = opts;
  const shown = {
    bff: clients.bff,
    rs: clients.rs,
    ...(bff?.otherApp ? { otherApp: clients.otherApp } : {}),
    ...(bff?.parOnly ? { bffPAR: clients.bffPAR } : {}),
    ...(bff?.dpop ? { bffDPoP: clients.bffDPoP } : {}),
  };
  process.stdout.write(`${JSON.stringify({ issuer: provider.issuer, user, clients: shown })}\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href && process.argv[2] === '--serve') {
  await serve(process.argv[3] ?? '{}');
}
