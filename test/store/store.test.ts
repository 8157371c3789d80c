import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import t from 'tap';

import { sameEtag } from '../../src/store/store.js';
import { withS3 } from '../helpers/s3server.js';

const { store, bucket } = await withS3(t);

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

const md5Etag = (data: Buffer) => `"${createHash('md5').update(data).digest('hex')}"`;

t.test('put, head and getObject round-trip data, metadata and content type', async (t) => {
  const data = randomBytes(10_000);
  const { etag } = await store.put(bucket, 'dir/obj.bin', data, {
    metadata: { 'fmt-version': '1', purpose: 'test' },
    contentType: 'application/x-s3cryptfs',
  });
  t.equal(etag, md5Etag(data), 'ETag is the quoted MD5, exactly as S3 sends it');

  const info = await store.head(bucket, 'dir/obj.bin');
  t.ok(info);
  t.equal(info!.size, data.length);
  t.equal(info!.etag, etag);
  t.same(info!.metadata, { 'fmt-version': '1', purpose: 'test' });
  t.equal(info!.contentType, 'application/x-s3cryptfs');
  t.ok(info!.lastModified instanceof Date && info!.lastModified.getTime() > 0);

  const got = await store.getObject(bucket, 'dir/obj.bin');
  t.ok(got.body.equals(data), 'body matches');
  t.equal(got.info.size, data.length);
  t.equal(got.info.etag, etag);
  t.same(got.info.metadata, { 'fmt-version': '1', purpose: 'test' });
});

t.test('getRange returns exact bytes at the boundaries', async (t) => {
  const data = randomBytes(4096 + 17);
  await store.put(bucket, 'range.bin', data);
  const size = data.length;
  // s3rver answers "bytes=0-0" with the whole object; the store must still return one byte.
  t.ok((await store.getRange(bucket, 'range.bin', 0, 1)).equals(data.subarray(0, 1)), 'first byte');
  t.ok((await store.getRange(bucket, 'range.bin', size - 1, size)).equals(data.subarray(size - 1)), 'last byte');
  t.ok((await store.getRange(bucket, 'range.bin', 0, size)).equals(data), 'whole object');
  t.ok((await store.getRange(bucket, 'range.bin', 1000, 3001)).equals(data.subarray(1000, 3001)), 'middle');
  t.equal((await store.getRange(bucket, 'range.bin', 5, 5)).length, 0, 'empty range needs no request');
});

t.test('getRange validates the range against the object', async (t) => {
  const data = randomBytes(100);
  const { etag } = await store.put(bucket, 'short.bin', data);
  await t.rejects(store.getRange(bucket, 'short.bin', 50, 101), { code: 'InvalidRange' }, 'past the end');
  await t.rejects(store.getRange(bucket, 'short.bin', 100, 200), { code: 'InvalidRange' }, 'starts at the end');
  await t.rejects(store.getRange(bucket, 'short.bin', 10, 5), RangeError, 'inverted range');
  t.ok((await store.getRange(bucket, 'short.bin', 10, 20, { ifMatch: etag })).equals(data.subarray(10, 20)), 'matching ifMatch');
  await t.rejects(
    store.getRange(bucket, 'short.bin', 10, 20, { ifMatch: '"0123456789abcdef0123456789abcdef"' }),
    { name: 'StoreError', code: 'PreconditionFailed' },
    'mismatching ifMatch',
  );
});

t.test('getStream streams whole objects and byte ranges', async (t) => {
  const data = randomBytes(300_000);
  const { etag } = await store.put(bucket, 'stream.bin', data);

  const whole = await store.getStream(bucket, 'stream.bin');
  t.equal(whole.info.size, data.length);
  t.equal(whole.info.etag, etag);
  t.ok((await drain(whole.stream)).equals(data), 'whole object');

  const ranged = await store.getStream(bucket, 'stream.bin', { start: 1234, endExclusive: 200_000, ifMatch: etag });
  t.equal(ranged.info.size, data.length, 'info.size is the object size, not the range size');
  t.ok((await drain(ranged.stream)).equals(data.subarray(1234, 200_000)), 'bounded range');

  const tail = await store.getStream(bucket, 'stream.bin', { start: 299_990 });
  t.ok((await drain(tail.stream)).equals(data.subarray(299_990)), 'open-ended range');

  const first = await store.getStream(bucket, 'stream.bin', { start: 0, endExclusive: 1 });
  t.ok((await drain(first.stream)).equals(data.subarray(0, 1)), 'single first byte despite s3rver sending everything');

  await t.rejects(store.getStream(bucket, 'stream.bin', { ifMatch: '"ffffffffffffffffffffffffffffffff"' }), {
    code: 'PreconditionFailed',
  });
});

t.test('put accepts strings and Uint8Arrays', async (t) => {
  const text = 'héllo wörld';
  await store.put(bucket, 'text', text);
  t.equal((await store.getObject(bucket, 'text')).body.toString('utf8'), text, 'multi-byte characters intact');
  const bytes = new Uint8Array([1, 2, 3, 4, 5]).subarray(1, 4);
  await store.put(bucket, 'u8', bytes);
  t.same([...(await store.getObject(bucket, 'u8')).body], [2, 3, 4], 'a subarray view uploads only its bytes');
});

t.test('empty objects', async (t) => {
  await store.put(bucket, 'empty', Buffer.alloc(0));
  const got = await store.getObject(bucket, 'empty');
  t.equal(got.body.length, 0);
  t.equal(got.info.size, 0);
  t.equal((await store.head(bucket, 'empty'))?.size, 0);
});

t.test('list with prefix, delimiter and paging', async (t) => {
  const listBucket = `${bucket}-list`;
  await store.createBucket(listBucket);
  const pagedKeys = Array.from({ length: 25 }, (_, i) => `p/${String(i).padStart(2, '0')}`);
  const otherKeys = ['a/1', 'a/2', 'a/b/3', 'c', 'd/4'];
  for (const key of [...pagedKeys, ...otherKeys]) await store.put(listBucket, key, Buffer.from(key));

  const top = await store.list(listBucket, { delimiter: '/' });
  t.same(top.objects.map((o) => o.key), ['c'], 'only top-level objects');
  t.same(top.prefixes, ['a/', 'd/', 'p/'], 'common prefixes');
  t.equal(top.nextContinuationToken, undefined);

  const underA = await store.list(listBucket, { prefix: 'a/', delimiter: '/' });
  t.same(underA.objects.map((o) => o.key), ['a/1', 'a/2']);
  t.same(underA.prefixes, ['a/b/']);
  t.equal(underA.objects[0].size, 3);
  t.ok(sameEtag(underA.objects[0].etag, md5Etag(Buffer.from('a/1'))), 'listed ETag');

  const first = await store.list(listBucket, { prefix: 'p/', maxKeys: 10 });
  t.equal(first.objects.length, 10);
  t.ok(first.nextContinuationToken, 'truncated page has a token');
  const second = await store.list(listBucket, { prefix: 'p/', maxKeys: 10, continuationToken: first.nextContinuationToken });
  t.same(second.objects.map((o) => o.key), pagedKeys.slice(10, 20));

  const pages = [];
  for await (const page of store.listAll(listBucket, { prefix: 'p/', maxKeys: 10 })) pages.push(page);
  t.equal(pages.length, 3, 'three pages of 10, 10, 5');
  t.same(pages.flatMap((p) => p.objects.map((o) => o.key)), pagedKeys, 'all keys, in order, once');

  const after = await store.list(listBucket, { startAfter: 'p/22' });
  t.same(after.objects.map((o) => o.key), ['p/23', 'p/24']);

  t.same((await store.deleteMany(listBucket, [...pagedKeys, ...otherKeys])).errors, []);
  await store.deleteBucket(listBucket);
  await t.rejects(store.headBucket(listBucket), { code: 'NoSuchBucket' });
});

t.test('copy within and across buckets, keeping or replacing metadata', async (t) => {
  const data = randomBytes(2048);
  await store.put(bucket, 'copy/src', data, { metadata: { origin: 'src' }, contentType: 'text/x-one' });

  const kept = await store.copy(bucket, 'copy/src', 'copy/kept');
  t.equal(kept.etag, md5Etag(data));
  const keptInfo = await store.head(bucket, 'copy/kept');
  t.same(keptInfo?.metadata, { origin: 'src' }, 'metadata copied');
  t.equal(keptInfo?.contentType, 'text/x-one');

  await store.copy(bucket, 'copy/src', 'copy/replaced', { metadata: { origin: 'replaced' }, contentType: 'text/x-two' });
  const replacedInfo = await store.head(bucket, 'copy/replaced');
  t.same(replacedInfo?.metadata, { origin: 'replaced' }, 'metadata replaced');
  t.equal(replacedInfo?.contentType, 'text/x-two');

  const otherBucket = `${bucket}-copy`;
  await store.createBucket(otherBucket);
  await store.copy(otherBucket, 'copy/src', 'from-other', { srcBucket: bucket });
  t.ok((await store.getObject(otherBucket, 'from-other')).body.equals(data), 'cross-bucket copy');

  // Only characters s3rver decodes correctly (it uses decodeURI, which leaves %2B etc. alone).
  await store.put(bucket, 'copy/key with spaces', data);
  await store.copy(bucket, 'copy/key with spaces', 'copy/spaced-dst');
  t.ok((await store.getObject(bucket, 'copy/spaced-dst')).body.equals(data), 'source key is URL-encoded');

  await t.rejects(store.copy(bucket, 'copy/missing', 'copy/x'), { code: 'NoSuchKey' });
});

t.test('delete and deleteMany (more than one batch)', async (t) => {
  await store.put(bucket, 'del/one', Buffer.from('1'));
  await store.delete(bucket, 'del/one');
  t.equal(await store.head(bucket, 'del/one'), null);
  await store.delete(bucket, 'del/one'); // deleting a missing key is not an error in S3

  const keys = Array.from({ length: 1005 }, (_, i) => `bulk/${String(i).padStart(4, '0')}`);
  await Promise.all(keys.slice(0, 20).map((key) => store.put(bucket, key, Buffer.from(key))));
  await store.put(bucket, 'bulk/zzz-keep', Buffer.from('keep'));
  const before = store.stats.requests.DeleteObjects ?? 0;
  const { errors } = await store.deleteMany(bucket, keys);
  t.same(errors, []);
  t.equal((store.stats.requests.DeleteObjects ?? 0) - before, 2, '1005 keys need two DeleteObjects requests');
  const left = await store.list(bucket, { prefix: 'bulk/' });
  t.same(left.objects.map((o) => o.key), ['bulk/zzz-keep']);
  t.same(await store.deleteMany(bucket, []), { errors: [] }, 'no keys, no request');
});

t.test('stats count requests and bytes', async (t) => {
  const before = structuredClone(store.stats);
  const data = randomBytes(5000);
  await store.put(bucket, 'stats.bin', data);
  await store.getRange(bucket, 'stats.bin', 0, 100);
  t.equal(store.stats.bytesSent - before.bytesSent, 5000);
  t.ok(store.stats.bytesReceived - before.bytesReceived >= 100);
  t.equal(store.stats.requests.PutObject - (before.requests.PutObject ?? 0), 1);
  t.equal(store.stats.retries, before.retries, 'no retries against a healthy server');
});

t.test('ifNoneMatch "*" creates only if the key is free', async (t) => {
  const first = await store.put(bucket, 'create-only', Buffer.from('first'), { ifNoneMatch: '*' });
  t.match(first.etag, /^".+"$/);
  await t.rejects(store.put(bucket, 'create-only', Buffer.from('second'), { ifNoneMatch: '*' }), {
    code: 'PreconditionFailed',
    status: 412,
  });
  t.equal((await store.getObject(bucket, 'create-only')).body.toString(), 'first', 'not overwritten');

  const racers = await Promise.allSettled(
    Array.from({ length: 8 }, (_, i) => store.put(bucket, 'create-race', Buffer.from(`racer ${i}`), { ifNoneMatch: '*' })),
  );
  const winners = racers.filter((r) => r.status === 'fulfilled');
  t.equal(winners.length, 1, 'exactly one concurrent create wins');
  t.ok(
    racers.every((r) => r.status === 'fulfilled' || (r.reason as { code?: string }).code === 'PreconditionFailed'),
    'the others fail with PreconditionFailed',
  );
});
