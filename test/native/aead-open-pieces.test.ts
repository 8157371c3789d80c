// ObjectCipher.openChunkPieces (the AEAD addon opening a sealed chunk from the pieces it arrived in)
// against openChunk (node:crypto on the joined bytes): same plaintext, same classified errors.
import { randomBytes } from 'node:crypto';
import t from 'tap';

import { nativeChunkRunPort } from '../../native-bindings/aead/index.js';
import { ByteQueue } from '../../src/engine/byte-queue.js';
import { IntegrityError } from '../../src/format/errors.js';
import { newObjectCipher, openObjectHeader } from '../../src/format/envelope.js';
import type { CipherName } from '../../src/format/header.js';
import { deriveKeys } from '../../src/format/kdf.js';
import { TAG_SIZE } from '../../src/format/layout.js';

const port = nativeChunkRunPort();
if (!port) throw new Error('the AEAD addon is not built (npm run build)');
const C = 4096;
const keys = deriveKeys(randomBytes(32));

function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    if (e instanceof IntegrityError) return e.code;
    throw e;
  }
}

/** Splits b at random points into 1..5 pieces (some may be empty). */
function pieces(b: Buffer): Buffer[] {
  const cuts = Array.from({ length: Math.floor(Math.random() * 5) }, () => Math.floor(Math.random() * (b.length + 1))).sort((x, y) => x - y);
  const out: Buffer[] = [];
  let at = 0;
  for (const c of [...cuts, b.length]) {
    out.push(b.subarray(at, c));
    at = c;
  }
  return out;
}

for (const cipherName of ['chacha20-poly1305', 'aes-256-gcm'] as CipherName[]) {
  t.test(`${cipherName}: the same plaintext and the same errors as openChunk`, async (t) => {
    for (const size of [0, 1, C - 1, C, C + 1, 3 * C + 5]) {
      const writer = newObjectCipher(keys, { cipher: cipherName, chunkSize: C });
      const reader = openObjectHeader(keys, writer.header);
      const total = Math.max(1, Math.ceil(size / C));
      const plain = randomBytes(size);
      const sealed = Array.from({ length: total }, (_, i) => writer.sealChunk(i, i === total - 1, plain.subarray(i * C, Math.min(size, (i + 1) * C))));
      for (let i = 0; i < total; i++) {
        const got = reader.openChunkPieces(port, i, total, pieces(sealed[i]!), sealed[i]!.length);
        t.ok(got.equals(reader.openChunk(i, total, sealed[i]!)), `size ${size} chunk ${i}`);
      }
      // Tampered, truncated (chunk count wrong), swapped: the classified code openChunk gives.
      const bad = Buffer.from(sealed[0]!);
      bad[bad.length - TAG_SIZE - 1 < 0 ? 0 : bad.length - TAG_SIZE - 1]! ^= 1;
      t.equal(codeOf(() => reader.openChunkPieces(port, 0, total, pieces(bad), bad.length)), codeOf(() => reader.openChunk(0, total, bad)), `size ${size}: tampered`);
      t.not(codeOf(() => reader.openChunkPieces(port, 0, total, pieces(bad), bad.length)), 'ok');
      t.equal(codeOf(() => reader.openChunkPieces(port, 0, total + 1, pieces(sealed[0]!), sealed[0]!.length)), codeOf(() => reader.openChunk(0, total + 1, sealed[0]!)), `size ${size}: wrong final flag`);
      if (total > 2) {
        t.equal(codeOf(() => reader.openChunkPieces(port, 1, total, pieces(sealed[0]!), sealed[0]!.length)), 'CHUNK_REORDERED', 'swapped chunk');
      }
    }
  });
}

t.test('a chunk in more pieces than the addon takes at once (16 KiB TLS records of a 1 MiB chunk) still opens', async (t) => {
  const chunk = 1024 * 1024;
  const writer = newObjectCipher(keys, { cipher: 'chacha20-poly1305', chunkSize: chunk });
  const reader = openObjectHeader(keys, writer.header);
  const plain = randomBytes(chunk);
  const sealed = writer.sealChunk(0, false, plain);
  const records: Buffer[] = [];
  for (let at = 0; at < sealed.length; at += 16 * 1024) records.push(sealed.subarray(at, Math.min(sealed.length, at + 16 * 1024)));
  t.ok(records.length > 32);
  t.ok(reader.openChunkPieces(port, 0, 2, records, sealed.length).equals(plain));
});

t.test('ByteQueue.takeViews: views in order, nothing copied, the rest left', async (t) => {
  const q = new ByteQueue();
  const a = Buffer.from('hello ');
  const b = Buffer.from('world!');
  q.push(a);
  q.push(b);
  const v = q.takeViews(8);
  t.equal(Buffer.concat(v).toString(), 'hello wo');
  t.equal(v[0]!.buffer, a.buffer, 'a view, not a copy');
  t.equal(q.length, 4);
  t.equal(q.take(4).toString(), 'rld!');
});
