import t from 'tap';
import { createHash } from 'node:crypto';

import { DataGen, MiB, setupEngine } from './fixtures/setup.js';

const SIZE = Number(process.env.S3CRYPTFS_LARGE_TEST_MIB ?? 1024) * MiB;
const RSS_LIMIT = 600 * MiB;

t.test(`${SIZE / MiB} MiB streamed through the engine with bounded memory`, async (t) => {
  const { engine } = await setupEngine(t);
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 100);
  t.teardown(() => clearInterval(sampler));

  const gen = new DataGen();
  const inHash = createHash('sha256');
  const writer = engine.createWriter('huge.bin');
  let started = Date.now();
  for await (const piece of gen.stream(SIZE, MiB)) {
    inHash.update(piece as Buffer);
    await writer.write(piece as Buffer);
  }
  const put = await writer.close();
  t.equal(put.size, SIZE);
  t.comment(`put ${SIZE / MiB} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s, ${engine.stats.partsUploaded} parts`);
  t.ok(engine.stats.multipartUploads === 1 && engine.stats.partsUploaded > 1, 'multipart');
  t.equal((await engine.stat('huge.bin'))?.size, SIZE);

  started = Date.now();
  const outHash = createHash('sha256');
  let bytes = 0;
  for await (const piece of engine.readStream('huge.bin')) {
    outHash.update(piece as Buffer);
    bytes += (piece as Buffer).length;
  }
  t.comment(`get ${SIZE / MiB} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  t.equal(bytes, SIZE);
  t.equal(outHash.digest('hex'), inHash.digest('hex'), 'sha256 of what came out equals what went in');

  // sequential random-access reads of a stretch through the reader (readahead path)
  const reader = await engine.openReader('huge.bin');
  const from = Math.floor(SIZE / 2 / MiB) * MiB;
  const span = Math.min(64 * MiB, SIZE - from);
  const want = gen.bytes(from, span);
  let pos = 0;
  while (pos < span) {
    const n = Math.min(128 * 1024, span - pos);
    const got = await reader.read(from + pos, n);
    if (!got.equals(want.subarray(pos, pos + n))) t.fail(`reader mismatch at ${from + pos}`);
    pos += n;
  }
  reader.close();
  t.ok(engine.stats.chunksPrefetched > 0, 'readahead ran');

  clearInterval(sampler);
  t.comment(`peak RSS ${(peak / MiB).toFixed(0)} MiB`);
  t.ok(peak < RSS_LIMIT, `peak RSS ${(peak / MiB).toFixed(0)} MiB < ${RSS_LIMIT / MiB} MiB`);
});
