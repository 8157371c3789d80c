import t from 'tap';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

import { Engine, type EngineWarning } from '../../src/engine/index.js';
import { deriveKeys, IntegrityError, openBucketKeys, wrapBucketKeys } from '../../src/format/index.js';
import { bucketConfig, CHUNK, collect, setupEngine } from './fixtures/setup.js';
import { withS3 } from '../helpers/s3server.js';

async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) yield* walk(full);
    else yield full;
  }
}

t.test('the server never sees plaintext contents, names or attributes', async (t) => {
  const { engine, server } = await setupEngine(t, { partSize: 5 * 1024 * 1024 });
  const marker = 'PLAINTEXT-MARKER-7f3a';
  const secretName = 'secret-diary-entry';
  const small = Buffer.from(marker.repeat(1000));
  const big = Buffer.from(marker.repeat(Math.ceil((12 * 1024 * 1024) / marker.length)));
  await engine.putBuffer(`${secretName}/notes-${secretName}.txt`, small, { attributes: { owner: 'attr-' + secretName } });
  await engine.putBuffer(`${secretName}/big.txt`, big);
  await engine.mkdirMarker(`empty-${secretName}`);
  await engine.copy(`${secretName}/big.txt`, `${secretName}/copy-${secretName}.txt`);
  t.ok(engine.stats.multipartUploads >= 1, 'the multipart path is covered too');

  const needles = [marker, secretName, 'notes-', 'big.txt'].map((s) => Buffer.from(s));
  let files = 0;
  for await (const file of walk(server.dir)) {
    files++;
    const bytes = await readFile(file);
    for (const needle of needles) {
      if (bytes.includes(needle) || file.includes(needle.toString())) t.fail(`"${needle}" found in ${path.relative(server.dir, file)}`);
    }
  }
  t.ok(files > 4, `scanned ${files} files of the s3rver data directory`);
  // sanity: the scan would have found it
  t.ok((await engine.getBuffer(`${secretName}/big.txt`)).includes(needles[0]));
  t.same((await engine.stat(`${secretName}/notes-${secretName}.txt`))?.attributes, { owner: 'attr-' + secretName });
});

t.test('open: NOT_INITIALIZED, WRONG_KEY, ALREADY_INITIALIZED, key rotation', async (t) => {
  const { store, bucket } = await withS3(t);
  const keys = deriveKeys(randomBytes(32));
  await t.rejects(Engine.open({ store, bucket, prefix: 'p', keys }), { name: 'EngineError', code: 'NOT_INITIALIZED', message: /s3cryptfs init/ });
  await t.rejects(Engine.open({ store, bucket: 'no-such-bucket-x', prefix: 'p', keys }), { name: 'StoreError', code: 'NoSuchBucket' });
  const config = bucketConfig(keys);
  await Engine.init(store, bucket, 'p', config);
  await t.rejects(Engine.init(store, bucket, 'p/', config), { code: 'ALREADY_INITIALIZED' });
  const other = deriveKeys(randomBytes(32));
  await t.rejects(Engine.open({ store, bucket, prefix: 'p', keys: other }), {
    code: 'WRONG_KEY',
    message: `the master key does not match this bucket (key id ${other.keyId.toString('hex')}, bucket expects ${keys.keyId.toString('hex')})`,
  });

  // rotation: objects written under the old key stay readable with it as a read key. Names and
  // attributes use the bucket keys, which the config holds wrapped for each listed master key.
  const plainConfig = bucketConfig(keys, 'aes-siv');
  await Engine.init(store, bucket, 'plain', plainConfig);
  const engine = await Engine.open({ store, bucket, prefix: 'plain', keys });
  await engine.putBuffer('old.txt', Buffer.from('old data'), { attributes: { a: '1' } });
  const rotated = {
    ...plainConfig,
    keyIds: [other.keyId.toString('hex'), keys.keyId.toString('hex')],
    bucketKeys: { ...plainConfig.bucketKeys, [other.keyId.toString('hex')]: wrapBucketKeys(other, openBucketKeys(plainConfig, [keys])) },
  };
  const next = await Engine.open({ store, bucket, prefix: 'plain', keys: other, readKeys: [keys], config: rotated });
  t.equal((await next.getBuffer('old.txt')).toString(), 'old data', 'old object readable via readKeys');
  t.same((await next.stat('old.txt'))?.attributes, { a: '1' });
  await next.putBuffer('new.txt', Buffer.from('new data'));
  t.equal((await next.getBuffer('new.txt')).toString(), 'new data');
  const rotatedNoOld = await Engine.open({ store, bucket, prefix: 'plain', keys: other, config: rotated });
  await t.rejects(rotatedNoOld.getBuffer('old.txt'), { name: 'IntegrityError', code: 'KEY_ID_MISMATCH' });
});

t.test('tampered objects are refused', async (t) => {
  const { engine, store, bucket } = await setupEngine(t, { readaheadMaxBytes: 0 });
  const data = randomBytes(4 * CHUNK + 100);
  await engine.putBuffer('t.bin', data);
  const key = engine.objectKey('t.bin');
  const original = (await store.getObject(bucket, key)).body;

  // one flipped byte in chunk 2
  const flipped = Buffer.from(original);
  flipped[132 + 2 * (CHUNK + 16) + 7] ^= 1;
  await store.put(bucket, key, flipped);
  const reader = await engine.openReader('t.bin');
  t.ok((await reader.read(0, 100)).equals(data.subarray(0, 100)), 'untouched chunks still read');
  await t.rejects(reader.read(2 * CHUNK, 10), { name: 'IntegrityError', code: 'CHUNK_TAMPERED' });
  await t.rejects(engine.getBuffer('t.bin'), IntegrityError);
  await t.rejects(engine.verify('t.bin'), { code: 'CHUNK_TAMPERED' });
  await t.rejects(collect(engine.readStream('t.bin', { start: 2 * CHUNK + 5, end: 2 * CHUNK + 9 })), { code: 'CHUNK_TAMPERED' });

  // cut after a full chunk: the new last chunk is not marked final
  await store.put(bucket, key, original.subarray(0, 132 + 3 * (CHUNK + 16)));
  await t.rejects(engine.verify('t.bin'), { code: 'TRUNCATED' });
  const cut = await engine.openReader('t.bin');
  await t.rejects(cut.read(2 * CHUNK, 10), { code: 'TRUNCATED' });

  // swapped chunks
  const swapped = Buffer.from(original);
  original.copy(swapped, 132, 132 + (CHUNK + 16), 132 + 2 * (CHUNK + 16));
  original.copy(swapped, 132 + (CHUNK + 16), 132, 132 + (CHUNK + 16));
  await store.put(bucket, key, swapped);
  await t.rejects((await engine.openReader('t.bin')).read(0, 10), { code: 'CHUNK_REORDERED' });

  // impossible size: stat throws, listing skips with a warning
  await store.put(bucket, key, original.subarray(0, original.length - 110)); // last chunk shorter than a tag
  await t.rejects(engine.stat('t.bin'), { name: 'IntegrityError', code: 'INVALID_SIZE' });
  await t.rejects(engine.getBuffer('t.bin'), { name: 'IntegrityError', code: 'INVALID_SIZE' });
  await t.rejects(engine.openReader('t.bin'), { name: 'IntegrityError', code: 'INVALID_SIZE' });
  const warnings: EngineWarning[] = [];
  const page = await engine.list('', { onWarning: (w) => warnings.push(w) });
  t.same(page.files, [], 'skipped');
  t.match(warnings, [{ code: 'INVALID_SIZE', key }]);

  // attributes moved from another object
  await engine.putBuffer('a.txt', Buffer.from('a'), { attributes: { mode: '0600' } });
  await engine.putBuffer('b.txt', Buffer.from('b'));
  const aInfo = await store.head(bucket, engine.objectKey('a.txt'));
  await store.copy(bucket, engine.objectKey('b.txt'), engine.objectKey('b.txt'), { metadata: aInfo!.metadata, metadataDirective: 'REPLACE' });
  await t.rejects(engine.stat('b.txt'), { code: 'ATTRIBUTES_TAMPERED' });

  // an object that is not ours at all
  await store.put(bucket, engine.objectKey('c.txt'), Buffer.alloc(132 + 16 + 5, 1));
  await t.rejects(engine.getBuffer('c.txt'), { code: 'BAD_MAGIC' });
});

t.test('listing skips names that do not decrypt', async (t) => {
  const { engine, store, bucket, prefix } = await setupEngine(t);
  await engine.putBuffer('good.txt', Buffer.from('x'));
  await store.put(bucket, `${prefix}/not-encrypted.txt`, Buffer.alloc(200));
  await store.put(bucket, `${prefix}/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`, Buffer.alloc(200));
  const warnings: EngineWarning[] = [];
  const page = await engine.list('', { onWarning: (w) => warnings.push(w) });
  t.same(page.files.map((f) => f.path), ['good.txt']);
  t.equal(warnings.length, 2);
  t.ok(warnings.every((w) => w.code === 'BAD_NAME'));
});
