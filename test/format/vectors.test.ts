/**
 * Known-answer vectors (test/vectors/format-v1.json, written by scripts/make-vectors.ts): every stored
 * object decrypts, and sealing it again with the recorded data key and wrap nonce gives the same bytes.
 * The file, not the code, is the reference: a change that alters any byte of the format fails here.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  ciphertextSize, COMMITMENT_OFFSET, decodeHeader, decryptBuffer, deriveKeys, deriveObjectKeys, decryptName,
  decryptPath, encryptName, encryptPath, HEADER_SIZE, newObjectCipher, ObjectSealer, openAttributes,
  openObjectHeader, plaintextSize, type CipherName,
} from '../../src/format/index.js';

interface ObjectVector {
  cipher: CipherName; chunkSize: number; plaintextLength: number;
  dataKey: string; wrapNonce: string; contentKey: string; commitment: string; ciphertext: string;
}
interface Vectors {
  masterKey: string;
  derived: { keyId: string; kek: string; nameKey: string; attrKey: string };
  objects: ObjectVector[];
  names: { plain: string; encrypted: string }[];
  paths: { plain: string; encrypted: string }[];
  attributesMetadataKey: string;
  attributes: { objectKey: string; attributes: Record<string, string>; nonce: string; sealed: string }[];
}

const v = JSON.parse(readFileSync(new URL('../vectors/format-v1.json', import.meta.url), 'utf8')) as Vectors;
const hex = (s: string) => Buffer.from(s, 'hex');
const keys = deriveKeys(hex(v.masterKey));
const plaintext = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) % 251));

t.test('derived keys', async (t) => {
  t.equal(keys.keyId.toString('hex'), v.derived.keyId, 'key id');
  t.equal(keys.kek.toString('hex'), v.derived.kek, 'kek');
  t.equal(keys.nameKey.toString('hex'), v.derived.nameKey, 'name key');
  t.equal(keys.attrKey.toString('hex'), v.derived.attrKey, 'attribute key');
});

t.test('coverage of the vector set', async (t) => {
  for (const cipher of ['chacha20-poly1305', 'aes-256-gcm']) {
    const sizes = v.objects.filter((o) => o.cipher === cipher).map((o) => o.plaintextLength);
    t.same(sizes, [0, 1, 4095, 4096, 4097, 2 * 4096 + 3], `${cipher}: 0, 1, C-1, C, C+1, 2C+3`);
  }
});

for (const o of v.objects) {
  t.test(`${o.cipher}, ${o.plaintextLength} bytes`, async (t) => {
    const ct = hex(o.ciphertext);
    const plain = plaintext(o.plaintextLength);
    t.equal(ct.length, ciphertextSize(o.plaintextLength, o.chunkSize), 'stored length');
    t.equal(plaintextSize(ct.length, o.chunkSize), o.plaintextLength, 'size from the length alone');

    const h = decodeHeader(ct);
    t.equal(h.cipher, o.cipher);
    t.equal(h.chunkSize, o.chunkSize);
    t.equal(h.keyId.toString('hex'), v.derived.keyId);
    t.equal(h.wrapNonce.toString('hex'), o.wrapNonce);
    t.equal(h.commitment.toString('hex'), o.commitment);
    const derived = deriveObjectKeys(hex(o.dataKey), ct.subarray(0, COMMITMENT_OFFSET));
    t.equal(derived.contentKey.toString('hex'), o.contentKey, 'content key');
    t.equal(derived.commitment.toString('hex'), o.commitment, 'commitment');

    t.ok(decryptBuffer(keys, ct).equals(plain), 'decrypts to the plaintext rule');
    const oc = openObjectHeader(keys, ct.subarray(0, HEADER_SIZE));
    t.ok(oc.header.equals(ct.subarray(0, HEADER_SIZE)), 'header authenticates');

    const queue = [hex(o.dataKey), hex(o.wrapNonce)];
    const sealer = new ObjectSealer(newObjectCipher(keys, { cipher: o.cipher, chunkSize: o.chunkSize }, (n) => {
      const next = queue.shift();
      if (!next || next.length !== n) throw new Error(`unexpected rand(${n})`);
      return next;
    }));
    // Push in uneven pieces: the output may not depend on how the plaintext arrives.
    const out: Buffer[] = [];
    for (let at = 0; at < plain.length; at += 1000) out.push(...sealer.push(plain.subarray(at, at + 1000)));
    out.push(...sealer.finish());
    const again = Buffer.concat(out);
    t.equal(again.toString('hex'), o.ciphertext, 're-encryption with the recorded randomness is byte-identical');
  });
}

t.test('names and paths', async (t) => {
  for (const n of v.names) {
    t.equal(encryptName(keys.nameKey, n.plain), n.encrypted, `encrypt ${n.plain.slice(0, 20)}`);
    t.equal(decryptName(keys.nameKey, n.encrypted), n.plain, `decrypt ${n.plain.slice(0, 20)}`);
  }
  for (const p of v.paths) {
    t.equal(encryptPath(keys.nameKey, p.plain), p.encrypted, `encrypt ${p.plain}`);
    t.equal(decryptPath(keys.nameKey, p.encrypted), p.plain, `decrypt ${p.plain}`);
  }
});

t.test('attributes (random nonce in use: decryption of stored values only)', async (t) => {
  t.equal(v.attributesMetadataKey, 'x-amz-meta-s3cf-attrs');
  for (const a of v.attributes) {
    t.same(openAttributes(keys.attrKey, a.objectKey, a.sealed), a.attributes, a.objectKey);
    t.equal(Buffer.from(a.sealed, 'base64url').subarray(0, 24).toString('hex'), a.nonce, 'nonce leads the value');
  }
});
