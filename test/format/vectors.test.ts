/**
 * Known-answer vectors (test/vectors/format-v1.json, written by scripts/make-vectors.ts): every stored
 * object decrypts, and sealing it again with the recorded data key and wrap nonce gives the same bytes.
 * The file, not the code, is the reference: a change that alters any byte of the format fails here.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import {
  ciphertextSize, decodeHeader, decryptBuffer, deriveKeys, deriveObjectKeys, decryptName,
  decryptPath, encryptName, encryptPath, HEADER_SIZE, IMMUTABLE_END, newObjectCipher, ObjectSealer, openAttributes,
  openObjectHeader, plaintextSize, rewrapHeader, unwrapBucketKeys, wrapBucketKeys, type CipherName,
} from '../../src/format/index.js';

interface ObjectVector {
  cipher: CipherName; chunkSize: number; plaintextLength: number;
  dataKey: string; wrapNonce: string; contentKey: string; commitment: string; ciphertext: string;
}
interface Vectors {
  masterKey: string;
  derived: { keyId: string; kek: string };
  bucketKeys: { nameKey: string; attrKey: string; nonce: string; wrapped: string };
  rotation: {
    masterKey: string; derived: { keyId: string; kek: string };
    object: { cipher: CipherName; plaintextLength: number; wrapNonce: string; header: string };
    bucketKeysNonce: string; wrappedBucketKeys: string;
  };
  objects: ObjectVector[];
  names: { plain: string; encrypted: string }[];
  paths: { plain: string; encrypted: string }[];
  attributesMetadataKey: string;
  attributes: { objectKey: string; attributes: Record<string, string>; nonce: string; sealed: string }[];
}

const v = JSON.parse(readFileSync(new URL('../vectors/format-v1.json', import.meta.url), 'utf8')) as Vectors;
const hex = (s: string) => Buffer.from(s, 'hex');
const keys = deriveKeys(hex(v.masterKey));
const bucketKeys = { nameKey: hex(v.bucketKeys.nameKey), attrKey: hex(v.bucketKeys.attrKey) };
/** A rand() handing out `values` in order. */
const queued = (...values: Buffer[]) => (n: number) => {
  const next = values.shift();
  if (!next || next.length !== n) throw new Error(`unexpected rand(${n})`);
  return Buffer.from(next);
};
const plaintext = (n: number) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) % 251));

t.test('derived keys', async (t) => {
  t.equal(keys.keyId.toString('hex'), v.derived.keyId, 'key id');
  t.equal(keys.kek.toString('hex'), v.derived.kek, 'kek');
});

t.test('bucket keys wrapped for the config', async (t) => {
  const opened = unwrapBucketKeys(keys, v.bucketKeys.wrapped);
  t.equal(opened.nameKey.toString('hex'), v.bucketKeys.nameKey, 'name key');
  t.equal(opened.attrKey.toString('hex'), v.bucketKeys.attrKey, 'attribute key');
  t.equal(wrapBucketKeys(keys, bucketKeys, queued(hex(v.bucketKeys.nonce))), v.bucketKeys.wrapped, 'wrapping again with the recorded nonce is identical');
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
    const derived = deriveObjectKeys(hex(o.dataKey), ct.subarray(0, IMMUTABLE_END));
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
    t.equal(encryptName(bucketKeys.nameKey, n.plain), n.encrypted, `encrypt ${n.plain.slice(0, 20)}`);
    t.equal(decryptName(bucketKeys.nameKey, n.encrypted), n.plain, `decrypt ${n.plain.slice(0, 20)}`);
  }
  for (const p of v.paths) {
    t.equal(encryptPath(bucketKeys.nameKey, p.plain), p.encrypted, `encrypt ${p.plain}`);
    t.equal(decryptPath(bucketKeys.nameKey, p.encrypted), p.plain, `decrypt ${p.plain}`);
  }
});

t.test('key rotation: re-wrapped header, unchanged chunks, same bucket keys', async (t) => {
  const r = v.rotation;
  const keys2 = deriveKeys(hex(r.masterKey));
  t.equal(keys2.keyId.toString('hex'), r.derived.keyId, 'second key id');
  t.equal(keys2.kek.toString('hex'), r.derived.kek, 'second kek');
  const source = v.objects.find((o) => o.cipher === r.object.cipher && o.plaintextLength === r.object.plaintextLength)!;
  const ct = hex(source.ciphertext);
  const header = rewrapHeader(keys, ct.subarray(0, HEADER_SIZE), keys2, queued(hex(r.object.wrapNonce)));
  t.equal(header.toString('hex'), r.object.header, 're-wrapping with the recorded nonce is identical');
  const rotated = Buffer.concat([header, ct.subarray(HEADER_SIZE)]);
  t.ok(decryptBuffer(keys2, rotated).equals(plaintext(source.plaintextLength)), 'new header on the old chunks decrypts under the new key');
  const both = (id: Buffer) => [keys, keys2].find((k) => k.keyId.equals(id));
  t.ok(decryptBuffer(both, ct).equals(decryptBuffer(both, rotated)), 'both versions decrypt the same during rotation');
  const opened = unwrapBucketKeys(keys2, r.wrappedBucketKeys);
  t.ok(opened.nameKey.equals(bucketKeys.nameKey) && opened.attrKey.equals(bucketKeys.attrKey), 'the same bucket keys under the new master key');
  t.equal(wrapBucketKeys(keys2, bucketKeys, queued(hex(r.bucketKeysNonce))), r.wrappedBucketKeys, 'identical with the recorded nonce');
});

t.test('attributes (random nonce in use: decryption of stored values only)', async (t) => {
  t.equal(v.attributesMetadataKey, 'x-amz-meta-s3cf-attrs');
  for (const a of v.attributes) {
    t.same(openAttributes(bucketKeys.attrKey, a.objectKey, a.sealed), a.attributes, a.objectKey);
    t.equal(Buffer.from(a.sealed, 'base64url').subarray(0, 24).toString('hex'), a.nonce, 'nonce leads the value');
  }
});
