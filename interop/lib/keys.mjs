// Key generation for the tests, around a Node.js 20 deadlock.
//
// A KeyObject that crypto.generateKeyPairSync returns shares its lock
// with the generation job, whose destructor takes that lock when the
// garbage collector finalizes the job. If that happens while the same
// thread holds the lock for an operation on the key (an export to JWK,
// say, which allocates), the thread waits on itself for ever: seen here
// as a test process hanging at 0 % CPU in
// KeyGenJob<...KeyGenTraits>::~KeyGenJob, under ExportJWK, on Node
// 20.20.2 (a loop of generateKeyPairSync('ec') and export({format:
// 'jwk'}) hangs within seconds).
//
// newKeyPair asks for the pair encoded (DER) instead and imports it: the
// KeyObjects it returns are the import's, and share nothing with the job.

import { createPrivateKey, createPublicKey, generateKeyPairSync } from 'node:crypto';

// newKeyPair is generateKeyPairSync(type, options) with KeyObjects that
// are safe to use at once (see above).
export function newKeyPair(type, options = {}) {
  const { privateKey: der } = generateKeyPairSync(type, {
    ...options,
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
    publicKeyEncoding: { type: 'spki', format: 'der' },
  });
  const privateKey = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  return { privateKey, publicKey: createPublicKey(privateKey) };
}
