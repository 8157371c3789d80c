/**
 * Key rotation against s3rver (UploadPartCopy emulated by test/helpers/s3-proxy.ts): objects of 0 B,
 * small, and more than 3 parts; interrupted after two objects and resumed; then everything reads
 * under the new key alone, names and attributes unchanged, and the old key is refused.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Engine } from '../../src/engine/index.js';
import {
  CONFIG_OBJECT_NAME, decryptBuffer, deriveKeys, HEADER_SIZE, headerKeyId, newBucketConfig, openObjectHeader, parseConfig,
} from '../../src/format/index.js';
import { readConfig, rotateKeys, type RotateEvent } from '../../src/ops/rotate.js';
import { startS3Proxy } from '../helpers/s3-proxy.js';
import { storeFor, withS3 } from '../helpers/s3server.js';

const MiB = 1024 * 1024;

t.test('rotate a store: dry run, interrupted, resumed, verified; the old key refused', async (t) => {
  const s3 = await withS3(t);
  const proxy = await startS3Proxy(s3.endpoint, { emulateUploadPartCopy: true });
  t.teardown(() => proxy.stop());
  const store = storeFor(proxy);
  t.teardown(() => store.destroy());
  const { bucket } = s3;
  const prefix = 'vault/';

  const oldKeys = deriveKeys(randomBytes(32));
  const newKeys = deriveKeys(randomBytes(32));
  await Engine.init(store, bucket, prefix, newBucketConfig(oldKeys, { chunkSize: 64 * 1024 }));
  const before = await Engine.open({ store, bucket, prefix, keys: oldKeys, partSize: 5 * MiB });
  const files: Record<string, Buffer> = {
    'empty': Buffer.alloc(0),
    'small.txt': Buffer.from('small and sweet'),
    'docs/medium.bin': randomBytes(300 * 1024),
    'docs/deep/big.bin': randomBytes(16 * MiB + 12345), // 4 parts: 5 MiB uploaded, then 3 copies of <= 5 MiB
    'large-2.bin': randomBytes(6 * MiB),
  };
  for (const [path, data] of Object.entries(files)) await before.putBuffer(path, data, { attributes: { name: path } });
  await before.mkdirMarker('docs/empty-dir');
  const rawKeys = async () => (await store.list(bucket, { prefix })).objects.map((o) => o.key).sort();
  const keysBefore = await rawKeys();

  const opts = {
    store, bucket, prefix, oldKeys: [oldKeys], newKeys, concurrency: 2,
    rewriteBelow: 5 * MiB, copyPartSize: 5 * MiB,
  };

  // Dry run: counts, changes nothing.
  const dry = await rotateKeys({ ...opts, dryRun: true });
  t.equal(dry.total, 5, 'five objects (config and directory marker left out)');
  t.equal(dry.rewritten, 3, 'three would be rewritten whole');
  t.equal(dry.rebuilt, 2, 'two would be rebuilt by server-side copy');
  t.equal(dry.finished, false);
  t.same((await readConfig(store, bucket, prefix)).keyIds, [oldKeys.keyId.toString('hex')], 'dry run leaves the config alone');

  // Interrupted after two objects.
  const first = await rotateKeys({ ...opts, limit: 2 });
  t.equal(first.rewritten + first.rebuilt, 2, 'stopped after two objects');
  t.equal(first.finished, false, 'not finished');
  const during = await readConfig(store, bucket, prefix);
  t.same(during.keyIds, [newKeys.keyId.toString('hex'), oldKeys.keyId.toString('hex')], 'config lists the new key first, then the old one');
  t.same(Object.keys(during.bucketKeys).sort(), during.keyIds.slice().sort(), 'bucket keys wrapped for both');
  // Meanwhile both keys read everything.
  const withOld = await Engine.open({ store, bucket, prefix, keys: oldKeys, readKeys: [newKeys] });
  const withNew = await Engine.open({ store, bucket, prefix, keys: newKeys, readKeys: [oldKeys] });
  for (const [path, data] of Object.entries(files)) {
    t.ok((await withNew.getBuffer(path)).equals(data), `during rotation, new key (+old): ${path}`);
    t.ok((await withOld.getBuffer(path)).equals(data), `during rotation, old key (+new): ${path}`);
  }
  // A writer still on the old key adds an object mid-rotation: the resumed run must catch it.
  files['late.txt'] = Buffer.from('written with the old key during the rotation');
  await withOld.putBuffer('late.txt', files['late.txt']);

  const events: RotateEvent[] = [];
  const second = await rotateKeys({ ...opts, onEvent: (e) => events.push(e) });
  t.equal(second.failures.length, 0, 'no failures');
  t.equal(second.already, 2, 'the two objects of the first run are recognised by their header');
  t.equal(second.rewritten + second.rebuilt, 4, 'the rest rotated, including the late object');
  t.equal(first.rebuilt + second.rebuilt, 2, 'the two large ones by server-side copy (in either run: listing order is by encrypted name)');
  t.ok(events.some((e) => e.type === 'begin' && e.resumed), 'resumed');
  t.equal(second.finished, true, 'finished');

  const after = await readConfig(store, bucket, prefix);
  t.same(after.keyIds, [newKeys.keyId.toString('hex')], 'config lists the new key only');
  t.same(Object.keys(after.bucketKeys), [newKeys.keyId.toString('hex')], 'only its bucket keys entry');
  t.same((await rawKeys()).filter((k) => k !== before.objectKey('late.txt')), keysBefore, 'encrypted names unchanged, nothing added or renamed');

  // Every object under the new key alone: content, attributes, headers.
  const engine = await Engine.open({ store, bucket, prefix, keys: newKeys });
  for (const [path, data] of Object.entries(files)) {
    t.ok((await engine.getBuffer(path)).equals(data), `new key alone reads ${path}`);
    await engine.verify(path);
    const raw = await store.getRange(bucket, engine.objectKey(path), 0, HEADER_SIZE);
    t.ok(headerKeyId(raw).equals(newKeys.keyId), `${path}: header names the new key`);
    t.throws(() => openObjectHeader(oldKeys, raw), { code: 'KEY_ID_MISMATCH' }, `${path}: the old key cannot open its header`);
  }
  t.same((await engine.stat('docs/deep/big.bin'))?.attributes, { name: 'docs/deep/big.bin' }, 'attributes carried over');
  const big = (await store.getObject(bucket, engine.objectKey('docs/deep/big.bin'))).body;
  t.ok(decryptBuffer(newKeys, big).equals(files['docs/deep/big.bin']), 'the rebuilt object decrypts whole');
  t.equal((await store.getObject(bucket, prefix + CONFIG_OBJECT_NAME)).body.toString().includes(oldKeys.keyId.toString('hex')), false, 'old key id gone from the config');
  await t.rejects(Engine.open({ store, bucket, prefix, keys: oldKeys }), { code: 'WRONG_KEY' }, 'the old key is refused');
  t.ok(parseConfig((await store.getObject(bucket, prefix + CONFIG_OBJECT_NAME)).body.toString()), 'config valid');

  // Idempotent: running it again changes nothing.
  const third = await rotateKeys(opts);
  t.equal(third.already, 6);
  t.equal(third.rewritten + third.rebuilt, 0);
  t.equal(third.finished, true);
});
