// Child processes and small servers for the interop tests: the
// tokenguard gateway (built once from this checkout, or TOKENGUARD_BIN)
// and an upstream that echoes what the gateway forwards. Everything
// binds 127.0.0.1; every wait is bounded; every child is killed with
// its whole process group, also when a test throws or the runner exits.

import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

// Children still running, killed on exit whatever happens. The gateway
// runs in its own process group (so it can be killed with anything it
// starts), which also means a Ctrl-C at the terminal does not reach it:
// hence the signal handlers.
const children = new Set();
process.on('exit', () => {
  for (const child of children) killGroup(child, 'SIGKILL');
});
for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
  process.once(signal, () => process.exit(code)); // runs the exit handler above
}

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal); // the whole group: the child was started detached
  } catch {
    // already gone
  }
}

// tempDir makes a private temporary directory, removed at exit.
export function tempDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tokenguard-interop-'));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// buildGateway returns the path of a tokenguard binary: TOKENGUARD_BIN
// if set, else one built from this checkout into dir (bounded: 5 min).
export async function buildGateway(dir) {
  if (process.env.TOKENGUARD_BIN) return path.resolve(process.env.TOKENGUARD_BIN);
  const out = path.join(dir, 'tokenguard');
  await new Promise((resolve, reject) => {
    execFile('go', ['build', '-o', out, './cmd/tokenguard'], { cwd: repoRoot, timeout: 5 * 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`go build ./cmd/tokenguard failed: ${err.message}\n${stderr}`));
      else resolve();
    });
  });
  return out;
}

// freePort asks the kernel for a free port on 127.0.0.1. The gateway
// needs its port before it starts (public_url is the base of every DPoP
// proof's htu), so a port is picked and released; another process could
// take it in between, which would show as the gateway failing to listen.
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

// startUpstream starts the API behind the gateway: it answers 200 with
// the request line and the X-Tokenguard-* headers it received, and
// counts requests so tests can tell that a denied request never got here.
// received also notes any client certificate header that got through
// (clientCert: the Client-Cert and Client-Cert-Chain values; the gateway
// must drop them).
export async function startUpstream() {
  const received = [];
  const srv = http.createServer((req, res) => {
    const identity = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k.startsWith('x-tokenguard-')) identity[k] = v;
    }
    const clientCert = ['client-cert', 'client-cert-chain'].map((k) => req.headers[k]).filter(Boolean);
    received.push({ method: req.method, url: req.url, identity, authorization: req.headers.authorization ?? '', clientCert });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ upstream: true, method: req.method, url: req.url, identity }));
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  return {
    url: `http://127.0.0.1:${srv.address().port}`,
    received,
    async close() {
      srv.closeAllConnections();
      srv.close();
      await once(srv, 'close');
    },
  };
}

// yamlString quotes s for YAML (JSON strings are valid YAML scalars).
const q = (s) => JSON.stringify(s);

// gatewayConfig renders the gateway's YAML configuration. Optional, for
// the certificate-bound cases (test/mtls.test.mjs): tls ({ certFile,
// keyFile, clientCerts }: HTTPS on port, public_url https),
// trustedProxies and clientCertHeader, introspectionResponse, and
// introspectionEndpoint (set, it replaces the discovered one); the JWKS
// timings and introspectionCacheMaxAge may be left out (the defaults).
export function gatewayConfig(c) {
  const lines = [
    `listen: ${q(`127.0.0.1:${c.port}`)}`,
    `metrics_listen: ${q(`127.0.0.1:${c.metricsPort}`)}`,
    `upstream: ${q(c.upstream)}`,
    `public_url: ${q(`${c.tls ? 'https' : 'http'}://127.0.0.1:${c.port}`)}`,
    `audience: ${q(c.audience)}`,
    'log_format: json',
    'log_level: debug',
    'startup_wait: 10s',
    'shutdown_timeout: 1s',
  ];
  if (c.tls) {
    lines.push(
      'tls:',
      `  cert_file: ${q(c.tls.certFile)}`,
      `  key_file: ${q(c.tls.keyFile)}`,
      ...(c.tls.clientCerts ? [`  client_certs: ${q(c.tls.clientCerts)}`] : []),
    );
  }
  if (c.trustedProxies) lines.push(`trusted_proxies: [${c.trustedProxies.map(q).join(', ')}]`);
  if (c.clientCertHeader) lines.push(`client_cert_header: ${q(c.clientCertHeader)}`);
  // Short JWKS timings so key rotation shows within seconds.
  if (c.jwksMin) lines.push(`jwks_min_refresh_interval: ${c.jwksMin}`);
  if (c.jwksMax) lines.push(`jwks_max_refresh_interval: ${c.jwksMax}`);
  if (c.jwksRateLimit) lines.push(`jwks_refresh_rate_limit: ${c.jwksRateLimit}`);
  lines.push(
    'issuers:',
    `  - issuer: ${q(c.issuer)}`,
    // No jwks_uri and (unless the test overrides it) no
    // introspection_endpoint: both are discovered from the issuer's
    // metadata, as most users will configure it.
    ...(c.introspectionEndpoint ? [`    introspection_endpoint: ${q(c.introspectionEndpoint)}`] : []),
    `    client_id: ${q(c.clientId)}`,
    `    client_secret: ${q(c.clientSecret)}`,
    ...(c.introspectionCacheMaxAge ? [`    introspection_cache_max_age: ${c.introspectionCacheMaxAge}`] : []),
    ...(c.introspectionResponse ? [`    introspection_response: ${q(c.introspectionResponse)}`] : []),
    'dpop:',
    '  mode: allowed',
    'routes:',
  );
  for (const r of c.routes) {
    lines.push(`  - pattern: ${q(r.pattern)}`);
    if (r.scopes) lines.push(`    scopes: [${r.scopes.map(q).join(', ')}]`);
    if (r.requireDPoP) lines.push('    require_dpop: true');
    if (r.introspectionMaxAge) lines.push(`    introspection_max_age: ${r.introspectionMaxAge}`);
  }
  return lines.join('\n') + '\n';
}

// startGateway writes config to dir, starts bin with it in its own
// process group, and waits (bounded) until /readyz answers 200. It
// returns { url, metricsURL, logFile, log(), logTail(), stop() }.
export async function startGateway({ bin, dir, config, port, metricsPort, readyTimeout = 20_000 }) {
  const cfgFile = path.join(dir, 'gateway.yaml');
  fs.writeFileSync(cfgFile, config, { mode: 0o600 });
  const logFile = path.join(dir, 'gateway.log');
  const log = fs.openSync(logFile, 'w');
  const child = spawn(bin, ['-config', cfgFile], { stdio: ['ignore', log, log], detached: true });
  fs.closeSync(log);
  children.add(child);
  // A gateway must never be what keeps the test process alive (one a
  // failed before hook did not get to stop, say): unref'd, the process
  // ends when the tests do, and the exit handler above kills it.
  child.unref();
  let exited = null;
  child.on('exit', (code, signal) => {
    exited = { code, signal };
    children.delete(child);
  });
  const readLog = () => fs.readFileSync(logFile, 'utf8').trimEnd();
  const logTail = () => readLog().split('\n').slice(-40).join('\n');
  // waitExit waits up to ms for the child to exit and reports whether it
  // did. The timer is cleared either way: a pending one would keep the
  // test process alive for its whole length after the last test.
  const waitExit = async (ms) => {
    let timer;
    try {
      return await Promise.race([
        once(child, 'exit').then(() => true),
        new Promise((r) => { timer = setTimeout(r, ms, false); }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };
  const stop = async () => {
    if (exited) return;
    killGroup(child, 'SIGTERM');
    if (!(await waitExit(5_000))) {
      killGroup(child, 'SIGKILL');
      await waitExit(5_000);
    }
  };

  const metricsURL = `http://127.0.0.1:${metricsPort}`;
  const deadline = Date.now() + readyTimeout;
  for (;;) {
    if (exited) {
      throw new Error(`tokenguard exited during start (${JSON.stringify(exited)}); log:\n${logTail()}`);
    }
    try {
      const res = await fetch(`${metricsURL}/readyz`, { signal: AbortSignal.timeout(1_000) });
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`tokenguard not ready after ${readyTimeout} ms; log:\n${logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const scheme = /^tls:/m.test(config) ? 'https' : 'http';
  return { url: `${scheme}://127.0.0.1:${port}`, metricsURL, logFile, log: readLog, logTail, stop };
}
