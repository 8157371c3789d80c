/**
 * Offset maths of src/format/layout.ts checked exhaustively around every chunk boundary and against a
 * brute-force reference that lays an object out byte by byte, the way the sealer writes it.
 */
import t from 'tap';
import { randomInt } from 'node:crypto';
import {
  chunkCiphertextOffset, chunkCount, chunkPlainLength, chunksForRange, ciphertextRangeOfChunks,
  ciphertextSize, plaintextSize, TAG_SIZE, type ByteRange, type ChunkSpan,
} from '../../src/format/layout.js';
import { HEADER_SIZE } from '../../src/format/header.js';

const CHUNK_SIZES = [4096, 12288, 65536];
/** Sizes layout.ts must handle although the header refuses them: they make exhaustive range checks cheap. */
const TOY_CHUNK_SIZES = [1, 2, 3, 5, 8];

/** Every plaintext size in [0, 3C+2]: it is cheap enough to do them all, boundaries included. */
function allSizes(c: number): number[] {
  return Array.from({ length: 3 * c + 3 }, (_, i) => i);
}

/** Sizes within 2 bytes of a chunk boundary, plus the ends of the interval. */
function boundarySizes(c: number): number[] {
  const s = new Set<number>([0, 1, 2, 3 * c + 2]);
  for (let k = 1; k <= 3; k++) for (let d = -2; d <= 2; d++) s.add(k * c + d);
  return [...s].filter((p) => p >= 0 && p <= 3 * c + 2).sort((a, b) => a - b);
}

/**
 * Reference layout built byte by byte: for every ciphertext byte, the chunk that owns it (-1 for the
 * header), and for every plaintext byte, its chunk and ciphertext offset.
 */
interface RefLayout {
  cipherOwner: Int32Array;
  plainChunk: Int32Array;
  plainOffset: Int32Array;
}

function referenceLayout(p: number, c: number): RefLayout {
  const cipherOwner: number[] = [];
  const plainChunk = new Int32Array(p);
  const plainOffset = new Int32Array(p);
  for (let i = 0; i < HEADER_SIZE; i++) cipherOwner.push(-1);
  let chunk = 0;
  let inChunk = 0;
  const closeChunk = () => {
    for (let i = 0; i < TAG_SIZE; i++) cipherOwner.push(chunk);
    chunk++;
    inChunk = 0;
  };
  for (let i = 0; i < p; i++) {
    if (inChunk === c) closeChunk();
    plainChunk[i] = chunk;
    plainOffset[i] = cipherOwner.length;
    cipherOwner.push(chunk);
    inChunk++;
  }
  closeChunk(); // the final chunk: possibly empty when p === 0
  return { cipherOwner: Int32Array.from(cipherOwner), plainChunk, plainOffset };
}

function refChunksForRange(ref: RefLayout, start: number, end: number): ChunkSpan | null {
  let first = -1;
  let last = -1;
  for (let i = start; i < Math.min(end, ref.plainChunk.length); i++) {
    const ch = ref.plainChunk[i];
    if (first === -1 || ch < first) first = ch;
    if (ch > last) last = ch;
  }
  return first === -1 ? null : { first, last };
}

function refCiphertextRange(ref: RefLayout, span: ChunkSpan): ByteRange {
  let start = -1;
  let end = -1;
  for (let j = 0; j < ref.cipherOwner.length; j++) {
    const o = ref.cipherOwner[j];
    if (o >= span.first && o <= span.last) {
      if (start === -1) start = j;
      end = j + 1;
    }
  }
  return { start, endExclusive: end };
}

t.test('plaintextSize inverts ciphertextSize for every size in [0, 3C+2]', async (t) => {
  for (const c of [...CHUNK_SIZES, ...TOY_CHUNK_SIZES]) {
    let bad = 0;
    let firstBad = '';
    for (const p of allSizes(c)) {
      const got = plaintextSize(ciphertextSize(p, c), c);
      if (got !== p && bad++ === 0) firstBad = `p=${p} -> ${got}`;
    }
    t.equal(bad, 0, `C=${c}: round trip ${firstBad}`);
  }
});

t.test('ciphertextSize at the boundaries matches header + plaintext + one tag per chunk', async (t) => {
  for (const c of CHUNK_SIZES) {
    const sealed = c + TAG_SIZE;
    t.equal(ciphertextSize(0, c), HEADER_SIZE + TAG_SIZE, `C=${c}: empty object is one empty chunk`);
    t.equal(ciphertextSize(1, c), HEADER_SIZE + 1 + TAG_SIZE);
    t.equal(ciphertextSize(c - 1, c), HEADER_SIZE + sealed - 1);
    t.equal(ciphertextSize(c, c), HEADER_SIZE + sealed, `C=${c}: a full last chunk has no empty chunk after it`);
    t.equal(ciphertextSize(c + 1, c), HEADER_SIZE + sealed + 1 + TAG_SIZE);
    t.equal(ciphertextSize(3 * c, c), HEADER_SIZE + 3 * sealed);
    for (const p of boundarySizes(c)) {
      t.equal(ciphertextSize(p, c), HEADER_SIZE + p + chunkCount(p, c) * TAG_SIZE, `C=${c} p=${p}`);
    }
    t.equal(chunkCount(0, c), 1);
    t.equal(chunkCount(c, c), 1);
    t.equal(chunkCount(c + 1, c), 2);
  }
});

t.test('every cipher size between valid ones is refused', async (t) => {
  for (const c of [...CHUNK_SIZES, ...TOY_CHUNK_SIZES]) {
    const valid = new Map<number, number>();
    for (const p of allSizes(c)) valid.set(ciphertextSize(p, c), p);
    const top = ciphertextSize(3 * c + 2, c);
    let wrong = 0;
    let firstWrong = '';
    let invalid = 0;
    for (let n = -1; n <= top; n++) {
      const want = valid.has(n) ? valid.get(n)! : null;
      if (want === null) invalid++;
      const got = plaintextSize(n, c);
      if (got !== want && wrong++ === 0) firstWrong = `n=${n}: got ${got}, want ${want}`;
    }
    t.equal(wrong, 0, `C=${c}: ${invalid} invalid sizes refused, valid ones mapped back ${firstWrong}`);
    // The invalid sizes are exactly: below one empty chunk, and a last chunk of 0..TAG_SIZE bytes after a full one.
    const gaps = Math.floor((3 * c + 1) / c); // full-chunk sizes k*C below 3C+2
    t.equal(invalid, 1 + HEADER_SIZE + TAG_SIZE + gaps * TAG_SIZE, `C=${c}: count of invalid sizes`);
    for (let k = 1; k <= 3; k++) {
      const base = HEADER_SIZE + k * (c + TAG_SIZE);
      for (let extra = 1; extra <= TAG_SIZE; extra++) t.equal(plaintextSize(base + extra, c), null, `C=${c}: ${k} chunks + ${extra} bytes`);
      t.equal(plaintextSize(base + TAG_SIZE + 1, c), k * c + 1);
    }
  }
  for (const junk of [NaN, Infinity, -Infinity, 1.5, HEADER_SIZE + TAG_SIZE + 0.5, -HEADER_SIZE, 2 ** 53]) {
    t.equal(plaintextSize(junk, 4096), null, `non-size ${junk}`);
  }
});

t.test('round trip holds for huge objects (S3 maximum is 5 TiB)', async (t) => {
  for (const c of [4096, 12288, 65536, 1 << 20, 16 << 20]) {
    for (const k of [1000, 123_456, Math.floor((5 * 2 ** 40) / c)]) {
      for (let d = -2; d <= 2; d++) {
        const p = k * c + d;
        t.equal(plaintextSize(ciphertextSize(p, c), c), p, `C=${c} p=${k}C${d >= 0 ? '+' : ''}${d}`);
      }
      t.equal(plaintextSize(HEADER_SIZE + k * (c + TAG_SIZE) + 5, c), null, `C=${c} k=${k}: partial tag`);
    }
  }
});

t.test('reference layout agrees with chunkCiphertextOffset and chunkPlainLength', async (t) => {
  for (const c of [...TOY_CHUNK_SIZES, 4096]) {
    for (const p of c === 4096 ? boundarySizes(c) : allSizes(c)) {
      const ref = referenceLayout(p, c);
      t.equal(ref.cipherOwner.length, ciphertextSize(p, c), `C=${c} p=${p}: length`);
      const n = chunkCount(p, c);
      let bad = 0;
      for (let i = 0; i < n; i++) {
        const { start, endExclusive } = refCiphertextRange(ref, { first: i, last: i });
        if (start !== chunkCiphertextOffset(i, c)) bad++;
        if (endExclusive - start - TAG_SIZE !== chunkPlainLength(i, p, c)) bad++;
      }
      for (let i = 0; i < p; i++) {
        const ch = Math.floor(i / c);
        if (ref.plainChunk[i] !== ch || ref.plainOffset[i] !== chunkCiphertextOffset(ch, c) + (i % c)) bad++;
      }
      t.equal(bad, 0, `C=${c} p=${p}: chunk offsets and lengths`);
      t.equal(chunkPlainLength(n, p, c), 0, `C=${c} p=${p}: nothing past the last chunk`);
    }
  }
});

/** Compares chunksForRange and ciphertextRangeOfChunks with the reference for the given ranges. */
function checkRanges(p: number, c: number, starts: number[], ends: number[]): { checked: number; failures: string[] } {
  const ref = referenceLayout(p, c);
  const failures: string[] = [];
  let checked = 0;
  for (const s of starts) {
    for (const e of ends) {
      checked++;
      const got = chunksForRange(s, e, p, c);
      const want = refChunksForRange(ref, s, e);
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        failures.push(`[${s},${e}) span ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
        continue;
      }
      if (!want) continue;
      const gotBytes = ciphertextRangeOfChunks(want, p, c);
      const wantBytes = refCiphertextRange(ref, want);
      if (gotBytes.start !== wantBytes.start || gotBytes.endExclusive !== wantBytes.endExclusive) {
        failures.push(`[${s},${e}) bytes ${JSON.stringify(gotBytes)} want ${JSON.stringify(wantBytes)}`);
      }
    }
  }
  return { checked, failures };
}

t.test('chunksForRange / ciphertextRangeOfChunks: every range of small objects (toy chunk sizes)', async (t) => {
  for (const c of TOY_CHUNK_SIZES) {
    for (const p of allSizes(c)) {
      const points = Array.from({ length: p + 3 }, (_, i) => i); // 0 .. p+2: ranges past the end are clamped
      const { checked, failures } = checkRanges(p, c, points, points);
      t.same(failures.slice(0, 5), [], `C=${c} p=${p}: ${checked} ranges`);
    }
  }
});

t.test('chunksForRange / ciphertextRangeOfChunks: all ranges between boundary points (real chunk sizes)', async (t) => {
  for (const c of CHUNK_SIZES) {
    for (const p of boundarySizes(c)) {
      const pts = new Set<number>([0, 1, 2, p - 1, p, p + 1, p + 100]);
      for (let k = 1; k <= 3; k++) for (let d = -2; d <= 2; d++) pts.add(k * c + d);
      for (let i = 0; i < 4; i++) pts.add(randomInt(0, p + 2));
      const points = [...pts].filter((x) => x >= 0).sort((a, b) => a - b);
      const { checked, failures } = checkRanges(p, c, points, points);
      t.same(failures.slice(0, 5), [], `C=${c} p=${p}: ${checked} ranges`);
    }
  }
});

t.test('chunksForRange refuses empty, reversed, negative and out-of-object ranges', async (t) => {
  const c = 4096;
  t.equal(chunksForRange(0, 0, 10, c), null);
  t.equal(chunksForRange(5, 4, 10, c), null);
  t.equal(chunksForRange(-1, 4, 10, c), null);
  t.equal(chunksForRange(10, 20, 10, c), null, 'starts at the end');
  t.equal(chunksForRange(0, 10, 0, c), null, 'empty object has no readable bytes');
  t.same(chunksForRange(9, 1e15, 10, c), { first: 0, last: 0 }, 'end clamped to the object');
});

t.test('a random page-aligned 4 KiB read touches exactly one chunk for every candidate chunk size', async (t) => {
  const page = 4096;
  for (const c of [4096, 12288, 16384, 65536, 262144, 1 << 20]) {
    const p = 10 * c + 123;
    let multi = 0;
    let unalignedMulti = 0;
    const trials = 2000;
    for (let i = 0; i < trials; i++) {
      const off = randomInt(0, Math.floor(p / page)) * page;
      const span = chunksForRange(off, off + page, p, c)!;
      if (span.first !== span.last) multi++;
      const r = ciphertextRangeOfChunks(span, p, c);
      if (r.endExclusive - r.start > c + TAG_SIZE) multi++;
      const odd = randomInt(0, p - page);
      const s2 = chunksForRange(odd, odd + page, p, c)!;
      if (s2.first !== s2.last) unalignedMulti++;
    }
    t.equal(multi, 0, `C=${c}: ${trials} aligned reads each fetch one chunk (${c + TAG_SIZE} bytes at most)`);
    // Not a requirement, just documents the contrast: unaligned reads may straddle two chunks.
    t.comment(`C=${c}: unaligned 4 KiB reads spanning two chunks: ${unalignedMulti}/${trials}`);
  }
  // The last, partial page of an object is one chunk too.
  const c = 65536;
  const p = 3 * c + 100;
  t.same(chunksForRange(3 * c, 3 * c + page, p, c), { first: 3, last: 3 });
  t.same(ciphertextRangeOfChunks({ first: 3, last: 3 }, p, c), { start: HEADER_SIZE + 3 * (c + TAG_SIZE), endExclusive: ciphertextSize(p, c) });
});
