/**
 * The native chunk AEAD addon (native-bindings/aead): a run of chunks sealed by it must be, byte for
 * byte, what @noble/ciphers and src/format's node:crypto functions produce chunk by chunk (same
 * nonce per index, same AAD, tag appended), for both ciphers, sync and on the threadpool, with the
 * source and destination split at arbitrary points; opening must refuse any tampering and leave no
 * plaintext behind. S3CRYPTFS_AEAD_ADDON selects another build (the AddressSanitizer one).
 */
import t, { type Test } from 'tap';
import { randomBytes, randomInt } from 'node:crypto';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';

import { loadAeadAddon, type AeadAddon } from '../../native-bindings/aead/index.js';
import { chunkNonce, openChunk, sealChunkParts, sealedRunLength } from '../../src/format/chunk.js';
import type { CipherName } from '../../src/format/header.js';

const CIPHERS: CipherName[] = ['chacha20-poly1305', 'aes-256-gcm'];
const ID: Record<CipherName, number> = { 'chacha20-poly1305': 1, 'aes-256-gcm': 2 };
const TAG = 16;

let addon: AeadAddon;
try {
  addon = loadAeadAddon();
} catch (err) {
  // The addon is built by `npm run build`; a missing build is a failure here, not a skip.
  t.fail(`the AEAD addon is not built: ${(err as Error).message}`);
  t.end();
  process.exit(1);
}

function noble(cipher: CipherName, key: Uint8Array, nonce: Uint8Array, aad: Uint8Array) {
  return cipher === 'chacha20-poly1305' ? chacha20poly1305(key, nonce, aad) : gcm(key, nonce, aad);
}

interface Run {
  cipher: CipherName;
  key: Buffer;
  aadMiddle: Buffer;
  aadFinal: Buffer;
  index: number;
  chunk: number;
  final: boolean;
  plain: Buffer;
}

function newRun(cipher: CipherName, chunk: number, plainLen: number, final: boolean, index = randomInt(0, 2 ** 40)): Run {
  return { cipher, key: randomBytes(32), aadMiddle: randomBytes(45), aadFinal: randomBytes(45), index, chunk, final, plain: randomBytes(plainLen) };
}

function chunkCount(r: Run): number {
  return r.final ? Math.max(1, Math.ceil(r.plain.length / r.chunk)) : r.plain.length / r.chunk;
}

/** The run sealed chunk by chunk with @noble/ciphers, and (checked equal) with src/format's sealChunkParts. */
function reference(t: Test, r: Run): Buffer {
  const n = chunkCount(r);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const aad = r.final && i === n - 1 ? r.aadFinal : r.aadMiddle;
    const piece = r.plain.subarray(i * r.chunk, Math.min(r.plain.length, (i + 1) * r.chunk));
    const viaNoble = Buffer.from(noble(r.cipher, r.key, chunkNonce(r.index + i), aad).encrypt(piece));
    const viaNode = Buffer.concat(sealChunkParts(r.cipher, r.key, r.index + i, aad, piece));
    if (!viaNoble.equals(viaNode)) t.fail(`noble and node:crypto disagree at chunk ${i}`);
    out.push(viaNoble);
  }
  return Buffer.concat(out);
}

/** `buf` as consecutive views split at random points (some empty). */
function split(buf: Buffer, maxPieces = 6): Buffer[] {
  const cuts = Array.from({ length: randomInt(0, maxPieces) }, () => randomInt(0, buf.length + 1)).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...cuts, buf.length]) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  return out;
}

const args = (r: Run, src: readonly Uint8Array[] | null, dst: readonly Uint8Array[]) =>
  [ID[r.cipher], r.key, r.aadMiddle, r.aadFinal, r.index, r.chunk, r.final, src, dst] as const;

for (const cipher of CIPHERS) {
  t.test(`${cipher}: runs sealed natively equal @noble/ciphers and node:crypto byte for byte`, async (t) => {
    const C = 4096;
    const cases: [number, boolean][] = [
      [0, true], [1, true], [C - 1, true], [C, true], [C + 1, true], [7 * C + 5, true], [8 * C, true],
      [C, false], [2 * C, false], [9 * C, false],
    ];
    for (const [len, final] of cases) {
      for (const mode of ['sync', 'async'] as const) {
        const r = newRun(cipher, C, len, final);
        const want = reference(t, r);
        t.equal(want.length, sealedRunLength(len, C, final), 'sealedRunLength');
        const dst = Buffer.alloc(want.length, 0xee);
        const srcs = split(r.plain);
        const dsts = split(dst);
        if (mode === 'sync') addon.seal(...args(r, srcs, dsts));
        else await addon.sealAsync(...args(r, srcs, dsts));
        t.ok(dst.equals(want), `${len} bytes, final ${final}, ${mode}, ${srcs.length} source / ${dsts.length} destination pieces`);

        // In place: the plaintext laid out where the ciphertext goes, tag room after each chunk.
        const inPlace = Buffer.alloc(want.length, 0xee);
        for (let i = 0; i * C < len; i++) r.plain.copy(inPlace, i * (C + TAG), i * C, Math.min(len, (i + 1) * C));
        if (mode === 'sync') addon.seal(...args(r, null, split(inPlace)));
        else await addon.sealAsync(...args(r, null, split(inPlace)));
        t.ok(inPlace.equals(want), `${len} bytes, final ${final}, ${mode}, in place`);

        // And back: the native open gives the plaintext; node:crypto opens every chunk too.
        const back = Buffer.alloc(len, 0xee);
        const failed = mode === 'sync' ? addon.open(...args(r, split(dst), split(back))) : await addon.openAsync(...args(r, split(dst), split(back)));
        t.equal(failed, -1, 'opens');
        t.ok(back.equals(r.plain), 'plaintext back');
        const n = chunkCount(r);
        for (let i = 0, pos = 0; i < n; i++) {
          const sealedLen = Math.min(C, len - i * C) + TAG;
          const aad = r.final && i === n - 1 ? r.aadFinal : r.aadMiddle;
          const opened = openChunk(cipher, r.key, r.index + i, aad, dst.subarray(pos, pos + Math.max(TAG, sealedLen)));
          if (!opened?.equals(r.plain.subarray(i * C, i * C + Math.max(0, sealedLen - TAG)))) t.fail(`node:crypto cannot open chunk ${i}`);
          pos += sealedLen;
        }
      }
    }
  });

  t.test(`${cipher}: the object's chunk size (128 KiB), a 1 MiB + 1 byte run, indexes up to 2^53 - 1`, async (t) => {
    const r = newRun(cipher, 128 * 1024, 1024 * 1024 + 1, true, 5);
    const dst = Buffer.alloc(sealedRunLength(r.plain.length, r.chunk, true));
    await addon.sealAsync(...args(r, [r.plain], [dst]));
    t.ok(dst.equals(reference(t, r)), '9 chunks');
    const top = newRun(cipher, 4096, 4096, true, Number.MAX_SAFE_INTEGER);
    const dst2 = Buffer.alloc(4096 + TAG);
    addon.seal(...args(top, [top.plain], [dst2]));
    t.ok(dst2.equals(reference(t, top)), 'index 2^53 - 1');
    t.throws(() => addon.seal(ID[cipher], top.key, top.aadMiddle, top.aadFinal, Number.MAX_SAFE_INTEGER, 4096, true, [Buffer.alloc(8192)], [Buffer.alloc(8192 + 2 * TAG)]), RangeError, 'an index past 2^53 - 1 is refused');
  });

  t.test(`${cipher}: opening refuses tampering, a wrong final flag, index or key, and zeroes its output`, async (t) => {
    const C = 4096;
    const r = newRun(cipher, C, 3 * C + 100, true, 10);
    const sealed = reference(t, r);
    const open = async (src: Buffer, over: Partial<Run> = {}) => {
      const o = { ...r, ...over };
      const out = Buffer.alloc(r.plain.length, 0xee);
      const failed = await addon.openAsync(...args(o, [src], [out]));
      return { failed, out };
    };
    for (const [what, pos, chunk] of [['first chunk body', 5, 10], ['second chunk tag', 2 * (C + TAG) - 1, 11], ['last chunk', sealed.length - 20, 13]] as const) {
      const bad = Buffer.from(sealed);
      bad[pos] ^= 0x01;
      const { failed, out } = await open(bad);
      t.equal(failed, chunk, `${what}: chunk ${chunk} fails`);
      t.ok(out.every((b) => b === 0), `${what}: no plaintext left in the output`);
    }
    t.equal((await open(sealed)).failed, -1, 'untouched: opens');
    t.equal((await open(sealed, { index: 11 })).failed, 11, 'another first index: fails at once');
    t.equal((await open(sealed, { key: randomBytes(32) })).failed, 10, 'another key');
    t.equal((await open(sealed, { aadFinal: r.aadMiddle })).failed, 13, 'the last chunk opened as not final');
    const swapped = Buffer.concat([sealed.subarray(C + TAG, 2 * (C + TAG)), sealed.subarray(0, C + TAG), sealed.subarray(2 * (C + TAG))]);
    t.equal((await open(swapped)).failed, 10, 'reordered chunks');
  });
}

t.test('invalid arguments throw before any work', async (t) => {
  const key = randomBytes(32);
  const aad = randomBytes(45);
  const C = 4096;
  const a = (cipher: number, k: Uint8Array, chunk: number, final: boolean, src: Uint8Array[], dst: Uint8Array[]) =>
    [cipher, k, aad, aad, 0, chunk, final, src, dst] as const;
  t.throws(() => addon.seal(...a(3, key, C, true, [Buffer.alloc(1)], [Buffer.alloc(17)])), RangeError, 'unknown cipher');
  t.throws(() => addon.seal(...a(1, key.subarray(1), C, true, [Buffer.alloc(1)], [Buffer.alloc(17)])), RangeError, '31-byte key');
  t.throws(() => addon.seal(...a(1, key, C, false, [Buffer.alloc(C + 1)], [Buffer.alloc(C + 1 + 2 * TAG)])), RangeError, 'a run that is not final ends mid-chunk');
  t.throws(() => addon.seal(...a(1, key, C, false, [], [])), RangeError, 'an empty run that is not final');
  t.throws(() => addon.seal(...a(1, key, C, true, [Buffer.alloc(10)], [Buffer.alloc(25)])), RangeError, 'destination too small');
  t.throws(() => addon.seal(...a(1, key, C, true, [Buffer.alloc(10)], [Buffer.alloc(27)])), RangeError, 'destination too large');
  t.throws(() => addon.seal(...a(1, key, 0, true, [Buffer.alloc(10)], [Buffer.alloc(26)])), RangeError, 'chunk size 0');
  t.throws(() => addon.seal(...a(1, key, C, true, [new Uint16Array(5) as unknown as Uint8Array], [Buffer.alloc(26)])), TypeError, 'not a Uint8Array');
  t.throws(() => addon.seal(...a(1, key, C, true, Array.from({ length: 33 }, () => Buffer.alloc(0)), [Buffer.alloc(16)])), RangeError, 'too many pieces');
  t.throws(() => addon.sealAsync(...a(1, key, C, true, [Buffer.alloc(10)], [Buffer.alloc(25)])), RangeError, 'the async variant checks synchronously too');
  t.throws(() => addon.open(...a(1, key, C, true, [Buffer.alloc(15)], [Buffer.alloc(0)])), RangeError, 'a sealed run shorter than a tag');
  t.throws(() => addon.open(1, key, aad, aad, 0, C, true, null, [Buffer.alloc(16)]), TypeError, 'opening in place is not offered');
  t.throws(() => addon.seal(1, key, aad, aad, 0, C, false, null, [Buffer.alloc(C + TAG + 1)]), RangeError, 'in place, not final: whole sealed chunks only');
  t.throws(() => addon.seal(1, key, aad, aad, 0, C, true, null, [Buffer.alloc(15)]), RangeError, 'in place: shorter than a tag');
});

t.test('many runs on the threadpool at once: each one right, buffers held until done', async (t) => {
  const C = 16 * 1024;
  const runs = Array.from({ length: 48 }, (_, i) => newRun(CIPHERS[i % 2]!, C, randomInt(0, 12 * C), true));
  const wants = runs.map((r) => reference(t, r));
  const dsts = wants.map((w) => Buffer.alloc(w.length));
  const lens = runs.map((r) => r.plain.length);
  // The sources are referenced only by the addon while the work runs; garbage meanwhile.
  const pending = runs.map((r, i) => {
    const src = Buffer.from(r.plain);
    return addon.sealAsync(...args(r, [src], [dsts[i]!]));
  });
  for (const r of runs) r.plain = Buffer.alloc(0);
  const junk: Buffer[] = [];
  for (let i = 0; i < 200; i++) junk.push(Buffer.alloc(64 * 1024));
  await Promise.all(pending);
  t.equal(dsts.filter((d, i) => !d.equals(wants[i]!)).length, 0, 'all 48 runs equal their reference');
  // Opening concurrently too, with one run tampered.
  const bad = Buffer.from(dsts[7]!);
  bad[0] ^= 1;
  const opened = await Promise.all(dsts.map((d, i) => {
    const out = Buffer.alloc(lens[i]!);
    return addon.openAsync(...args(runs[i]!, [i === 7 ? bad : d], [out]));
  }));
  t.same(opened.map((f, i) => (i === 7 ? f === runs[7]!.index : f === -1)), opened.map(() => true), 'every run opens except the tampered one, which names its first chunk');
});
