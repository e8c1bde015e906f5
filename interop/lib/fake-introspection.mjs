// A fake RFC 7662 introspection endpoint that answers in RFC 9701's
// signed form, for the gateway's refusal of forged answers: the one thing
// a signed answer adds over TLS is that only the issuer's key can make
// it. The answer depends on the token asked about (answers):
//
//   forged-unknown-kid  signed by a key of its own, under a kid the
//                       issuer's JWKS does not have;
//   forged-issuer-kid   signed by a key of its own, under the kid of the
//                       issuer's signing key (the signature cannot match);
//   plain-json          an unsigned application/json answer, active;
//   genuine             signed with the issuer's real key (the test holds
//                       it), every claim right: the control case, showing
//                       the gateway takes this endpoint's answers when,
//                       and only when, the issuer signed them.
//
// Every answer says the token is active, for our audience, with scope
// orders:read: only the signature (or its absence) is wrong.

import { createPrivateKey, sign } from 'node:crypto';
import { once } from 'node:events';
import http from 'node:http';

import { newKeyPair } from './keys.mjs';

export const answers = ['forged-unknown-kid', 'forged-issuer-kid', 'plain-json', 'genuine'];

const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

// jws signs payload with an RS256 private key (node:crypto: PKCS#1 v1.5,
// RFC 7518 §3.3) under the given header.
function jws(header, payload, key) {
  const input = `${b64u(header)}.${b64u(payload)}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
}

// startFakeIntrospection serves POST on 127.0.0.1 (any path). issuerKey
// is the issuer's real private JWK (RS256); issuer, audience and clientId
// (the gateway's introspection client, the answer's aud) fill the claims.
// It returns { url, requests ([{ token, accept }]), close }.
export async function startFakeIntrospection({ issuer, issuerKey, audience, clientId }) {
  if (issuerKey.alg !== 'RS256') throw new Error('fake introspection: the issuer key must be RS256');
  const realKey = createPrivateKey({ key: issuerKey, format: 'jwk' });
  const { privateKey: ownKey } = newKeyPair('rsa', { modulusLength: 2048 });
  const requests = [];
  const srv = http.createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    const token = new URLSearchParams(body).get('token') ?? '';
    requests.push({ token, accept: req.headers.accept ?? '' });
    const now = Math.floor(Date.now() / 1000);
    const introspection = {
      active: true, iss: issuer, aud: audience, client_id: 'forged-client', sub: 'mallory',
      scope: 'orders:read', token_type: 'Bearer', iat: now, exp: now + 300,
    };
    const claims = { iss: issuer, aud: clientId, iat: now, token_introspection: introspection };
    const signed = (kid, key) => jws({ alg: 'RS256', typ: 'token-introspection+jwt', kid }, claims, key);
    let type = 'application/token-introspection+jwt';
    let out;
    switch (token) {
      case 'forged-unknown-kid': out = signed('forged-kid', ownKey); break;
      case 'forged-issuer-kid': out = signed(issuerKey.kid, ownKey); break;
      case 'genuine': out = signed(issuerKey.kid, realKey); break;
      case 'plain-json':
        type = 'application/json';
        out = JSON.stringify(introspection);
        break;
      default:
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end('{"error":"invalid_request"}');
        return;
    }
    res.writeHead(200, { 'content-type': type, 'cache-control': 'no-store' });
    res.end(out);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    url: `http://127.0.0.1:${srv.address().port}/introspect`,
    requests,
    async close() {
      srv.closeAllConnections();
      srv.close();
      await once(srv, 'close');
    },
  };
}
