// The pool of finished part buffers: capped, oldest out first, and an engine's own pool (the mount's
// upload budget) replaces the process-wide one.
import t from 'tap';

import type { EngineStore } from '../../src/engine/store-port.js';
import { PartPool, sharedPartPool } from '../../src/engine/writer.js';
import { DataGen, MiB, setupEngine } from './fixtures/setup.js';

t.test('PartPool keeps at most maxBytes, oldest out first, by exact size', async (t) => {
  const pool = new PartPool(10);
  t.equal(pool.take(4), undefined, 'empty');
  const a = Buffer.alloc(4, 1);
  const b = Buffer.alloc(4, 2);
  const c = Buffer.alloc(4, 3);
  pool.give(a);
  pool.give(b);
  t.equal(pool.pooledBytes, 8);
  pool.give(c);
  t.equal(pool.pooledBytes, 8, 'a was dropped to make room for c');
  t.equal(pool.take(5), undefined, 'no buffer of another size is handed out');
  t.equal(pool.take(4), b);
  t.equal(pool.take(4), c);
  t.equal(pool.take(4), undefined);
  pool.give(Buffer.alloc(11));
  t.equal(pool.pooledBytes, 0, 'a buffer larger than the cap is not kept');
  const none = new PartPool(0);
  none.give(Buffer.alloc(1));
  t.equal(none.pooledBytes, 0, 'a pool of 0 bytes keeps nothing');
});

/** Records the ArrayBuffer behind every uploaded part, and the most parts in flight at once. */
function recording(store: EngineStore, seen: ArrayBufferLike[], inflight: { now: number; max: number }): EngineStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'uploadPart') {
        return async (...args: Parameters<EngineStore['uploadPart']>) => {
          seen.push(args[4].buffer);
          inflight.max = Math.max(inflight.max, ++inflight.now);
          try {
            return await target.uploadPart(...args);
          } finally {
            inflight.now--;
          }
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

for (const poolParts of [0, 2]) {
  t.test(`an engine's own pool of ${poolParts} parts: reuse across files, concurrency bound, shared pool untouched`, async (t) => {
    const partSize = 5 * MiB;
    const seen: ArrayBufferLike[] = [];
    const inflight = { now: 0, max: 0 };
    const { engine } = await setupEngine(t, {
      partSize, uploadConcurrency: 1, partPoolBytes: poolParts * partSize,
      wrapStore: (s) => recording(s, seen, inflight),
    });
    const sharedBefore = sharedPartPool.pooledBytes;
    const gen = new DataGen();
    const size = 3 * partSize + 123;
    for (const name of ['one.bin', 'two.bin']) {
      const w = engine.createWriter(name);
      for (let pos = 0; pos < size; pos += MiB) await w.write(gen.bytes(pos, Math.min(MiB, size - pos)));
      await w.close();
      t.ok((await engine.getBuffer(name)).equals(gen.bytes(0, size)), `${name} reads back`);
    }
    t.equal(seen.length, 8, '4 parts per file');
    t.equal(inflight.max, 1, 'uploadConcurrency 1: one part in flight at a time');
    t.equal(sharedPartPool.pooledBytes, sharedBefore, 'the process-wide pool was not used');
    const first = new Set(seen.slice(0, 4));
    t.ok(first.size <= 2, `one file used at most concurrency + 1 = 2 buffers (${first.size})`);
    const reused = seen.slice(4).filter((b) => first.has(b)).length;
    if (poolParts === 0) t.equal(reused, 0, 'without a pool the second file allocates its own buffers');
    else t.equal(reused, 4, 'the second file reuses the first one\'s buffers from the pool');
  });
}
