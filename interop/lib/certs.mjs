// Self-signed X.509 certificates for the certificate-bound token cases
// (RFC 8705): the server certificate of the gateway's and the provider's
// TLS listeners (for 127.0.0.1; the test's client trusts exactly it), and
// the clients' certificates, self-signed as RFC 8705 §2.2 expects.
//
// Node.js can parse certificates (crypto.X509Certificate) but not make
// them, and the suite takes no dependency and no openssl binary for that:
// makeCert writes the few DER structures a certificate needs (RFC 5280
// §4.1) and signs them with an ECDSA P-256 key. Go's parser, which the
// gateway uses, is strict DER; crypto.X509Certificate parses every
// certificate made here before it is used.

import { X509Certificate, createHash, randomBytes, sign } from 'node:crypto';

import { newKeyPair } from './keys.mjs';

// DER: tag, definite length, contents.
function tlv(tag, ...parts) {
  const body = Buffer.concat(parts);
  const n = body.length;
  let len;
  if (n < 0x80) len = Buffer.from([n]);
  else if (n < 0x100) len = Buffer.from([0x81, n]);
  else if (n < 0x10000) len = Buffer.from([0x82, n >> 8, n & 0xff]);
  else throw new Error('certs: DER value too long');
  return Buffer.concat([Buffer.from([tag]), len, body]);
}

const seq = (...parts) => tlv(0x30, ...parts);
const oid = (hex) => tlv(0x06, Buffer.from(hex, 'hex'));
const utcTime = (d) => tlv(0x17, Buffer.from(`${d.toISOString().slice(2, 19).replace(/[-T:]/g, '')}Z`, 'latin1'));

const OID = {
  ecdsaWithSHA256: oid('2a8648ce3d040302'), // 1.2.840.10045.4.3.2
  commonName: oid('550403'), // 2.5.4.3
  subjectAltName: oid('551d11'), // 2.5.29.17
};

// name is an X.501 Name with one commonName.
const name = (cn) => seq(tlv(0x31, seq(OID.commonName, tlv(0x0c, Buffer.from(cn, 'utf8')))));

// makeCert returns a fresh self-signed certificate: { cert (PEM), key
// (PKCS#8 PEM), der (Buffer), x5tS256 (base64url SHA-256 of the DER, as
// a bound token's cnf carries it), jwk (the public key, with x5c) }.
// ip, when given, goes into subjectAltName (for a server certificate).
export function makeCert(cn, { ip } = {}) {
  const { privateKey, publicKey } = newKeyPair('ec', { namedCurve: 'P-256' });
  const serial = randomBytes(16);
  serial[0] = (serial[0] & 0x7f) | 0x01; // positive and minimal, as DER wants
  const now = Date.now();
  const extensions = [];
  if (ip) {
    const octets = Buffer.from(ip.split('.').map(Number));
    extensions.push(seq(OID.subjectAltName, tlv(0x04, seq(tlv(0x87, octets))))); // iPAddress [7]
  }
  const tbs = seq(
    tlv(0xa0, tlv(0x02, Buffer.from([2]))), // [0] version v3
    tlv(0x02, serial),
    seq(OID.ecdsaWithSHA256),
    name(cn), // issuer: itself
    seq(utcTime(new Date(now - 60_000)), utcTime(new Date(now + 24 * 3600_000))),
    name(cn),
    publicKey.export({ type: 'spki', format: 'der' }),
    ...(extensions.length ? [tlv(0xa3, seq(...extensions))] : []), // [3] extensions
  );
  const signature = sign('sha256', tbs, privateKey); // ECDSA, DER-encoded (r, s)
  const der = seq(tbs, seq(OID.ecdsaWithSHA256), tlv(0x03, Buffer.from([0]), signature));
  const x509 = new X509Certificate(der); // throws if the DER is not a certificate
  if (!x509.verify(publicKey)) throw new Error('certs: the certificate does not verify with its own key');
  return {
    cert: x509.toString(),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    der,
    x5tS256: createHash('sha256').update(der).digest('base64url'),
    jwk: { ...publicKey.export({ format: 'jwk' }), x5c: [der.toString('base64')] },
  };
}

// clientCertHeader is the RFC 9440 Client-Cert field value for cert: the
// DER as an RFC 8941 byte sequence, ':' base64 ':', as a TLS-terminating
// proxy writes it.
export function clientCertHeader({ der }) {
  return `:${der.toString('base64')}:`;
}
