import t from 'tap';
import { randomBytes } from 'node:crypto';

import { CHUNK, collect, MiB, setupEngine } from './fixtures/setup.js';

t.test('round trips at chunk and part boundaries', async (t) => {
  const { engine } = await setupEngine(t, { partSize: 5 * MiB });
  const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17];
  for (const size of sizes) {
    const data = randomBytes(size);
    const path = `sizes/file-${size}.bin`;
    const put = await engine.putBuffer(path, data);
    t.equal(put.size, size, `${size}: close reports the plaintext size`);
    const st = await engine.stat(path);
    t.equal(st?.size, size, `${size}: stat size`);
    t.same(st?.attributes, {}, `${size}: no attributes`);
    t.ok((await engine.getBuffer(path)).equals(data), `${size}: getBuffer`);
    const reader = await engine.openReader(path);
    t.equal(reader.size, size);
    t.ok((await reader.read(0, size + 10)).equals(data), `${size}: reader whole`);
    t.equal((await reader.read(size, 10)).length, 0, `${size}: read at EOF is empty`);
    reader.close();
    t.same(await engine.verify(path), { size }, `${size}: verify`);
  }
  t.equal(engine.stats.multipartUploads, 0, 'small objects never go multipart');
  t.equal(engine.stats.singlePutUploads, sizes.length);
});

t.test('multipart: several parts, streamed writes of odd sizes', async (t) => {
  const { engine, store, bucket } = await setupEngine(t, { partSize: 5 * MiB, uploadConcurrency: 2 });
  const size = 12 * MiB + 12345;
  const data = randomBytes(size);
  const writer = engine.createWriter('big/multi.bin', { attributes: { mode: '0644', 'content-type': 'text/plain' } });
  for (let pos = 0, step = 1; pos < size; pos += step, step = (step * 7 + 13) % 900_001) {
    await writer.write(data.subarray(pos, Math.min(size, pos + step)));
  }
  t.equal(writer.bytesWritten, size);
  const { size: written, etag } = await writer.close();
  t.equal(written, size);
  t.equal(engine.stats.multipartUploads, 1, 'went multipart');
  t.equal(engine.stats.partsUploaded, 3, 'three 5 MiB parts');
  t.equal(engine.stats.uploadsInFlight, 0);
  t.type(etag, 'string');
  const raw = await store.head(bucket, engine.objectKey('big/multi.bin'));
  t.equal(raw?.contentType, 'application/octet-stream', 'no content type leaks');
  const st = await engine.stat('big/multi.bin');
  t.same(st?.attributes, { mode: '0644', 'content-type': 'text/plain' }, 'attributes survive multipart');
  t.ok((await engine.getBuffer('big/multi.bin')).equals(data), 'getBuffer');

  // exactly one full part stays a single PUT
  const before = engine.stats.multipartUploads;
  const exact = randomBytes(5 * MiB - 132 - 16 * Math.ceil((5 * MiB) / CHUNK));
  await engine.putBuffer('big/exact.bin', exact);
  t.equal((await store.head(bucket, engine.objectKey('big/exact.bin')))?.size, 5 * MiB, 'ciphertext is exactly one part');
  t.ok((await engine.getBuffer('big/exact.bin')).equals(exact));
  t.equal(engine.stats.multipartUploads, before, 'an object of exactly one part is one PUT');
});

t.test('ranged read streams', async (t) => {
  const { engine } = await setupEngine(t);
  const size = 5 * CHUNK + 333;
  const data = randomBytes(size);
  await engine.putBuffer('r.bin', data);
  const cases: [number, number | undefined][] = [
    [0, 1], [1, CHUNK], [CHUNK - 1, CHUNK + 1], [CHUNK, 2 * CHUNK], [3 * CHUNK + 5, undefined], [size - 1, size],
    [size, size + 10], [100, 100], [0, size + 1000],
  ];
  for (const [start, end] of cases) {
    const got = await collect(engine.readStream('r.bin', { start, end }));
    t.ok(got.equals(data.subarray(start, end ?? size)), `range [${start}, ${end})`);
  }
});

t.test('plain names mode', async (t) => {
  const { engine, store, bucket, prefix } = await setupEngine(t, { names: 'plain' });
  await engine.putBuffer('docs/readme.txt', Buffer.from('hello'));
  t.equal(engine.objectKey('docs/readme.txt'), `${prefix}/docs/readme.txt`);
  t.ok(await store.head(bucket, `${prefix}/docs/readme.txt`));
  t.equal((await engine.getBuffer('docs/readme.txt')).toString(), 'hello');
  await t.rejects(engine.putBuffer('.s3cryptfs.json', Buffer.from('x')), { code: 'INVALID_PATH' });
});

t.test('invalid paths and missing objects', async (t) => {
  const { engine } = await setupEngine(t);
  for (const bad of ['', '/abs', 'a//b', 'a/./b', '../x', 'a/']) {
    t.throws(() => engine.createWriter(bad), { code: 'INVALID_PATH' }, `rejects "${bad}"`);
  }
  t.throws(() => engine.createWriter('x'.repeat(256)), { code: 'NAME_TOO_LONG' });
  t.equal(await engine.stat('nope'), null);
  await t.rejects(engine.openReader('nope'), { code: 'NOT_FOUND' });
  await t.rejects(engine.getBuffer('nope'), { code: 'NOT_FOUND' });
  await t.rejects(collect(engine.readStream('nope', { start: 5 })), { code: 'NOT_FOUND' });
});

t.test('a read stream abandoned half-way does not wedge the engine', async (t) => {
  const { engine } = await setupEngine(t);
  const data = randomBytes(4 * MiB);
  await engine.putBuffer('big.bin', data);
  for (let i = 0; i < 3; i++) {
    const stream = engine.readStream('big.bin');
    let got = 0;
    for await (const piece of stream) {
      got += (piece as Buffer).length;
      if (got > MiB) break;
    }
    t.ok(stream.destroyed, `stream ${i} destroyed`);
  }
  const early = engine.readStream('big.bin');
  early.destroy();
  t.ok((await engine.getBuffer('big.bin')).equals(data), 'later reads still work');
});

t.test('part buffers reused across writers: concurrent single and multipart uploads stay intact', async (t) => {
  const { engine } = await setupEngine(t, { partSize: 5 * MiB, uploadConcurrency: 2 });
  const sizes = [4 * MiB, 11 * MiB + 3, 1 * MiB, 4 * MiB + 1, 6 * MiB, 2 * MiB];
  const datas = sizes.map((n) => randomBytes(n));
  for (let round = 0; round < 2; round++) {
    // Round 2 runs on buffers round 1 gave back to the shared pool.
    await Promise.all(datas.map((d, i) => engine.putBuffer(`pool/${round}-${i}.bin`, d)));
  }
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < datas.length; i++) {
      t.ok((await engine.getBuffer(`pool/${round}-${i}.bin`)).equals(datas[i]!), `round ${round} object ${i}`);
    }
  }
});
