// A sequential reader is served by one streaming GET (SequentialStream): counted GETs, a seek stops
// it, its decoding stays within the window, a truncated or reordered body fails with an
// IntegrityError (never wrong bytes), and two readers of one file share its chunks.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';

import type { EngineStore } from '../../src/engine/index.js';
import { HEADER_SIZE } from '../../src/format/index.js';
import { CHUNK, MiB, setupEngine } from './fixtures/setup.js';

type GetStream = EngineStore['getStream'];
type GetRange = EngineStore['getRange'];

interface Counting {
  streams: number;
  ranges: number;
}

/** Counts GETs; streaming bodies pass through `alter`, ranged bodies through `alterRange`. */
function countingStore(
  store: EngineStore,
  alter: (body: Readable, start: number) => Readable = (b) => b,
  alterRange: (body: Buffer, start: number) => Buffer = (b) => b,
): EngineStore & Counting {
  const counts: Counting = { streams: 0, ranges: 0 };
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'streams' || prop === 'ranges') return counts[prop];
      if (prop === 'getStream') {
        return (async (...args: Parameters<GetStream>) => {
          counts.streams++;
          const out = await target.getStream(...args);
          return { ...out, stream: alter(out.stream, args[2]?.start ?? 0) };
        }) as GetStream;
      }
      if (prop === 'getRange') {
        return (async (...args: Parameters<GetRange>) => {
          counts.ranges++;
          return alterRange(await target.getRange(...args), args[2]);
        }) as GetRange;
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return wrapped as EngineStore & Counting;
}

/** Rewrites a body as a whole (small objects only): `edit` gets all of it. */
function rewrite(body: Readable, edit: (all: Buffer) => Buffer): Readable {
  return Readable.from((async function* () {
    const parts: Buffer[] = [];
    for await (const piece of body as AsyncIterable<Buffer>) parts.push(piece);
    yield edit(Buffer.concat(parts));
  })(), { objectMode: false });
}

const SEALED = CHUNK + 16;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a sequential reader: one streaming GET for the whole file, content exact', async (t) => {
  let store!: EngineStore & Counting;
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 2 * MiB, cacheBytes: 8 * MiB, wrapStore: (s) => (store = countingStore(s)) });
  const data = randomBytes(24 * MiB + 999);
  await engine.putBuffer('seq.bin', data);
  const reader = await engine.openReader('seq.bin');
  const parts: Buffer[] = [];
  for (let off = 0; off < data.length; off += MiB) parts.push(await reader.read(off, MiB));
  t.ok(Buffer.concat(parts).equals(data), 'content exact');
  t.equal(store.streams, 1, 'one streaming GET');
  // 1 MiB reads outrun the first small windows (2, 4 chunks): each of those reads is a ranged GET of its own.
  t.ok(store.ranges <= 8, `${store.ranges} ranged GETs before the window reached the stream size`);
  t.ok(engine.stats.bytesFetched < data.length * 1.05, `${engine.stats.bytesFetched} ciphertext bytes fetched for ${data.length}`);
  t.ok(engine.stats.cacheBytes <= 2 * MiB + CHUNK, `cache holds at most the window after the read (${engine.stats.cacheBytes})`);
  reader.close();
});

t.test('the stream decodes no further than a window ahead of the reader, and a seek stops it', async (t) => {
  let store!: EngineStore & Counting;
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 2 * MiB, cacheBytes: 8 * MiB, wrapStore: (s) => (store = countingStore(s)) });
  const data = randomBytes(40 * MiB);
  await engine.putBuffer('w.bin', data);
  const reader = await engine.openReader('w.bin');
  for (let off = 0; off < 4 * MiB; off += 256 * 1024) await reader.read(off, 256 * 1024);
  await sleep(300);
  const decoded = engine.stats.bytesDecrypted;
  t.ok(decoded <= 4 * MiB + 2 * MiB + CHUNK, `paused reader: ${decoded} bytes decrypted for 4 MiB read (window 2 MiB)`);
  t.ok(engine.stats.bytesFetched < 8 * MiB, `and ${engine.stats.bytesFetched} bytes fetched (backpressure, not the 40 MiB asked for)`);
  t.equal(store.streams, 1, 'one stream so far');
  // A seek far away: the stream finishes what it promised and stops.
  const got = await reader.read(30 * MiB + 7, 100);
  t.ok(got.equals(data.subarray(30 * MiB + 7, 30 * MiB + 107)), 'random read exact');
  await sleep(300);
  const fetched = engine.stats.bytesFetched;
  await sleep(300);
  t.equal(engine.stats.bytesFetched, fetched, 'nothing more arrives after the seek');
  t.ok(fetched < 10 * MiB, `${fetched} bytes fetched in all`);
  // Sequential again from the new position: a new stream, content exact.
  const parts: Buffer[] = [];
  for (let off = 30 * MiB + 107; off < 38 * MiB; off += 512 * 1024) parts.push(await reader.read(off, 512 * 1024));
  t.ok(Buffer.concat(parts).equals(data.subarray(30 * MiB + 107, 38 * MiB + 107)), 'second run exact');
  t.equal(store.streams, 2, 'a second stream for the second run');
  reader.close();
});

t.test('a stream body that ends early, with ranged GETs short too: IntegrityError, never wrong bytes', async (t) => {
  const { engine } = await setupEngine(t, {
    readaheadMaxBytes: 2 * MiB, cacheBytes: 8 * MiB,
    wrapStore: (s) => countingStore(s, (b) => rewrite(b, (all) => all.subarray(0, Math.min(all.length, 3 * SEALED + 10))), (b) => (b.length > 2 * SEALED ? b.subarray(0, b.length - 1) : b)),
  });
  const data = randomBytes(8 * MiB);
  await engine.putBuffer('t.bin', data);
  const reader = await engine.openReader('t.bin');
  let failed: unknown = null;
  for (let off = 0; off < data.length; off += CHUNK) {
    try {
      const got = await reader.read(off, CHUNK);
      if (!got.equals(data.subarray(off, off + CHUNK))) t.fail(`wrong bytes at ${off}`);
    } catch (err) {
      failed = err;
      break;
    }
  }
  t.match(failed, { name: 'IntegrityError' }, 'the read past the cut fails with an IntegrityError');
  reader.close();
});

t.test('a stream body with two chunks swapped fails authentication; the other chunks read exact', async (t) => {
  // Chunks 20 and 21 of the object are swapped in every streamed body that holds both; a ranged GET
  // holding either gets a flipped byte in it instead, so every path to those chunks is hostile.
  const X = 20;
  const at = (i: number) => HEADER_SIZE + i * SEALED;
  let store!: EngineStore & Counting;
  const { engine } = await setupEngine(t, {
    readaheadMaxBytes: 2 * MiB, cacheBytes: 8 * MiB,
    wrapStore: (s) => (store = countingStore(s, (b, start) => rewrite(b, (all) => {
      const from = at(X) - start;
      if (from < 0 || from + 2 * SEALED > all.length) return all;
      const out = Buffer.from(all);
      all.copy(out, from, from + SEALED, from + 2 * SEALED);
      all.copy(out, from + SEALED, from, from + SEALED);
      return out;
    }), (body, start) => {
      const out = Buffer.from(body);
      for (const i of [X, X + 1]) {
        const pos = at(i) + 100 - start;
        if (pos >= 0 && pos < out.length) out[pos] ^= 1;
      }
      return out;
    })),
  });
  const data = randomBytes(6 * MiB);
  await engine.putBuffer('r.bin', data);
  const reader = await engine.openReader('r.bin');
  const failed: number[] = [];
  for (let off = 0; off < data.length; off += CHUNK) {
    try {
      const got = await reader.read(off, CHUNK);
      if (!got.equals(data.subarray(off, off + CHUNK))) t.fail(`wrong bytes at ${off}`);
    } catch (err) {
      t.match(err, { name: 'IntegrityError' }, `chunk ${off / CHUNK}: IntegrityError`);
      failed.push(off / CHUNK);
    }
  }
  t.same(failed, [X, X + 1], 'exactly the swapped chunks fail');
  t.ok(store.streams >= 1, 'a stream was involved');
  reader.close();
});

t.test('two sequential readers of one file share its chunks', async (t) => {
  let store!: EngineStore & Counting;
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 2 * MiB, cacheBytes: 16 * MiB, wrapStore: (s) => (store = countingStore(s)) });
  const data = randomBytes(16 * MiB);
  await engine.putBuffer('two.bin', data);
  const a = await engine.openReader('two.bin');
  const b = await engine.openReader('two.bin');
  const pa: Buffer[] = [];
  const pb: Buffer[] = [];
  for (let off = 0; off < data.length; off += MiB) {
    const [x, y] = await Promise.all([a.read(off, MiB), b.read(off, MiB)]);
    pa.push(x);
    pb.push(y);
  }
  t.ok(Buffer.concat(pa).equals(data) && Buffer.concat(pb).equals(data), 'both exact');
  t.ok(engine.stats.bytesDecrypted < data.length * 1.2, `${engine.stats.bytesDecrypted} bytes decrypted for two readers of ${data.length}`);
  t.ok(store.streams <= 2, `${store.streams} streams`);
  a.close();
  b.close();
});
