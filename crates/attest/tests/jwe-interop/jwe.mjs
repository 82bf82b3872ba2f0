// Enclave side of the secret-release interop test, with the JS `jose` library.
//   node jwe.mjs gen RSA|P-256|P-384 KID   -> private JWK (JSON) on stdout
//   node jwe.mjs decrypt KEYFILE < JWE     -> {"header": {...}, "plaintext_b64": "..."}
import { readFileSync } from 'node:fs';
import { compactDecrypt, exportJWK, generateKeyPair, importJWK } from 'jose';

const [cmd, a, b] = process.argv.slice(2);
if (cmd === 'gen') {
  const alg = a === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
  const opts = a === 'RSA' ? { extractable: true, modulusLength: 2048 } : { extractable: true, crv: a };
  const { privateKey } = await generateKeyPair(alg, opts);
  const j = await exportJWK(privateKey);
  j.kid = b;
  console.log(JSON.stringify(j));
} else if (cmd === 'decrypt') {
  const j = JSON.parse(readFileSync(a, 'utf8'));
  const alg = j.kty === 'RSA' ? 'RSA-OAEP-256' : 'ECDH-ES+A256KW';
  const key = await importJWK(j, alg);
  const token = readFileSync(0, 'utf8').trim();
  const { plaintext, protectedHeader } = await compactDecrypt(token, key, {
    keyManagementAlgorithms: ['RSA-OAEP-256', 'ECDH-ES+A256KW'],
    contentEncryptionAlgorithms: ['A256GCM'],
  });
  console.log(JSON.stringify({ header: protectedHeader, plaintext_b64: Buffer.from(plaintext).toString('base64') }));
} else {
  console.error('usage: jwe.mjs gen KIND KID | decrypt KEYFILE');
  process.exit(2);
}
