import t from 'tap';
import { randomBytes } from 'node:crypto';

import type { EngineStore } from '../../src/engine/index.js';
import { CHUNK, MiB, setupEngine } from './fixtures/setup.js';

/** Counts ranged GETs (and their ranges) going to the store. */
function countingStore(store: EngineStore, log: [number, number][]): EngineStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop === 'getRange') {
        return (bucket: string, key: string, start: number, end: number, opts?: object) => {
          log.push([start, end]);
          return target.getRange(bucket, key, start, end, opts);
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

t.test('random reads at chunk boundaries match the plaintext', async (t) => {
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 0 });
  const size = 10 * CHUNK + 1234;
  const data = randomBytes(size);
  await engine.putBuffer('f.bin', data);
  const reader = await engine.openReader('f.bin');
  const points = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK - 1, 5 * CHUNK, 10 * CHUNK - 1, 10 * CHUNK, size - 1, size];
  const lengths = [0, 1, 2, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 7, size];
  for (const off of points) {
    for (const len of lengths) {
      const got = await reader.read(off, len);
      const want = data.subarray(off, Math.min(size, off + len));
      if (!got.equals(want)) t.fail(`read(${off}, ${len})`);
    }
  }
  for (let i = 0; i < 200; i++) {
    const off = Math.floor(Math.random() * size);
    const len = Math.floor(Math.random() * 3 * CHUNK);
    const got = await reader.read(off, len);
    if (!got.equals(data.subarray(off, off + len))) t.fail(`random read(${off}, ${len})`);
  }
  t.pass('all reads matched');
  await t.rejects(reader.read(-1, 5), RangeError);
  reader.close();
  await t.rejects(reader.read(0, 1), { code: 'CLOSED' });
});

t.test('cache: a re-read is a hit; concurrent readers share one fetch; only missing chunks are fetched', async (t) => {
  const ranges: [number, number][] = [];
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 0, wrapStore: (s) => countingStore(s, ranges) });
  const data = randomBytes(8 * CHUNK);
  await engine.putBuffer('c.bin', data);
  const r1 = await engine.openReader('c.bin');
  t.ok((await r1.read(CHUNK + 10, CHUNK)).equals(data.subarray(CHUNK + 10, 2 * CHUNK + 10)));
  const afterFirst = { ...engine.stats };
  t.equal(afterFirst.cacheMisses, 2);
  const r2 = await engine.openReader('c.bin');
  t.ok((await r2.read(CHUNK, 2 * CHUNK)).equals(data.subarray(CHUNK, 3 * CHUNK)), 'second reader');
  t.equal(engine.stats.cacheHits - afterFirst.cacheHits, 2, 'both chunks were cache hits');
  t.equal(engine.stats.rangeRequests, afterFirst.rangeRequests, 'no new GET');

  // chunks 1,2 cached: reading 0..4 fetches 0 (with the header already known) and 3..4
  ranges.length = 0;
  t.ok((await r2.read(0, 5 * CHUNK)).equals(data.subarray(0, 5 * CHUNK)));
  t.equal(ranges.length, 2, 'two GETs for the two missing runs');

  // concurrent reads of the same uncached chunk share one GET
  ranges.length = 0;
  const joinsBefore = engine.stats.inflightJoins;
  const reads = await Promise.all([r1.read(6 * CHUNK, 100), r2.read(6 * CHUNK + 50, 100), r1.read(6 * CHUNK + 1000, 10)]);
  t.ok(reads[1].equals(data.subarray(6 * CHUNK + 50, 6 * CHUNK + 150)));
  t.equal(ranges.length, 1, 'one GET for three concurrent reads');
  t.equal(engine.stats.inflightJoins - joinsBefore, 2);
});

t.test('the header comes with chunk 0 in one GET', async (t) => {
  const ranges: [number, number][] = [];
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 0, wrapStore: (s) => countingStore(s, ranges) });
  await engine.putBuffer('h.bin', randomBytes(3 * CHUNK));
  const reader = await engine.openReader('h.bin');
  await reader.read(0, 10);
  t.same(ranges, [[0, 132 + CHUNK + 16]], 'one GET from 0 for header + chunk 0');
  const other = await engine.openReader('h.bin');
  ranges.length = 0;
  await other.read(2 * CHUNK, 10);
  t.same(ranges, [[132 + 2 * (CHUNK + 16), 132 + 3 * (CHUNK + 16)]], 'header cached per version: chunk range only');
});

t.test('readahead fetches ahead on sequential reads and resets on random access', async (t) => {
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 2 * MiB, cacheBytes: 16 * MiB });
  const size = 8 * MiB;
  const data = randomBytes(size);
  await engine.putBuffer('seq.bin', data);
  const reader = await engine.openReader('seq.bin');
  const step = 32 * 1024;
  for (let off = 0; off < 3 * MiB; off += step) {
    const got = await reader.read(off, step);
    if (!got.equals(data.subarray(off, off + step))) t.fail(`sequential read at ${off}`);
  }
  t.ok(engine.stats.chunksPrefetched > 0, `prefetched ${engine.stats.chunksPrefetched} chunks`);
  // After the first chunk, reads should be mostly served by prefetched chunks.
  const demandChunks = engine.stats.cacheMisses;
  t.ok(engine.stats.cacheHits + engine.stats.inflightJoins > demandChunks - engine.stats.inflightJoins,
    `sequential reads hit prefetched data (hits ${engine.stats.cacheHits}, joins ${engine.stats.inflightJoins}, misses ${engine.stats.cacheMisses})`);
  t.ok((reader as unknown as { readaheadWindow: number }).readaheadWindow >= 8, 'window grew');
  // random access resets the window
  await reader.read(7 * MiB + 12345, 10);
  t.equal((reader as unknown as { readaheadWindow: number }).readaheadWindow, 0, 'window reset');
  // settle outstanding prefetches, then check a chunk far ahead of the last sequential read is cached
  await new Promise((r) => setTimeout(r, 300));
  const hitsBefore = engine.stats.cacheHits;
  await reader.read(3 * MiB, CHUNK);
  t.ok(engine.stats.cacheHits > hitsBefore, 'data beyond the last sequential read was prefetched');
  reader.close();
});

t.test('a replaced object is noticed (If-Match)', async (t) => {
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 0 });
  await engine.putBuffer('v.bin', randomBytes(4 * CHUNK));
  const reader = await engine.openReader('v.bin');
  await reader.read(0, 10);
  await engine.putBuffer('v.bin', randomBytes(4 * CHUNK));
  await t.rejects(reader.read(3 * CHUNK, 10), { code: 'OBJECT_CHANGED' });
  const fresh = await engine.openReader('v.bin');
  t.equal((await fresh.read(3 * CHUNK, 10)).length, 10, 'a new reader sees the new version');
});

t.test('signal aborts a waiting read', async (t) => {
  const { engine } = await setupEngine(t);
  await engine.putBuffer('s.bin', randomBytes(CHUNK));
  const reader = await engine.openReader('s.bin');
  const ac = new AbortController();
  ac.abort(new Error('stop'));
  await t.rejects(reader.read(0, 10, { signal: ac.signal }), { message: 'stop' });
});
