// The GC valve runs a full GC once the chunk cache evicted its threshold (or the JS heap grew its
// own) since the last one, and not before.
import t from 'tap';

import { ChunkCache } from '../../src/engine/chunk-cache.js';
import { startGcValve } from '../../src/engine/gc-valve.js';
import { newStats } from '../../src/engine/stats.js';

const MiB = 1024 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('a full GC after `slack` evicted bytes, then again only after another `slack`', async (t) => {
  const stats = { cacheEvictedBytes: 0 };
  const valve = startGcValve(stats, { evictedBytes: 64 * MiB, heapBytes: 512 * MiB, intervalMs: 10 });
  t.ok(valve, 'gc can be exposed');
  t.teardown(() => valve?.stop());
  await sleep(60);
  t.equal(valve!.runs, 0, 'nothing evicted: no GC');
  stats.cacheEvictedBytes += 8 * MiB;
  await sleep(60);
  t.equal(valve!.runs, 0, 'less than the slack: no GC');
  stats.cacheEvictedBytes += 64 * MiB;
  await sleep(60);
  t.equal(valve!.runs, 1, 'past the slack: one GC');
  await sleep(60);
  t.equal(valve!.runs, 1, 'the level after it is the new base');
  stats.cacheEvictedBytes += 70 * MiB;
  await sleep(60);
  t.equal(valve!.runs, 2);
});

t.test('stop() ends it', async (t) => {
  const stats = { cacheEvictedBytes: 0 };
  const valve = startGcValve(stats, { evictedBytes: MiB, intervalMs: 10 })!;
  valve.stop();
  stats.cacheEvictedBytes += 10 * MiB;
  await sleep(50);
  t.equal(valve.runs, 0);
});

t.test('the chunk cache counts what it evicts, not what readers release', async (t) => {
  const stats = newStats();
  const cache = new ChunkCache(100, stats);
  cache.set('v', 0, Buffer.alloc(60));
  cache.set('v', 1, Buffer.alloc(30));
  t.equal(stats.cacheEvictedBytes, 0);
  cache.delete('v', 1); // a sequential reader released it
  t.equal(stats.cacheEvictedBytes, 0);
  cache.set('v', 2, Buffer.alloc(60)); // no room: chunk 0 goes
  t.equal(stats.cacheEvictedBytes, 60);
  t.equal(stats.cacheBytes, 60);
});

t.test('S3CRYPTFS_GC_VALVE=0 turns it off', async (t) => {
  const before = process.env.S3CRYPTFS_GC_VALVE;
  process.env.S3CRYPTFS_GC_VALVE = '0';
  t.teardown(() => { if (before === undefined) delete process.env.S3CRYPTFS_GC_VALVE; else process.env.S3CRYPTFS_GC_VALVE = before; });
  t.equal(startGcValve({ cacheEvictedBytes: 0 }), null);
});

t.test('JS heap growth past its own threshold triggers one too', async (t) => {
  const stats = { cacheEvictedBytes: 0 };
  const valve = startGcValve(stats, { evictedBytes: 1024 * MiB, heapBytes: 8 * MiB, intervalMs: 10 })!;
  t.teardown(() => valve.stop());
  const held: object[] = [];
  for (let i = 0; i < 400_000; i++) held.push({ i, s: `entry ${i}` }); // well over 8 MiB of live objects
  await sleep(60);
  t.ok(valve.runs >= 1, `heap grew: ${valve.runs} GC(s)`);
  t.ok(held.length > 0);
});

t.test('afterGc runs after each of the valve\'s GCs, and only then', async (t) => {
  const stats = { cacheEvictedBytes: 0 };
  let after = 0;
  const valve = startGcValve(stats, { evictedBytes: MiB, heapBytes: 1024 * MiB, intervalMs: 10, afterGc: () => after++ })!;
  t.teardown(() => valve.stop());
  await sleep(50);
  t.equal(after, 0, 'no GC, no call');
  stats.cacheEvictedBytes += 2 * MiB;
  await sleep(50);
  t.equal(valve.runs, 1);
  t.equal(after, 1);
});
