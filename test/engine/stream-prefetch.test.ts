// Readahead's streamed GETs: chunks arrive and are authenticated one by one; a body that breaks off
// is finished with a buffered GET; tampered ciphertext in a streamed stretch fails the read.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import t from 'tap';

import type { EngineStore } from '../../src/engine/index.js';
import { CHUNK, MiB, setupEngine } from './fixtures/setup.js';

type GetStream = EngineStore['getStream'];

/** A store whose streaming GETs pass through `alter` (which may cut or change the body). */
function alteringStore(store: EngineStore, alter: (body: Readable, calls: number) => Readable): EngineStore & { streams: number } {
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'getStream') {
        return (async (...args: Parameters<GetStream>) => {
          const out = await target.getStream(...args);
          wrapped.streams++;
          return { ...out, stream: alter(out.stream, wrapped.streams) };
        }) as GetStream;
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  }) as EngineStore & { streams: number };
  wrapped.streams = 0;
  return wrapped;
}

/** Passes the first `limit` bytes of `body`, then fails (like a connection reset). */
function cutAfter(body: Readable, limit: number): Readable {
  let seen = 0;
  return Readable.from((async function* () {
    for await (const piece of body as AsyncIterable<Buffer>) {
      const room = limit - seen;
      if (room <= 0) break;
      seen += piece.length;
      yield piece.subarray(0, room);
      if (piece.length > room) break;
    }
    body.destroy();
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  })(), { objectMode: false });
}

/** Flips one byte at `at` in the body. */
function flipAt(body: Readable, at: number): Readable {
  let pos = 0;
  return Readable.from((async function* () {
    for await (const piece of body as AsyncIterable<Buffer>) {
      const copy = Buffer.from(piece);
      if (at >= pos && at < pos + copy.length) copy[at - pos] ^= 1;
      pos += copy.length;
      yield copy;
    }
  })(), { objectMode: false });
}

async function readAll(reader: { read(o: number, l: number): Promise<Buffer> }, size: number, step: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  for (let off = 0; off < size; off += step) parts.push(await reader.read(off, step));
  return Buffer.concat(parts);
}

t.test('a sequential read is served by streamed GETs, exact', async (t) => {
  let store!: EngineStore & { streams: number };
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 4 * MiB, cacheBytes: 16 * MiB, wrapStore: (s) => (store = alteringStore(s, (b) => b)) });
  const data = randomBytes(12 * MiB + 777);
  await engine.putBuffer('s.bin', data);
  const reader = await engine.openReader('s.bin');
  t.ok((await readAll(reader, data.length, CHUNK)).equals(data), 'content exact');
  t.ok(store.streams > 0, `${store.streams} streamed GETs`);
  t.ok(engine.stats.rangeRequests < data.length / CHUNK / 4, `${engine.stats.rangeRequests} GETs for ${Math.ceil(data.length / CHUNK)} chunks`);
  reader.close();
});

t.test('a streamed GET that breaks off is finished with a buffered GET', async (t) => {
  const { engine } = await setupEngine(t, {
    readaheadMaxBytes: 4 * MiB, cacheBytes: 16 * MiB,
    wrapStore: (s) => alteringStore(s, (b, n) => cutAfter(b, n * 100_003 % (3 * CHUNK) + 5_000)),
  });
  const data = randomBytes(8 * MiB + 3);
  await engine.putBuffer('b.bin', data);
  const reader = await engine.openReader('b.bin');
  t.ok((await readAll(reader, data.length, 3 * CHUNK)).equals(data), 'content exact despite every stream breaking');
  reader.close();
});

t.test('a tampered byte inside a streamed stretch fails the read of that chunk', async (t) => {
  const { engine } = await setupEngine(t, {
    readaheadMaxBytes: 4 * MiB, cacheBytes: 16 * MiB,
    wrapStore: (s) => alteringStore(s, (b) => flipAt(b, 2 * CHUNK + 100)),
  });
  const data = randomBytes(6 * MiB);
  await engine.putBuffer('x.bin', data);
  const reader = await engine.openReader('x.bin');
  let failed: unknown = null;
  let good = 0;
  for (let off = 0; off < data.length; off += CHUNK) {
    try {
      const got = await reader.read(off, CHUNK);
      t.ok(got.equals(data.subarray(off, off + CHUNK)), `chunk at ${off} exact`);
      good++;
    } catch (err) {
      failed = err;
      break;
    }
  }
  t.ok(failed, `a read failed after ${good} good chunks`);
  t.match(failed, { name: 'IntegrityError' }, 'with an IntegrityError');
  reader.close();
});

t.test('reader.prefetch() caches the range without returning it; a read then needs no GET', async (t) => {
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 0, cacheBytes: 16 * MiB });
  const data = randomBytes(3 * MiB);
  await engine.putBuffer('p.bin', data);
  const reader = await engine.openReader('p.bin');
  t.equal(await reader.prefetch!(CHUNK + 5, 10 * CHUNK), undefined, 'resolves with nothing');
  const gets = engine.stats.rangeRequests;
  const got = await reader.read(CHUNK + 5, 10 * CHUNK);
  t.ok(got.equals(data.subarray(CHUNK + 5, 11 * CHUNK + 5)), 'read exact');
  t.equal(engine.stats.rangeRequests, gets, 'no GET for the read');
  reader.close();
  await t.rejects(reader.prefetch!(0, 1), { code: 'CLOSED' });
});

t.test('a sequential reader releases the chunks it read whole; random reads keep theirs cached', async (t) => {
  const { engine } = await setupEngine(t, { readaheadMaxBytes: 2 * MiB, cacheBytes: 16 * MiB });
  const data = randomBytes(8 * MiB);
  await engine.putBuffer('r.bin', data);
  const reader = await engine.openReader('r.bin');
  t.ok((await readAll(reader, 4 * MiB, CHUNK)).equals(data.subarray(0, 4 * MiB)), 'sequential content exact');
  t.ok(engine.stats.cacheBytes <= 3 * MiB, `cache holds what was prefetched and not read yet (${engine.stats.cacheBytes} bytes), not the 4 MiB read`);
  const gets = engine.stats.rangeRequests;
  const rnd = await engine.openReader('r.bin');
  await rnd.read(7 * MiB + 5, 100);
  await rnd.read(2 * MiB + 5, 100);
  t.equal(engine.stats.rangeRequests, gets + 2, 'two random reads: two GETs (the chunk at 2 MiB was released)');
  t.ok((await rnd.read(7 * MiB + 200, 100)).equals(data.subarray(7 * MiB + 200, 7 * MiB + 300)), 'random re-read exact');
  t.equal(engine.stats.rangeRequests, gets + 2, 'a random re-read of a chunk is a cache hit');
  reader.close();
  rnd.close();
});
