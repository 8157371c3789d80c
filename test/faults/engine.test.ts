// Engine under a faulty backend: s3rver behind test/faults/fixtures/fault-proxy.ts, which answers a
// seeded random fraction of requests with 503 SlowDown / 500, resets (before or mid-body), stalls,
// cleanly truncated bodies or a flipped byte. Invariants: a read returns exactly the stored bytes or
// rejects; a write that resolves is visible with exactly the new content; a write that rejects leaves
// the earlier version intact (or, when the backend applied it before the fault, exactly the new one),
// never a partial object; retries happen and are counted in the store stats.
import t from 'tap';
import { randomBytes } from 'node:crypto';

import { Engine } from '../../src/engine/index.js';
import { deriveKeys } from '../../src/format/index.js';
import { isStoreError } from '../../src/store/errors.js';
import { withS3, storeFor } from '../helpers/s3server.js';
import { bucketConfig, KiB, MiB } from '../engine/fixtures/setup.js';
import { prng, randomFault, startFaultProxy, type Fault } from './fixtures/fault-proxy.js';

const SEED = Number(process.env.FAULT_SEED ?? 20261123);
const ROUNDS = Number(process.env.FAULT_ROUNDS ?? 14);
const BUDGET_MS = Number(process.env.FAULT_BUDGET_MS ?? 40_000);

const s3 = await withS3(t);
const keys = deriveKeys(randomBytes(32));
const prefix = 'faults';
await Engine.init(s3.store, s3.bucket, prefix, bucketConfig(keys, 'aes-siv', 16 * KiB));
const direct = await Engine.open({ store: s3.store, bucket: s3.bucket, prefix, keys });

const proxy = await startFaultProxy(s3.endpoint);
t.teardown(() => proxy.stop());
const faultyStore = storeFor(proxy, { maxAttempts: 4, requestTimeoutMs: 1_000 });
t.teardown(() => faultyStore.destroy());
const engine = await Engine.open({ store: faultyStore, bucket: s3.bucket, prefix, keys, partSize: 5 * MiB, uploadConcurrency: 2 });

t.test(`random faults on put/get (seed ${SEED}, ${ROUNDS} rounds)`, async (t) => {
  const rand = prng(SEED);
  proxy.setDecide(() => randomFault(rand, 0.35, 2_500));
  const current = new Map<string, Buffer>();
  const outcome = { putOk: 0, putFailed: 0, getOk: 0, getFailed: 0 };
  const started = Date.now();
  for (let round = 0; round < ROUNDS && Date.now() - started < BUDGET_MS; round++) {
    const path = `dir/file-${round % 3}.bin`;
    const size = Math.floor(rand() * 200 * KiB);
    const data = randomBytes(size);
    const before = current.get(path);
    try {
      const r = await engine.putBuffer(path, data);
      t.equal(r.size, size);
      outcome.putOk++;
      const seen = await direct.getBuffer(path);
      t.ok(seen.equals(data), `round ${round}: a resolved put is visible with exactly the new content`);
      current.set(path, data);
    } catch (err) {
      outcome.putFailed++;
      const seen = await direct.getBuffer(path).catch((e: Error) => e);
      if (seen instanceof Error) {
        t.equal(before, undefined, `round ${round}: only a never-written path may be missing after a failed put (${seen.message})`);
      } else if (before && seen.equals(before)) {
        t.pass(`round ${round}: failed put (${(err as Error).name}) left the earlier version intact`);
      } else {
        t.ok(seen.equals(data), `round ${round}: failed put left either the old or exactly the new content`);
        current.set(path, data);
      }
    }
    for (const [p, expected] of current) {
      try {
        const got = await engine.getBuffer(p);
        t.ok(got.equals(expected), `round ${round}: a read of ${p} that resolves returns exactly the stored bytes`);
        outcome.getOk++;
      } catch {
        outcome.getFailed++;
      }
      // Random access too, through the same faulty path.
      try {
        const reader = await engine.openReader(p);
        try {
          const off = Math.floor(rand() * (expected.length + 1));
          const got = await reader.read(off, 40 * KiB);
          t.ok(got.equals(expected.subarray(off, off + 40 * KiB)), `round ${round}: ranged read at ${off} is exact`);
        } finally {
          reader.close();
        }
      } catch {
        outcome.getFailed++;
      }
    }
  }
  proxy.setDecide(() => ({ kind: 'forward' }));
  const faulted = proxy.log.filter((l) => l.fault !== 'forward').length;
  t.comment(`outcome ${JSON.stringify(outcome)}; ${proxy.log.length} requests, ${faulted} faulted; stats ${JSON.stringify(faultyStore.stats)}`);
  t.ok(faulted > 0, 'faults were injected');
  t.ok(faultyStore.stats.retries > 0, 'retries happened and were counted in store stats');
  t.ok(outcome.putOk + outcome.getOk > 0, 'some operations still succeeded');
  // After the faults stop, everything written is readable and exact.
  for (const [p, expected] of current) t.ok((await engine.getBuffer(p)).equals(expected), `${p} exact once faults stop`);
});

t.test('every 503 SlowDown is retried, counted, and the write lands exactly', async (t) => {
  let n = 0;
  proxy.setDecide((req) => (req.method === 'PUT' && n++ < 2 ? { kind: 'error', status: 503, code: 'SlowDown' } : { kind: 'forward' }));
  const retriesBefore = faultyStore.stats.retries;
  const data = randomBytes(50 * KiB);
  await engine.putBuffer('slowdown.bin', data);
  t.ok(faultyStore.stats.retries - retriesBefore >= 2, 'both throttled attempts counted as retries');
  t.ok((await direct.getBuffer('slowdown.bin')).equals(data));
  proxy.setDecide(() => ({ kind: 'forward' }));
});

t.test('a corrupted body is never returned as plaintext', async (t) => {
  const data = randomBytes(100 * KiB);
  await direct.putBuffer('corrupt.bin', data);
  for (const at of [0, 10, 200, 5_000, 60_000]) {
    proxy.setDecide((req) => (req.method === 'GET' && !req.url.includes('list-type') ? { kind: 'corrupt', at } : { kind: 'forward' }));
    const got = await engine.getBuffer('corrupt.bin').catch((e: Error) => e);
    if (got instanceof Error) t.match(got.name + ' ' + (got as { code?: string }).code, /Integrity|INTEGRITY|HEADER|CHUNK|TAG|[A-Z_]+/, `flip at ${at}: ${got.name}`);
    else t.ok(got.equals(data), `flip at ${at} did not reach the data (or was retried)`);
  }
  proxy.setDecide(() => ({ kind: 'forward' }));
});

t.test('a cleanly truncated body is an error, never short or wrong data', async (t) => {
  const data = randomBytes(100 * KiB);
  await direct.putBuffer('trunc.bin', data);
  for (const keepBytes of [0, 1, 63, 16 * KiB + 20, 60 * KiB]) {
    proxy.setDecide((req) => (req.method === 'GET' && !req.url.includes('list-type') ? { kind: 'truncate', keepBytes } : { kind: 'forward' }));
    const got = await engine.getBuffer('trunc.bin').catch((e: Error) => e);
    if (got instanceof Error) t.pass(`truncated to ${keepBytes}: ${got.name}: ${got.message.slice(0, 80)}`);
    else t.ok(got.equals(data), `truncated to ${keepBytes}: only exact data may be returned`);
  }
  proxy.setDecide(() => ({ kind: 'forward' }));
});

t.test('a stalled response times out, is retried, and the read is exact', async (t) => {
  const data = randomBytes(30 * KiB);
  await direct.putBuffer('stall.bin', data);
  let n = 0;
  proxy.setDecide((req) => (req.method === 'GET' && n++ === 0 ? { kind: 'stall', ms: 3_000 } : { kind: 'forward' }));
  const retriesBefore = faultyStore.stats.retries;
  const started = Date.now();
  t.ok((await engine.getBuffer('stall.bin')).equals(data));
  t.ok(faultyStore.stats.retries > retriesBefore, 'the stall was retried');
  t.ok(Date.now() - started < 8_000, 'bounded by the request timeout, not the stall');
  proxy.setDecide(() => ({ kind: 'forward' }));
});

t.test('a multipart upload that keeps failing rejects close() and leaves the earlier version', async (t) => {
  const old = randomBytes(10 * KiB);
  await direct.putBuffer('big.bin', old);
  proxy.setDecide((req) => (req.method === 'PUT' && req.url.includes('partNumber=2') ? { kind: 'error', status: 500, code: 'InternalError' } : { kind: 'forward' }));
  const w = engine.createWriter('big.bin');
  const big = randomBytes(6 * MiB);
  const err = await (async () => {
    await w.write(big);
    await w.close();
  })().catch((e: Error) => e);
  t.ok(err instanceof Error, 'close() rejects');
  proxy.setDecide(() => ({ kind: 'forward' }));
  t.ok((await direct.getBuffer('big.bin')).equals(old), 'the earlier version is intact');
  try {
    const ups = await s3.store.listMultipartUploads(s3.bucket);
    t.same(ups.filter((u) => u.key.startsWith(prefix)), [], 'the failed upload was aborted');
  } catch (e) {
    if (!isStoreError(e, 'NotImplemented')) throw e;
    t.comment('s3rver lacks ListMultipartUploads');
  }
});

t.test('a corrupted header on a ranged read rejects with IntegrityError (no hang, no unhandled rejection)', async (t) => {
  const data = randomBytes(100 * KiB);
  await direct.putBuffer('hdr.bin', data);
  const fresh = await Engine.open({ store: faultyStore, bucket: s3.bucket, prefix, keys });
  proxy.setDecide((req): Fault => (req.method === 'GET' && String(req.headers.range ?? '').startsWith('bytes=0-') ? { kind: 'corrupt', at: 40 } : { kind: 'forward' }));
  const reader = await fresh.openReader('hdr.bin');
  const timeout = new Promise<string>((r) => setTimeout(() => r('hung'), 5_000).unref());
  const got = await Promise.race([reader.read(50 * KiB, 1000).then(() => 'resolved', (e: Error) => e.name), timeout]);
  reader.close();
  proxy.setDecide(() => ({ kind: 'forward' }));
  t.equal(got, 'IntegrityError');
});
