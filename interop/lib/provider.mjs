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
//   - everything in memory, on 127.0.0.1 only.
//
// It runs in the test process. "Restarting" it (startProvider again on
// the same port with other keys) gives a fresh provider with a fresh
// in-memory store, which is what a key rotation with a redeploy looks
// like from the outside: the same issuer URL, a different JWKS.

import { generateKeyPairSync } from 'node:crypto';
import http from 'node:http';
import { once } from 'node:events';
import Provider from 'oidc-provider';

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
};

// Every scope the resource servers know.
export const scopes = ['orders:read', 'orders:write'];

// makeKey returns a private JWK for the provider's keystore. kid is set
// so tests can tell which key signed a token.
export function makeKey(kid, alg) {
  const { privateKey } = alg.startsWith('ES')
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid, alg, use: 'sig' };
}

// startProvider starts oidc-provider on 127.0.0.1:port (0: any free
// port). keys are private JWKs; the first one signs access tokens (its
// alg is the resource servers' signing alg), the others are only
// published, as during a key rotation. audience is our API's resource
// indicator; otherAudience is a second resource server, for tokens that
// tokenguard must refuse.
//
// It returns { issuer, port, requests, close }. requests records every
// request the provider received ({ method, path, cacheControl, at }), so
// tests can see the gateway's discovery, JWKS and introspection calls.
export async function startProvider({ port = 0, issuer, keys, audience, otherAudience, tokenTTL = 300 }) {
  const requests = [];
  const signingAlg = keys[0].alg;
  const server = http.createServer();
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  port = server.address().port;
  issuer ??= `http://127.0.0.1:${port}`;

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
      },
    ],
    clientDefaults: { id_token_signed_response_alg: signingAlg },
    jwks: { keys },
    scopes,
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
      dPoP: { enabled: true },
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
            accessTokenTTL: tokenTTL,
            accessTokenFormat: client.clientId === clients.opaque.id ? 'opaque' : 'jwt',
            jwt: { sign: { alg: signingAlg } },
          };
        },
      },
    },
    ttl: {
      AccessToken: tokenTTL,
      ClientCredentials: tokenTTL,
    },
  });
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));

  const callback = provider.callback();
  server.on('request', (req, res) => {
    requests.push({
      method: req.method,
      path: new URL(req.url, issuer).pathname,
      cacheControl: req.headers['cache-control'] ?? '',
      userAgent: req.headers['user-agent'] ?? '',
      at: Date.now(),
    });
    // The test's own client (oauth4webapi over Node's fetch) gets no
    // keep-alive: after a restart, a pooled connection to the old server
    // could be picked before its close is noticed, failing a request for
    // a reason that has nothing to do with what is tested. The gateway
    // keeps its connections, so it does face an AS that restarts.
    if (/^(oauth4webapi|node)\b/.test(req.headers['user-agent'] ?? '')) res.setHeader('Connection', 'close');
    callback(req, res);
  });

  return {
    issuer,
    port,
    requests,
    // count returns how many requests went to path (optionally since a
    // time in ms).
    count(path, since = 0) {
      return requests.filter((r) => r.path === path && r.at >= since).length;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}
