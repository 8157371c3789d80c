/**
 * Every way the provider (or anyone with write access to the bucket) can modify a stored object must be
 * refused, and refused with the IntegrityError code that names what happened. Each case is checked
 * through both readers: the streaming whole-object decoder (decryptBuffer, which knows nothing but the
 * bytes) and random access (openObjectHeader + ObjectCipher.openChunk with the chunk total implied by
 * the object's stored length, which is what a ranged reader knows).
 */
import t from 'tap';
import type tap from 'tap';
import { randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { IntegrityError } from '../../src/format/errors.js';
import { deriveKeys, deriveObjectKeys, type DerivedKeys } from '../../src/format/kdf.js';
import { newObjectCipher, openObjectHeader, rewrapHeader, type KeyRing } from '../../src/format/envelope.js';
import { decryptBuffer, encryptBuffer, storedPlaintextSize } from '../../src/format/stream.js';
import { COMMITMENT_OFFSET, HEADER_SIZE, IMMUTABLE_END, isValidChunkSize, WRAP_AAD_END, type CipherName } from '../../src/format/header.js';
import { newBucketKeys, unwrapBucketKeys, wrapBucketKeys } from '../../src/format/bucket-keys.js';
import { chunkCiphertextOffset, chunkCount, TAG_SIZE } from '../../src/format/layout.js';
import { openAttributes, sealAttributes } from '../../src/format/attributes.js';
import { decryptName, decryptPath, encryptName, encryptPath, NameError } from '../../src/format/names.js';

const C = 4096;
const SEALED = C + TAG_SIZE;
const CIPHERS: CipherName[] = ['chacha20-poly1305', 'aes-256-gcm'];
const keys = deriveKeys(randomBytes(32));
const bk = newBucketKeys();

/** The error code a call fails with, 'ok' when it succeeds, or the class and message of a non-format error. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof IntegrityError || e instanceof NameError) return e.code;
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}

function indexOf(fn: () => unknown): number | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof IntegrityError) return e.chunkIndex;
  }
  return undefined;
}

/** Streaming reader: the bytes alone. */
function whole(ct: Buffer, ring: KeyRing = keys): Buffer {
  return decryptBuffer(ring, ct);
}

/**
 * Random-access reader: plaintext size from the stored length, then each chunk fetched at its computed
 * offset and opened knowing how many chunks the object has.
 */
function ranged(ct: Buffer, ring: KeyRing = keys): Buffer {
  const oc = openObjectHeader(ring, ct.subarray(0, HEADER_SIZE));
  const total = chunkCount(storedPlaintextSize(ct.length, oc.chunkSize), oc.chunkSize);
  const out: Buffer[] = [];
  for (let i = 0; i < total; i++) {
    const off = chunkCiphertextOffset(i, oc.chunkSize);
    out.push(oc.openChunk(i, total, ct.subarray(off, Math.min(off + oc.chunkSize + TAG_SIZE, ct.length))));
  }
  return Buffer.concat(out);
}

function seal(plain: Buffer, cipher: CipherName = 'chacha20-poly1305', k: DerivedKeys = keys): Buffer {
  return encryptBuffer(k, { cipher, chunkSize: C }, plain);
}

/** Sealed chunk i of a ciphertext (clipped at the end). */
function chunkAt(ct: Buffer, i: number): Buffer {
  const off = chunkCiphertextOffset(i, C);
  return ct.subarray(off, Math.min(off + SEALED, ct.length));
}

function flip(buf: Buffer, at: number, mask = 0x01): Buffer {
  const copy = Buffer.from(buf);
  copy[at] ^= mask;
  return copy;
}

/** Asserts both readers refuse `ct` with `code` (and at chunk `index` when given). */
function both(t: Pick<typeof tap, 'equal'>, ct: Buffer, code: string, what: string, index?: number, ring: KeyRing = keys): void {
  t.equal(codeOf(() => whole(ct, ring)), code, `${what}: decryptBuffer -> ${code}`);
  t.equal(codeOf(() => ranged(ct, ring)), code, `${what}: openChunk -> ${code}`);
  if (index !== undefined) {
    t.equal(indexOf(() => whole(ct, ring)), index, `${what}: decryptBuffer reports chunk ${index}`);
    t.equal(indexOf(() => ranged(ct, ring)), index, `${what}: openChunk reports chunk ${index}`);
  }
}

t.test('untampered objects open through both readers', async (t) => {
  for (const cipher of CIPHERS) {
    for (const n of [0, 1, C - 1, C, C + 1, 3 * C + 100]) {
      const plain = randomBytes(n);
      const ct = seal(plain, cipher);
      t.ok(whole(ct).equals(plain), `${cipher} ${n} bytes: decryptBuffer`);
      t.ok(ranged(ct).equals(plain), `${cipher} ${n} bytes: openChunk`);
    }
  }
});

t.test('header: a flipped bit in each field region gets that region\'s code', async (t) => {
  const ct = seal(randomBytes(100));
  // Expected code for a header whose byte `at` was XORed with `mask`.
  const expected = (at: number, mask: number): string => {
    if (at < 4) return 'BAD_MAGIC';
    if (at === 4) return 'UNSUPPORTED_VERSION';
    if (at === 5) return [1, 2].includes(1 ^ mask) ? 'KEY_UNWRAP_FAILED' : 'UNKNOWN_CIPHER';
    if (at < 8) return 'BAD_FLAGS';
    if (at < 12) {
      // A chunk size that is still valid decodes, but the key wrap authenticates it.
      const size = Buffer.from(ct.subarray(8, 12));
      size[at - 8] ^= mask;
      return isValidChunkSize(size.readUInt32BE(0)) ? 'KEY_UNWRAP_FAILED' : 'BAD_CHUNK_SIZE';
    }
    if (at < 28) return 'KEY_ID_MISMATCH';
    if (at < 100) return 'KEY_UNWRAP_FAILED'; // wrap nonce (28..51) and wrapped key (52..99)
    return 'COMMITMENT_MISMATCH';
  };
  const seen = new Map<string, number>();
  for (let at = 0; at < HEADER_SIZE; at++) {
    const wrong: string[] = [];
    for (let bit = 0; bit < 8; bit++) {
      const mask = 1 << bit;
      const tampered = flip(ct, at, mask);
      const want = expected(at, mask);
      seen.set(want, (seen.get(want) ?? 0) + 1);
      const got = codeOf(() => whole(tampered));
      const gotRanged = codeOf(() => openObjectHeader(keys, tampered.subarray(0, HEADER_SIZE)));
      if (got !== want || gotRanged !== want) wrong.push(`bit ${bit}: ${got}/${gotRanged}, want ${want}`);
    }
    t.same(wrong, [], `header byte ${at}`);
  }
  t.same([...seen.keys()].sort(), [
    'BAD_CHUNK_SIZE', 'BAD_FLAGS', 'BAD_MAGIC', 'COMMITMENT_MISMATCH', 'KEY_ID_MISMATCH',
    'KEY_UNWRAP_FAILED', 'UNKNOWN_CIPHER', 'UNSUPPORTED_VERSION',
  ], 'every header code is exercised');
  t.ok(seen.get('KEY_UNWRAP_FAILED')! > 72 * 8, 'some chunk-size and cipher flips reach the key wrap');
});

t.test('header: whole-field substitutions', async (t) => {
  const plain = randomBytes(C + 5);
  for (const cipher of CIPHERS) {
    const ct = seal(plain, cipher);
    const other = cipher === 'chacha20-poly1305' ? 2 : 1;
    const set = (at: number, bytes: number[]) => {
      const copy = Buffer.from(ct);
      copy.set(bytes, at);
      return copy;
    };
    both(t, set(5, [other]), 'KEY_UNWRAP_FAILED', `${cipher}: cipher id switched to the other cipher`);
    both(t, set(5, [0]), 'UNKNOWN_CIPHER', `${cipher}: cipher id 0`);
    both(t, set(5, [3]), 'UNKNOWN_CIPHER', `${cipher}: cipher id 3`);
    both(t, set(4, [2]), 'UNSUPPORTED_VERSION', `${cipher}: version 2`);
    both(t, set(4, [0]), 'UNSUPPORTED_VERSION', `${cipher}: version 0`);
    both(t, set(8, [0, 0, 0x20, 0]), 'KEY_UNWRAP_FAILED', `${cipher}: chunk size 8192 (valid, but authenticated)`);
    both(t, set(8, [0, 0, 0x10, 1]), 'BAD_CHUNK_SIZE', `${cipher}: chunk size 4097`);
    both(t, set(8, [0, 0, 0, 0]), 'BAD_CHUNK_SIZE', `${cipher}: chunk size 0`);
    both(t, set(8, [0, 0, 0x08, 0]), 'BAD_CHUNK_SIZE', `${cipher}: chunk size 2048`);
    both(t, set(8, [1, 0, 0x10, 0]), 'BAD_CHUNK_SIZE', `${cipher}: chunk size 16 MiB + 4 KiB`);
    both(t, set(6, [0x80, 0]), 'BAD_FLAGS', `${cipher}: high flag bit`);
    both(t, set(12, [...randomBytes(16)]), 'KEY_ID_MISMATCH', `${cipher}: random key id`);
    both(t, set(100, [...randomBytes(32)]), 'COMMITMENT_MISMATCH', `${cipher}: random commitment`);
    both(t, set(28, [...randomBytes(24)]), 'KEY_UNWRAP_FAILED', `${cipher}: random wrap nonce`);
    both(t, set(52, [...randomBytes(48)]), 'KEY_UNWRAP_FAILED', `${cipher}: random wrapped key`);
    both(t, set(0, [...Buffer.from('S3CG')]), 'BAD_MAGIC', `${cipher}: other magic`);
  }
  // A key ring that hands out the KEK whatever the key id says: the key id is still authenticated by the wrap.
  const ct = seal(plain);
  const careless: KeyRing = () => keys;
  both(t, flip(ct, 12), 'KEY_UNWRAP_FAILED', 'key id changed, ring ignores key ids', undefined, careless);
  t.equal(codeOf(() => whole(ct.subarray(0, HEADER_SIZE - 1))), 'HEADER_TRUNCATED', 'object shorter than a header');
  t.equal(codeOf(() => whole(Buffer.alloc(0))), 'HEADER_TRUNCATED', 'empty object');
  t.equal(codeOf(() => openObjectHeader(keys, ct.subarray(0, 10))), 'HEADER_TRUNCATED', 'openObjectHeader on 10 bytes');
});

t.test('different master key -> KEY_ID_MISMATCH', async (t) => {
  const ct = seal(randomBytes(500));
  const stranger = deriveKeys(randomBytes(32));
  both(t, ct, 'KEY_ID_MISMATCH', 'opened with another master key', undefined, stranger);
  const ring: KeyRing = (id) => (id.equals(stranger.keyId) ? stranger : undefined);
  both(t, ct, 'KEY_ID_MISMATCH', 'key ring without the object\'s key', undefined, ring);
  const rotating: KeyRing = (id) => [stranger, keys].find((k) => k.keyId.equals(id));
  t.equal(codeOf(() => whole(ct, rotating)), 'ok', 'a ring that holds the key opens it');
});

t.test('forged headers: the commitment binds the header to one data key', async (t) => {
  const plain = randomBytes(2 * C + 9);
  const ct = seal(plain);
  const header = ct.subarray(0, HEADER_SIZE);
  const otherKey = randomBytes(32);

  // Someone holding the KEK (but not playing by the rules) wraps another data key under the same
  // nonce and AAD and keeps the old commitment: the commitment no longer matches.
  const forged = Buffer.from(ct);
  const wrapped = xchacha20poly1305(keys.kek, header.subarray(28, 52), header.subarray(0, WRAP_AAD_END)).encrypt(otherKey);
  forged.set(wrapped, 52);
  both(t, forged, 'COMMITMENT_MISMATCH', 're-wrapped data key, old commitment');

  // If they recompute the commitment too, the header is accepted but every chunk was sealed under
  // the old content key: the body is refused.
  const recommitted = Buffer.from(forged);
  recommitted.set(deriveObjectKeys(otherKey, recommitted.subarray(0, IMMUTABLE_END)).commitment, COMMITMENT_OFFSET);
  t.equal(codeOf(() => openObjectHeader(keys, recommitted.subarray(0, HEADER_SIZE))), 'ok', 're-committed header is well formed');
  both(t, recommitted, 'CHUNK_TAMPERED', 're-wrapped and re-committed header on the old body', 0);

  // The commitment is not just a checksum of the header: a valid commitment from another object does not fit.
  const another = seal(plain);
  const swapped = Buffer.from(ct);
  another.copy(swapped, COMMITMENT_OFFSET, COMMITMENT_OFFSET, HEADER_SIZE);
  both(t, swapped, 'COMMITMENT_MISMATCH', 'commitment of another object');

  // The wrap fields of another object (its own key id, nonce and wrapped data key, all authentic)
  // unwrap to another data key: the commitment refuses them.
  const foreignWrap = Buffer.from(ct);
  another.copy(foreignWrap, 12, 12, COMMITMENT_OFFSET);
  both(t, foreignWrap, 'COMMITMENT_MISMATCH', 'wrap fields of another object');
});

t.test('key rotation: a re-wrapped header keeps every chunk valid, and only under the new key', async (t) => {
  const next = deriveKeys(randomBytes(32));
  for (const cipher of CIPHERS) {
    for (const n of [0, C, 3 * C + 100]) {
      const plain = randomBytes(n);
      const ct = seal(plain, cipher);
      const header = rewrapHeader(keys, ct.subarray(0, HEADER_SIZE), next);
      t.equal(header.length, HEADER_SIZE);
      t.ok(header.subarray(0, IMMUTABLE_END).equals(ct.subarray(0, IMMUTABLE_END)), 'immutable fields unchanged');
      t.ok(header.subarray(COMMITMENT_OFFSET).equals(ct.subarray(COMMITMENT_OFFSET, HEADER_SIZE)), 'commitment unchanged');
      t.ok(header.subarray(12, 28).equals(next.keyId), 'new key id');
      t.notOk(header.subarray(28, 52).equals(ct.subarray(28, 52)), 'fresh wrap nonce');
      const rotated = Buffer.concat([header, ct.subarray(HEADER_SIZE)]);
      t.ok(whole(rotated, next).equals(plain), `${cipher} ${n} bytes: new header + old body opens under the new key`);
      t.ok(ranged(rotated, next).equals(plain), `${cipher} ${n} bytes: ranged`);
      both(t, rotated, 'KEY_ID_MISMATCH', 'the old key no longer opens it');
      // The old key's KEK cannot be made to open it by restoring the old key id.
      const oldId = Buffer.from(rotated);
      ct.copy(oldId, 12, 12, 28);
      const careless: KeyRing = () => keys;
      both(t, oldId, 'KEY_UNWRAP_FAILED', 'old key id on the new wrap', undefined, careless);
    }
  }
  const ct = seal(randomBytes(10));
  t.equal(codeOf(() => rewrapHeader(next, ct.subarray(0, HEADER_SIZE), next)), 'KEY_ID_MISMATCH', 'rewrap needs the current key');
  t.equal(codeOf(() => rewrapHeader(keys, flip(ct, 60).subarray(0, HEADER_SIZE), next)), 'KEY_UNWRAP_FAILED', 'rewrap refuses a tampered wrap');
  t.equal(codeOf(() => rewrapHeader(keys, flip(ct, 110).subarray(0, HEADER_SIZE), next)), 'COMMITMENT_MISMATCH', 'rewrap refuses a tampered commitment');
  t.equal(codeOf(() => rewrapHeader(keys, ct.subarray(0, 100), next)), 'HEADER_TRUNCATED');
});

t.test('bucket keys wrapped in the config', async (t) => {
  const other = deriveKeys(randomBytes(32));
  const wrapped = wrapBucketKeys(keys, bk);
  t.match(wrapped, /^[A-Za-z0-9_-]{182}$/, '136 bytes, base64url');
  const opened = unwrapBucketKeys(keys, wrapped);
  t.ok(opened.nameKey.equals(bk.nameKey) && opened.attrKey.equals(bk.attrKey), 'round trip');
  t.not(wrapBucketKeys(keys, bk), wrapped, 'random nonce');
  const forOther = wrapBucketKeys(other, bk);
  t.ok(unwrapBucketKeys(other, forOther).nameKey.equals(bk.nameKey), 'the same bucket keys under another master key');
  const raw = Buffer.from(wrapped, 'base64url');
  const wrong: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const code = codeOf(() => unwrapBucketKeys(keys, flip(raw, i).toString('base64url')));
    if (code !== 'KEY_UNWRAP_FAILED') wrong.push(`byte ${i}: ${code}`);
  }
  t.same(wrong, [], 'a flipped bit anywhere -> KEY_UNWRAP_FAILED');
  t.equal(codeOf(() => unwrapBucketKeys(other, wrapped)), 'KEY_UNWRAP_FAILED', 'another master key');
  // AAD = key id: an entry only opens under the key id it was wrapped for.
  t.equal(codeOf(() => unwrapBucketKeys({ keyId: other.keyId, kek: keys.kek }, wrapped)), 'KEY_UNWRAP_FAILED', 'bound to its key id');
  t.equal(codeOf(() => unwrapBucketKeys(keys, wrapped.slice(0, -2))), 'KEY_UNWRAP_FAILED', 'truncated');
});

for (const cipher of CIPHERS) {
  t.test(`${cipher}: chunk bodies and tags`, async (t) => {
    const plain = randomBytes(3 * C + 100); // chunks 0, 1, 2 full; chunk 3 holds 100 bytes and is final
    const ct = seal(plain, cipher);
    for (let i = 0; i < 4; i++) {
      const start = chunkCiphertextOffset(i, C);
      const len = chunkAt(ct, i).length;
      both(t, flip(ct, start), 'CHUNK_TAMPERED', `chunk ${i}: first body byte`, i);
      both(t, flip(ct, start + Math.floor((len - TAG_SIZE) / 2), 0x80), 'CHUNK_TAMPERED', `chunk ${i}: middle body byte`, i);
      both(t, flip(ct, start + len - TAG_SIZE), 'CHUNK_TAMPERED', `chunk ${i}: first tag byte`, i);
      both(t, flip(ct, start + len - 1, 0x40), 'CHUNK_TAMPERED', `chunk ${i}: last tag byte`, i);
    }
    // Empty object: its single chunk is all tag.
    const empty = seal(Buffer.alloc(0), cipher);
    both(t, flip(empty, HEADER_SIZE + 3), 'CHUNK_TAMPERED', 'empty object: tag byte', 0);
  });

  t.test(`${cipher}: chunks moved, duplicated, dropped`, async (t) => {
    const plain = randomBytes(4 * C); // four full chunks; chunk 3 is final
    const ct = seal(plain, cipher);
    const header = ct.subarray(0, HEADER_SIZE);
    const c = [0, 1, 2, 3].map((i) => chunkAt(ct, i));
    const build = (order: number[]) => Buffer.concat([header, ...order.map((i) => c[i])]);

    t.ok(whole(build([0, 1, 2, 3])).equals(plain), 'rebuilt in order opens');
    both(t, build([0, 2, 1, 3]), 'CHUNK_REORDERED', 'chunks 1 and 2 swapped', 1);
    both(t, build([1, 0, 2, 3]), 'CHUNK_REORDERED', 'chunks 0 and 1 swapped', 0);
    both(t, build([0, 1, 3, 2]), 'CHUNK_REORDERED', 'final chunk swapped with the one before', 2);
    both(t, build([0, 1, 1, 2, 3]), 'CHUNK_REORDERED', 'chunk 1 duplicated (inserted again)', 2);
    both(t, build([0, 1, 1, 3]), 'CHUNK_REORDERED', 'chunk 2 overwritten by a copy of chunk 1', 2);
    both(t, build([0, 2, 3]), 'CHUNK_REORDERED', 'chunk 1 dropped', 1);
    both(t, build([0, 0, 2, 3]), 'CHUNK_REORDERED', 'chunk 0 duplicated over chunk 1', 1);
  });

  t.test(`${cipher}: truncation`, async (t) => {
    const plain = randomBytes(3 * C + 100);
    const ct = seal(plain, cipher);
    // At a chunk boundary: the remaining last chunk was sealed as non-final.
    for (const kept of [1, 2, 3]) {
      both(t, ct.subarray(0, chunkCiphertextOffset(kept, C)), 'TRUNCATED', `cut after ${kept} chunk(s)`, kept - 1);
    }
    // Header only: no object has zero chunks.
    both(t, ct.subarray(0, HEADER_SIZE), 'INVALID_SIZE', 'cut right after the header');
    // Inside a chunk. The piece left of the cut chunk decides:
    //  - 1..15 bytes: a partial tag; no object has this length -> INVALID_SIZE.
    //  - exactly 16 bytes after a full chunk: an empty chunk exists only as the only chunk of an
    //    empty object, so no object has this length either -> INVALID_SIZE.
    //  - 17 bytes or more: some object does have this length (its last chunk holds piece-16 bytes),
    //    so the piece is opened as a final chunk, and its "tag" is really body bytes -> CHUNK_TAMPERED.
    for (const piece of [1, 15, 16]) {
      both(t, ct.subarray(0, chunkCiphertextOffset(2, C) + piece), 'INVALID_SIZE', `cut ${piece} bytes into chunk 2`);
      both(t, ct.subarray(0, chunkCiphertextOffset(1, C) + piece), 'INVALID_SIZE', `cut ${piece} bytes into chunk 1`);
    }
    both(t, ct.subarray(0, chunkCiphertextOffset(0, C) + 15), 'INVALID_SIZE', 'cut 15 bytes into chunk 0');
    for (const piece of [17, 100, C, SEALED - 1]) {
      both(t, ct.subarray(0, chunkCiphertextOffset(2, C) + piece), 'CHUNK_TAMPERED', `cut ${piece} bytes into chunk 2`, 2);
    }
    both(t, ct.subarray(0, ct.length - 1), 'CHUNK_TAMPERED', 'last byte of the final chunk cut', 3);
    both(t, ct.subarray(0, chunkCiphertextOffset(3, C) + 16), 'INVALID_SIZE', 'final chunk cut to 16 bytes');
    // Truncating an object whose final chunk is full, at its last boundary, leaves a non-final chunk.
    const full = seal(randomBytes(2 * C), cipher);
    both(t, full.subarray(0, chunkCiphertextOffset(1, C)), 'TRUNCATED', 'two full chunks cut to one', 0);
  });

  t.test(`${cipher}: extension`, async (t) => {
    // Final chunk full: anything after it follows a chunk marked final.
    const fullPlain = randomBytes(2 * C);
    const full = seal(fullPlain, cipher);
    const last = chunkAt(full, 1);
    for (const extra of [1, 15, 16]) {
      // Streaming sees data after the final chunk; the ranged reader sees a length no object has.
      const ct = Buffer.concat([full, randomBytes(extra)]);
      t.equal(codeOf(() => whole(ct)), 'EXTENDED', `${extra} byte(s) after a full final chunk: decryptBuffer -> EXTENDED`);
      t.equal(codeOf(() => ranged(ct)), 'INVALID_SIZE', `${extra} byte(s) after a full final chunk: ranged -> INVALID_SIZE`);
    }
    for (const extra of [17, 1000]) {
      both(t, Buffer.concat([full, randomBytes(extra)]), 'EXTENDED', `${extra} bytes after a full final chunk`, 1);
    }
    both(t, Buffer.concat([full, chunkAt(full, 0)]), 'EXTENDED', 'chunk 0 appended after a full final chunk', 1);
    both(t, Buffer.concat([full, last]), 'EXTENDED', 'final chunk appended again', 1);
    both(t, Buffer.concat([full, full.subarray(HEADER_SIZE)]), 'EXTENDED', 'whole body appended again', 1);

    // Final chunk partial: appended bytes shift where its tag should be, so it fails authentication;
    // nothing in the bytes says where the real end was. Still refused, as CHUNK_TAMPERED.
    const partial = seal(randomBytes(C + 100), cipher);
    for (const extra of [1, 16, 17, C]) {
      both(t, Buffer.concat([partial, randomBytes(extra)]), 'CHUNK_TAMPERED', `${extra} byte(s) after a partial final chunk`, 1);
    }
    both(t, Buffer.concat([partial, chunkAt(partial, 0)]), 'CHUNK_TAMPERED', 'whole chunk appended after a partial final chunk', 1);
    // An empty object's only chunk is a (zero-byte) partial chunk: the same holds.
    const empty = seal(Buffer.alloc(0), cipher);
    for (const extra of [1, 17, SEALED + 1]) {
      both(t, Buffer.concat([empty, randomBytes(extra)]), 'CHUNK_TAMPERED', `empty object + ${extra} byte(s)`, 0);
    }
    both(t, Buffer.concat([empty, empty.subarray(HEADER_SIZE)]), 'CHUNK_TAMPERED', 'empty object + its empty chunk again', 0);
    const odd = Buffer.concat([empty, randomBytes(SEALED)]); // one sealed chunk + 16 bytes: no object is this long
    t.equal(codeOf(() => whole(odd)), 'CHUNK_TAMPERED', 'empty object + a sealed chunk of bytes: decryptBuffer');
    t.equal(codeOf(() => ranged(odd)), 'INVALID_SIZE', 'empty object + a sealed chunk of bytes: ranged');
  });

  t.test(`${cipher}: bodies and headers of different objects do not mix`, async (t) => {
    const a = seal(randomBytes(2 * C + 50), cipher);
    const b = seal(randomBytes(2 * C + 50), cipher);
    both(t, Buffer.concat([a.subarray(0, HEADER_SIZE), b.subarray(HEADER_SIZE)]), 'CHUNK_TAMPERED', 'header of A on the body of B', 0);
    const spliced = Buffer.from(a);
    chunkAt(b, 1).copy(spliced, chunkCiphertextOffset(1, C));
    both(t, spliced, 'CHUNK_TAMPERED', 'chunk 1 of B in A', 1);
    const ea = seal(Buffer.alloc(0), cipher);
    const eb = seal(Buffer.alloc(0), cipher);
    both(t, Buffer.concat([ea.subarray(0, HEADER_SIZE), eb.subarray(HEADER_SIZE)]), 'CHUNK_TAMPERED', 'two empty objects', 0);
  });
}

t.test('a chunk moved further than the reorder search radius is reported as tampered', async (t) => {
  // Classification is best effort (it only runs once authentication has already failed): a chunk
  // more than 64 positions away from where it belongs is not recognised as one of ours.
  const n = 70;
  const ct = seal(randomBytes(n * C));
  const header = ct.subarray(0, HEADER_SIZE);
  const chunks = Array.from({ length: n }, (_, i) => chunkAt(ct, i));
  const near = [...chunks];
  [near[0], near[64]] = [near[64], near[0]];
  both(t, Buffer.concat([header, ...near]), 'CHUNK_REORDERED', 'chunk 64 at position 0', 0);
  const far = [...chunks];
  [far[0], far[65]] = [far[65], far[0]];
  both(t, Buffer.concat([header, ...far]), 'CHUNK_TAMPERED', 'chunk 65 at position 0', 0);
});

t.test('object attributes', async (t) => {
  const attrs = { mode: '100644', uid: '1000', mtime: '1700000000123', 'content-type': 'text/plain' };
  const key = 'bucket/prefix/enc0/enc1';
  const sealed = sealAttributes(bk.attrKey, key, attrs);
  t.match(sealed, /^[A-Za-z0-9_-]+$/, 'base64url, safe as an S3 metadata value');
  t.same(openAttributes(bk.attrKey, key, sealed), attrs, 'round trip');
  t.not(sealAttributes(bk.attrKey, key, attrs), sealed, 'random nonce: sealing twice differs');

  const raw = Buffer.from(sealed, 'base64url');
  const wrong: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const code = codeOf(() => openAttributes(bk.attrKey, key, flip(raw, i).toString('base64url')));
    if (code !== 'ATTRIBUTES_TAMPERED') wrong.push(`byte ${i}: ${code}`);
  }
  t.same(wrong, [], `a flipped bit anywhere in the ${raw.length} sealed bytes -> ATTRIBUTES_TAMPERED`);
  const refused = (what: string, fn: () => unknown) => t.equal(codeOf(fn), 'ATTRIBUTES_TAMPERED', what);
  refused('moved to another object key', () => openAttributes(bk.attrKey, 'bucket/prefix/enc0/other', sealed));
  refused('moved to a key differing by a trailing slash', () => openAttributes(bk.attrKey, key + '/', sealed));
  refused('another bucket\'s attribute key', () => openAttributes(newBucketKeys().attrKey, key, sealed));
  refused('truncated', () => openAttributes(bk.attrKey, key, raw.subarray(0, raw.length - 1).toString('base64url')));
  refused('nonce only', () => openAttributes(bk.attrKey, key, raw.subarray(0, 24).toString('base64url')));
  refused('empty', () => openAttributes(bk.attrKey, key, ''));
  refused('garbage', () => openAttributes(bk.attrKey, key, '!!!not base64!!!'));
  refused('appended byte', () => openAttributes(bk.attrKey, key, Buffer.concat([raw, Buffer.from([0])]).toString('base64url')));
  // Authentic but not a JSON object (only the key holder could produce this): still refused.
  const nonce = randomBytes(24);
  const notMap = xchacha20poly1305(bk.attrKey, nonce, Buffer.from(key)).encrypt(Buffer.from('[1,2]'));
  refused('authentic JSON array', () => openAttributes(bk.attrKey, key, Buffer.concat([nonce, notMap]).toString('base64url')));
  // The attribute key is random per bucket, independent of the master key and of the name key.
  t.notOk(bk.attrKey.equals(keys.kek), 'attribute key differs from the KEK');
  t.notOk(bk.nameKey.subarray(0, 32).equals(bk.attrKey), 'attribute key differs from the name key');
});

t.test('names', async (t) => {
  const enc = encryptName(bk.nameKey, 'report.pdf');
  t.equal(decryptName(bk.nameKey, enc), 'report.pdf');
  const raw = Buffer.from(enc, 'base64url');
  const wrong: string[] = [];
  for (let i = 0; i < raw.length; i++) {
    const code = codeOf(() => decryptName(bk.nameKey, flip(raw, i).toString('base64url')));
    if (code !== 'NAME_TAMPERED') wrong.push(`byte ${i}: ${code}`);
  }
  t.same(wrong, [], 'a flipped bit anywhere -> NAME_TAMPERED');
  t.equal(codeOf(() => decryptName(newBucketKeys().nameKey, enc)), 'NAME_TAMPERED', 'another bucket\'s name key');
  t.equal(codeOf(() => decryptName(bk.nameKey, raw.subarray(0, raw.length - 1).toString('base64url'))), 'NAME_TAMPERED', 'last byte dropped');
  t.equal(codeOf(() => decryptName(bk.nameKey, Buffer.concat([raw, Buffer.from([0])]).toString('base64url'))), 'NAME_TAMPERED', 'byte appended');
  // 'report.pdf' seals to 26 bytes = 35 characters with 2 unused low bits in the last one. Setting
  // them spells the same bytes differently: refused, so one name has exactly one encrypted spelling.
  t.equal(enc.length, 35);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const respelled = enc.slice(0, -1) + alphabet[alphabet.indexOf(enc.at(-1)!) ^ 1];
  t.ok(Buffer.from(respelled, 'base64url').equals(raw), 'non-canonical spelling decodes to the same bytes');
  t.equal(codeOf(() => decryptName(bk.nameKey, respelled)), 'NAME_INVALID', 'non-canonical spelling refused');
  // Documented limitation: each segment is sealed alone, with no associated data, so segments can be
  // moved between directories without detection. Only content and attributes are bound to the key.
  const moved = encryptPath(bk.nameKey, 'a/b').split('/').reverse().join('/');
  t.equal(decryptPath(bk.nameKey, moved), 'b/a', 'segments swapped between levels decrypt (not detected by design)');
});
