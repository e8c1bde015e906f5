// The client side, written with a real OAuth client library
// (panva's oauth4webapi) rather than our own code: discovery, the client
// credentials grant (with DPoP where asked), DPoP-signed resource
// requests and revocation.

import * as oauth from 'oauth4webapi';

// The servers run on 127.0.0.1 over plain http; oauth4webapi refuses
// http unless told otherwise.
const insecure = { [oauth.allowInsecureRequests]: true };

// Every request the client makes is bounded.
const timeout = 10_000;

function withTimeout(options = {}) {
  return { ...insecure, signal: AbortSignal.timeout(timeout), ...options };
}

// discover fetches the authorization server's metadata (OpenID Connect
// discovery) and checks its issuer.
export async function discover(issuer) {
  const url = new URL(issuer);
  const res = await oauth.discoveryRequest(url, withTimeout({ algorithm: 'oidc' }));
  return oauth.processDiscoveryResponse(url, res);
}

// newDPoPKey makes a fresh ES256 key pair for DPoP proofs.
export function newDPoPKey() {
  return oauth.generateKeyPair('ES256');
}

// getToken runs the client credentials grant for one resource and scope
// and returns the token response. With dpopKey, the request carries a
// DPoP proof and the token is bound to that key.
export async function getToken(as, { id, secret }, { resource, scope, dpopKey }) {
  const client = { client_id: id };
  const options = withTimeout();
  if (dpopKey) options.DPoP = oauth.DPoP(client, dpopKey);
  const params = new URLSearchParams({ resource, scope });
  const send = () => oauth.clientCredentialsGrantRequest(as, client, oauth.ClientSecretBasic(secret), params, options);
  let res = await send();
  try {
    return await oauth.processClientCredentialsResponse(as, client, res);
  } catch (err) {
    // A DPoP nonce challenge from the AS: retry once with the nonce,
    // which oauth4webapi has recorded.
    if (dpopKey && oauth.isDPoPNonceError(err)) {
      res = await send();
      return oauth.processClientCredentialsResponse(as, client, res);
    }
    throw err;
  }
}

// revoke revokes token at the authorization server (RFC 7009).
export async function revoke(as, { id, secret }, token) {
  const client = { client_id: id };
  const res = await oauth.revocationRequest(as, client, oauth.ClientSecretBasic(secret), token, withTimeout());
  await oauth.processRevocationResponse(res);
}

// callAPI sends one request to url with oauth4webapi's
// protectedResourceRequest: Authorization Bearer, or DPoP with a fresh
// proof when dpopKey is given. It returns { status, headers, body,
// challenges, proof }: a 401/403 with a WWW-Authenticate challenge, which
// oauth4webapi throws as WWWAuthenticateChallengeError, is returned like
// any other answer; challenges are oauth4webapi's parse of the header.
// proof is the DPoP header that was sent, for replay tests.
export async function callAPI(url, token, { method = 'GET', dpopKey, headers } = {}) {
  let proof;
  const options = withTimeout({
    // Record the DPoP proof oauth4webapi generated for this request.
    [oauth.customFetch]: (input, init) => {
      proof = new Headers(init.headers).get('dpop') ?? undefined;
      return fetch(input, init);
    },
  });
  if (dpopKey) options.DPoP = oauth.DPoP({ client_id: 'unused' }, dpopKey);
  let res;
  let challenges = [];
  try {
    res = await oauth.protectedResourceRequest(token, method, new URL(url), new Headers(headers), null, options);
  } catch (err) {
    if (!(err instanceof oauth.WWWAuthenticateChallengeError)) throw err;
    res = err.response;
    challenges = err.cause;
  }
  return { ...(await readResponse(res)), challenges, proof };
}

// rawCall sends a request with exactly the headers given, with fetch and
// no client library: for replaying a proof or sending no credential.
export async function rawCall(url, { method = 'GET', headers = {} } = {}) {
  const res = await fetch(url, { method, headers, signal: AbortSignal.timeout(timeout), redirect: 'manual' });
  return readResponse(res);
}

async function readResponse(res) {
  const text = await res.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: res.status, headers: res.headers, body };
}

// decodeJWT returns a compact JWS's header and payload without verifying
// it (tests only look at kid, typ and cnf).
export function decodeJWT(token) {
  const [h, p] = token.split('.');
  const dec = (s) => JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
  return { header: dec(h), payload: dec(p) };
}
