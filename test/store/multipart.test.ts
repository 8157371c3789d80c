import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';

import { MAX_SINGLE_COPY_BYTES } from '../../src/store/store.js';
import { startS3Proxy } from '../helpers/s3-proxy.js';
import { storeFor, withS3 } from '../helpers/s3server.js';

const MiB = 1024 * 1024;
const { store, bucket, server } = await withS3(t);

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

t.test('multipart upload of three parts of at least 5 MiB', async (t) => {
  const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB), randomBytes(5 * MiB + 123)];
  const uploadId = await store.createMultipart(bucket, 'mp/three', {
    metadata: { kind: 'multipart' },
    contentType: 'application/octet-stream',
  });
  t.type(uploadId, 'string');
  t.ok(uploadId.length > 0);
  t.equal(await store.head(bucket, 'mp/three'), null, 'nothing visible before completion');

  // Upload out of order; completion sorts by part number.
  const etags = await Promise.all(parts.map((part, i) => store.uploadPart(bucket, 'mp/three', uploadId, i + 1, part)));
  t.equal(new Set(etags).size, 3, 'each part has its own ETag');
  const completed = await store.completeMultipart(
    bucket,
    'mp/three',
    uploadId,
    etags.map((etag, i) => ({ partNumber: i + 1, etag })).reverse(),
  );
  t.match(completed.etag, /^".+"$/, 'completed ETag is quoted');

  const whole = Buffer.concat(parts);
  const info = await store.head(bucket, 'mp/three');
  t.equal(info?.size, whole.length);
  t.same(info?.metadata, { kind: 'multipart' });
  t.equal(sha256((await store.getObject(bucket, 'mp/three')).body), sha256(whole), 'content is the parts in order');
  const boundary = 5 * MiB;
  t.ok(
    (await store.getRange(bucket, 'mp/three', boundary - 10, boundary + 10)).equals(whole.subarray(boundary - 10, boundary + 10)),
    'range across a part boundary',
  );
  t.ok(store.stats.bytesSent >= whole.length, 'part bytes are counted as sent');
});

t.test('an aborted upload leaves nothing visible or listed', async (t) => {
  const uploadId = await store.createMultipart(bucket, 'mp/aborted');
  await store.uploadPart(bucket, 'mp/aborted', uploadId, 1, randomBytes(1024));
  const partsDir = path.join(server.dir, bucket, '._S3rver_uploads', uploadId);
  t.ok(existsSync(partsDir), 'parts are stored while the upload is open');

  await store.abortMultipart(bucket, 'mp/aborted', uploadId);
  t.notOk(existsSync(partsDir), 'parts are gone');
  t.equal(await store.head(bucket, 'mp/aborted'), null, 'no object');
  const listed = await store.list(bucket, { prefix: 'mp/' });
  t.notOk(listed.objects.some((o) => o.key === 'mp/aborted'), 'not listed');
  await store.abortMultipart(bucket, 'mp/aborted', uploadId); // NoSuchUpload counts as aborted
  t.pass('a second abort is not an error');
  // s3rver cannot list uploads in progress.
  await t.rejects(store.listMultipartUploads(bucket), { code: 'NotImplemented' });
});

t.test('abort treats an already-gone upload as aborted', async (t) => {
  const proxy = await startS3Proxy(server.endpoint, {
    decide: (req) =>
      req.method === 'DELETE' ? { kind: 'error', status: 404, code: 'NoSuchUpload' } : { kind: 'forward' },
  });
  t.teardown(() => proxy.stop());
  const proxied = storeFor(proxy);
  t.teardown(() => proxied.destroy());
  await proxied.abortMultipart(bucket, 'mp/whatever', 'no-such-upload-id');
  t.equal(proxy.seen.length, 1, 'one DELETE sent');
  t.match(proxy.seen[0].url, /uploadId=no-such-upload-id/);
});

t.test('copyLarge copies through UploadPartCopy parts pinned to the source ETag', async (t) => {
  const proxy = await startS3Proxy(server.endpoint, { emulateUploadPartCopy: true });
  t.teardown(() => proxy.stop());
  const proxied = storeFor(proxy);
  t.teardown(() => proxied.destroy());

  const data = randomBytes(3 * MiB + 5000);
  const src = await proxied.put(bucket, 'big/src', data, { metadata: { origin: 'big' }, contentType: 'text/x-big' });
  const result = await proxied.copyLarge(bucket, 'big/src', 'big/dst', { partSize: MiB, concurrency: 2 });
  t.match(result.etag, /^".+"$/);
  const got = await proxied.getObject(bucket, 'big/dst');
  t.equal(sha256(got.body), sha256(data), 'content copied');
  t.same(got.info.metadata, { origin: 'big' }, 'source metadata carried over');
  t.equal(got.info.contentType, 'text/x-big');

  const partCopies = proxy.seen.filter((r) => r.method === 'PUT' && 'x-amz-copy-source' in r.headers);
  t.equal(partCopies.length, 4, '3 MiB + 5000 bytes in 1 MiB parts');
  t.same(
    partCopies.map((r) => r.headers['x-amz-copy-source-range']).sort(),
    [`bytes=0-${MiB - 1}`, `bytes=${MiB}-${2 * MiB - 1}`, `bytes=${2 * MiB}-${3 * MiB - 1}`, `bytes=${3 * MiB}-${3 * MiB + 4999}`].sort(),
  );
  t.ok(
    partCopies.every((r) => r.headers['x-amz-copy-source-if-match'] === src.etag),
    'every part is conditional on the source ETag',
  );
});

t.test('copy switches to multipart for sources over 5 GiB', async (t) => {
  const proxy = await startS3Proxy(server.endpoint, {
    emulateUploadPartCopy: true,
    decide: (req) =>
      req.method === 'PUT' && 'x-amz-copy-source' in req.headers && !req.url.includes('uploadId=')
        ? {
            kind: 'error',
            status: 400,
            code: 'InvalidRequest',
            message: 'The specified copy source is larger than the maximum allowable size for a copy source: 5368709120',
          }
        : { kind: 'forward' },
  });
  t.teardown(() => proxy.stop());
  const proxied = storeFor(proxy);
  t.teardown(() => proxied.destroy());

  const data = randomBytes(64 * 1024);
  await proxied.put(bucket, 'huge/src', data);
  await proxied.copy(bucket, 'huge/src', 'huge/dst-fallback');
  t.ok((await proxied.getObject(bucket, 'huge/dst-fallback')).body.equals(data), 'falls back after CopyObject refuses');
  t.ok(proxy.seen.some((r) => r.method === 'POST' && r.url.includes('uploads')), 'a multipart upload was started');

  const seenBefore = proxy.seen.length;
  await proxied.copy(bucket, 'huge/src', 'huge/dst-known', { sourceSize: MAX_SINGLE_COPY_BYTES + 1 });
  t.ok((await proxied.getObject(bucket, 'huge/dst-known')).body.equals(data));
  const plainCopies = proxy.seen
    .slice(seenBefore)
    .filter((r) => r.method === 'PUT' && 'x-amz-copy-source' in r.headers && !r.url.includes('uploadId='));
  t.equal(plainCopies.length, 0, 'a known size skips the doomed CopyObject');
});

t.test('copyLarge against plain s3rver fails with a typed error and leaves no object', async (t) => {
  await store.put(bucket, 'nocopy/src', randomBytes(1000));
  await t.rejects(store.copyLarge(bucket, 'nocopy/src', 'nocopy/dst', { partSize: 400 }), {
    name: 'StoreError',
    code: 'NotImplemented',
    op: 'UploadPartCopy',
  });
  t.equal(await store.head(bucket, 'nocopy/dst'), null);
});
