// The writer's two sealing paths: runs of chunks sealed by the native addon off the event loop
// (the default when it is built: plaintext staged in the part buffers, sealed there in place), and
// node:crypto on the event loop (setChunkRunPort(null), as without the addon). Both must store the
// same format, byte for byte what ObjectSealer makes under the object's key; a sealing failure must
// surface like an upload failure; one run at a time.
import t, { type Test } from 'tap';

import { lend, reclaim } from '../../src/engine/lease.js';
import { EngineWriter, setChunkRunPort } from '../../src/engine/writer.js';
import { nativeChunkRunPort } from '../../native-bindings/aead/index.js';
import { ciphertextSize, HEADER_SIZE, ObjectSealer, openObjectHeader, type ChunkRunPort } from '../../src/format/index.js';
import { CHUNK, DataGen, MiB, setupEngine, type EngineSetup } from './fixtures/setup.js';

const native = nativeChunkRunPort();
t.ok(native, 'the native AEAD addon is built and used by default (npm run build)');

/** Runs `fn` with writers sealing through `port`, then restores the default. */
async function withPort<T>(port: ChunkRunPort | null, fn: () => Promise<T>): Promise<T> {
  const prev = setChunkRunPort(port);
  try {
    return await fn();
  } finally {
    setChunkRunPort(prev);
  }
}

/** The stored object must be exactly what ObjectSealer makes from the plaintext under its header. */
async function checkStored(t: Test, s: EngineSetup, key: string, plain: Buffer, what: string): Promise<void> {
  const { body } = await s.store.getObject(s.bucket, key);
  t.equal(body.length, ciphertextSize(plain.length, CHUNK), `${what}: stored size`);
  const sealer = new ObjectSealer(openObjectHeader(s.keys, body.subarray(0, HEADER_SIZE)));
  const want = Buffer.concat([...sealer.push(plain), ...sealer.finish()]);
  t.ok(body.equals(want), `${what}: byte for byte what ObjectSealer makes`);
}

const gen = new DataGen();
// Sizes around chunk and part boundaries (partSize 5 MiB: the header shifts chunks across parts).
const SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 5 * MiB - HEADER_SIZE - 80 * 16, 11 * MiB + 3];
/** Write sizes: one write, 1 MiB (FUSE's), odd sizes, and a mix of tiny and large ones. */
const PATTERNS: Record<string, (i: number) => number> = {
  whole: () => Number.MAX_SAFE_INTEGER,
  '1MiB': () => MiB,
  odd: () => 100_003,
  mixed: (i) => [1, 7, CHUNK, 3 * MiB + 5, CHUNK - 1][i % 5]!,
};

for (const path of ['native', 'node:crypto'] as const) {
  t.test(`${path}: objects of every size and write pattern read back and match the format exactly`, async (t) => {
    const s = await setupEngine(t, { partSize: 5 * MiB, uploadConcurrency: 2 });
    await withPort(path === 'native' ? native : null, async () => {
      for (const size of SIZES) {
        const plain = gen.bytes(0, size);
        for (const [name, piece] of Object.entries(PATTERNS)) {
          if (name !== 'whole' && name !== 'odd' && size < CHUNK) continue;
          const file = `f-${size}-${name}`;
          const w = s.engine.createWriter(file) as EngineWriter;
          for (let pos = 0, i = 0; pos < size; i++) {
            const n = Math.min(piece(i), size - pos);
            await w.write(plain.subarray(pos, pos + n));
            pos += n;
          }
          const { size: written } = await w.close();
          t.equal(written, size, `${file}: size`);
          t.ok((await s.engine.getBuffer(file)).equals(plain), `${file}: reads back`);
          if (name === 'whole' || name === 'mixed' || size < CHUNK) await checkStored(t, s, w.key, plain, file);
        }
      }
    });
  });
}

t.test('native: one run in flight per writer; write() keeps no reference to its data once it resolves', async (t) => {
  const s = await setupEngine(t, { partSize: 5 * MiB });
  let inflight = 0;
  let max = 0;
  let runs = 0;
  const counting: ChunkRunPort = {
    ...native!,
    async sealRun(...a) {
      runs++;
      max = Math.max(max, ++inflight);
      try {
        await new Promise((r) => setTimeout(r, 2));
        return await native!.sealRun(...a);
      } finally {
        inflight--;
      }
    },
  };
  const plain = gen.bytes(0, 12 * MiB + 5);
  await withPort(counting, async () => {
    const w = s.engine.createWriter('serial.bin');
    // Not awaited one by one: the writer itself must keep the runs serial and in order.
    const writes: Promise<void>[] = [];
    for (let pos = 0; pos < plain.length; pos += MiB) {
      const data = Buffer.from(plain.subarray(pos, pos + MiB));
      const p = w.write(data);
      // Once write() resolves the writer keeps no reference to the data: overwrite it.
      writes.push(p.then(() => void data.fill(0xaa)));
    }
    await Promise.all(writes);
    await w.close();
  });
  t.ok(runs >= 12, `sealed as runs (${runs})`);
  t.equal(max, 1, 'never two runs in flight at once');
  t.ok((await s.engine.getBuffer('serial.bin')).equals(plain), 'reads back (the data was not reused while sealing)');
});

t.test('native: lent data is sealed from the lent buffers, each lease released once and only after its chunks are sealed', async (t) => {
  const s = await setupEngine(t, { partSize: 5 * MiB, uploadConcurrency: 2 });
  let fromLent = 0;
  let inPlace = 0;
  const counting: ChunkRunPort = {
    ...native!,
    sealRun(...a) {
      if (a[7] === null) inPlace++;
      else fromLent++;
      return native!.sealRun(...a);
    },
  };
  // 1 MiB writes (FUSE's), a write crossing a part boundary, small and unaligned writes in between
  // (staged), aligned ones again with a partial last chunk; the object ends on a chunk boundary, so
  // its final chunk is sealed at close from a lease.
  const sizes = [MiB, MiB, MiB, 100, CHUNK - 100, 4 * CHUNK, 7, MiB, CHUNK - 7, MiB, 3 * CHUNK + 5, CHUNK - 5, MiB];
  const total = sizes.reduce((a, b) => a + b, 0);
  t.equal(total % CHUNK, 0, 'ends on a chunk boundary');
  const plain = gen.bytes(0, total);
  const released = new Map<number, number>();
  let reclaimed = 0;
  let settledBeforeRelease = 0;
  await withPort(counting, async () => {
    const w = s.engine.createWriter('lent.bin') as EngineWriter;
    let pos = 0;
    const settled: boolean[] = [];
    for (const [i, n] of sizes.entries()) {
      const data = Buffer.from(plain.subarray(pos, pos + n));
      lend(data, () => {
        released.set(i, (released.get(i) ?? 0) + 1);
        if (settled[i]) settledBeforeRelease++;
        data.fill(0x55); // the lender reuses it at once: the writer must be done with it
      });
      await w.write(data);
      settled[i] = true;
      if (reclaim(data)) {
        reclaimed++;
        data.fill(0x55);
      }
      pos += n;
    }
    await w.close();
    await checkStored(t, s, w.key, plain, 'lent.bin');
  });
  t.equal(released.size + reclaimed, sizes.length, 'every lease came back: released by the writer or reclaimed');
  t.ok([...released.values()].every((c) => c === 1), 'released once each');
  t.ok(settledBeforeRelease > 0, `some leases outlived their write() call (${settledBeforeRelease})`);
  t.ok(fromLent >= 4, `runs sealed from lent buffers (${fromLent})`);
  t.ok(inPlace >= 1, `and staged runs sealed in place (${inPlace})`);
  t.ok((await s.engine.getBuffer('lent.bin')).equals(plain), 'reads back');
});

t.test('native: a failed or aborted writer releases its leases once the run in flight has settled', async (t) => {
  const s = await setupEngine(t, { partSize: 5 * MiB, uploadConcurrency: 2 });
  let calls = 0;
  let inflight = 0;
  let releasedWhileSealing = 0;
  const failing: ChunkRunPort = {
    ...native!,
    async sealRun(...a) {
      inflight++;
      try {
        await new Promise((r) => setTimeout(r, 2));
        if (++calls === 3) throw new Error('injected sealing failure');
        return await native!.sealRun(...a);
      } finally {
        inflight--;
      }
    },
  };
  for (const how of ['failure', 'abort'] as const) {
    calls = how === 'abort' ? -1000 : 0;
    let released = 0;
    let lent = 0;
    await withPort(failing, async () => {
      const w = s.engine.createWriter(`fail-${how}.bin`);
      try {
        for (let i = 0; i < 12; i++) {
          const data = gen.bytes(i * MiB, MiB);
          lent++;
          lend(data, () => {
            released++;
            if (inflight > 0) releasedWhileSealing++;
          });
          const p = w.write(data);
          if (how === 'abort' && i === 5) await w.abort();
          await p.finally(() => {
            if (reclaim(data)) released++;
          });
        }
      } catch {
        // expected: the injected failure, or the abort
      }
      await w.abort();
      await new Promise((r) => setTimeout(r, 20));
    });
    t.equal(released, lent, `${how}: every lease came back`);
  }
  t.equal(releasedWhileSealing, 0, 'none while a run was being sealed');
});

t.test('native: a sealing failure rejects the write and close, and nothing becomes visible', async (t) => {
  const s = await setupEngine(t, { partSize: 5 * MiB, uploadConcurrency: 2 });
  let calls = 0;
  const failing: ChunkRunPort = {
    ...native!,
    async sealRun(...a) {
      if (++calls === 9) throw new Error('injected sealing failure');
      return native!.sealRun(...a);
    },
  };
  await withPort(failing, async () => {
    const w = s.engine.createWriter('fail.bin');
    let err: unknown = null;
    try {
      for (let i = 0; i < 16; i++) await w.write(gen.bytes(i * MiB, MiB));
    } catch (e) {
      err = e;
    }
    t.match(err, { message: /injected sealing failure/ }, 'a write reports it');
    await t.rejects(w.close(), { message: /injected sealing failure/ }, 'close reports it too');
  });
  t.equal(await s.engine.stat('fail.bin'), null, 'no object is visible');
});

t.test('native: abort() while a run is being sealed', async (t) => {
  const s = await setupEngine(t, { partSize: 5 * MiB, uploadConcurrency: 2 });
  let release: () => void = () => {};
  let started: () => void = () => {};
  const sealing = new Promise<void>((r) => { started = r; });
  let n = 0;
  const slow: ChunkRunPort = {
    ...native!,
    async sealRun(...a) {
      if (++n === 7) {
        started();
        await new Promise<void>((r) => { release = r; });
      }
      return native!.sealRun(...a);
    },
  };
  await withPort(slow, async () => {
    const w = s.engine.createWriter('aborted.bin');
    const writing = (async () => {
      for (let i = 0; i < 10; i++) await w.write(gen.bytes(i * MiB, MiB));
    })();
    await sealing;
    const aborted = w.abort();
    release();
    await aborted;
    await t.rejects(writing, { code: 'ABORTED' }, 'the write in progress fails with ABORTED');
    await t.rejects(w.close(), { code: 'ABORTED' });
  });
  t.equal(await s.engine.stat('aborted.bin'), null, 'no object is visible');
});

t.test('native: chunks larger than parts (16 MiB chunks, 5 MiB parts, one upload at a time)', async (t) => {
  const s = await setupEngine(t, { partSize: 5 * MiB, uploadConcurrency: 1, chunkSize: 16 * MiB });
  const plain = gen.bytes(0, 40 * MiB + 7);
  await withPort(native, async () => {
    const w = s.engine.createWriter('big.bin');
    for (let pos = 0; pos < plain.length; pos += MiB) await w.write(plain.subarray(pos, Math.min(plain.length, pos + MiB)));
    await w.close();
  });
  t.ok((await s.engine.getBuffer('big.bin')).equals(plain), 'reads back');
});
