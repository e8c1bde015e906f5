// Assertions and polling shared by the test files: bounded waits,
// challenge checks that also make sure a token is never echoed, and
// Prometheus samples from the gateway's /metrics.

import assert from 'node:assert/strict';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// pollUntil calls fn until check(result) holds or timeoutMs passes, and
// returns { result, elapsed }.
export async function pollUntil(fn, check, timeoutMs, intervalMs = 200) {
  const start = Date.now();
  for (;;) {
    const result = await fn();
    if (check(result)) return { result, elapsed: Date.now() - start };
    if (Date.now() - start > timeoutMs) {
      assert.fail(`condition not met within ${timeoutMs} ms; last status ${result.status}, body ${JSON.stringify(result.body)}`);
    }
    await sleep(intervalMs);
  }
}

// challenge finds the scheme's challenge (case-insensitively) in
// oauth4webapi's parse of WWW-Authenticate.
export function challenge(res, scheme) {
  return res.challenges.find((c) => c.scheme.toLowerCase() === scheme.toLowerCase());
}

// assertDenied checks status, the RFC 6750/9449 error code in the
// challenge of the given scheme, and that the token never appears in
// the response.
export function assertDenied(res, status, scheme, error, token) {
  assert.equal(res.status, status, `status (body ${JSON.stringify(res.body)})`);
  const c = challenge(res, scheme);
  assert.ok(c, `a ${scheme} challenge in ${res.headers.get('www-authenticate')}`);
  assert.equal(c.parameters.error, error);
  if (token) {
    assert.ok(!res.headers.get('www-authenticate').includes(token), 'challenge must not echo the token');
    assert.ok(!JSON.stringify(res.body).includes(token), 'body must not echo the token');
  }
}

// metric returns the value of a Prometheus sample from /metrics text
// (sum over label sets matching labels).
export async function metric(metricsURL, name, labels = {}) {
  const text = await (await fetch(`${metricsURL}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = line.match(/^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$/);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}
