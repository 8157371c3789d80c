import { mkdtemp, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

import { startEmbeddedS3 } from '../../src/store/embedded-s3.js';
import { startS3Server, storeFor, withS3 } from '../helpers/s3server.js';

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function answers(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    http
      .get(endpoint, { agent: false, timeout: 1000 }, (res) => {
        res.resume();
        resolve(true);
      })
      .on('error', () => resolve(false));
  });
}

t.test('embedded S3 runs in its own process and persists data in its directory', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-embedded-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  const first = await startEmbeddedS3({ dir, buckets: ['demo'] });
  t.teardown(() => first.stop());
  t.not(first.pid, process.pid, 'separate process');
  t.ok(isAlive(first.pid));
  t.match(first.endpoint, /^http:\/\/127\.0\.0\.1:\d+$/);
  t.equal(first.accessKeyId, 'S3RVER');

  const store = storeFor(first);
  await store.headBucket('demo'); // created at startup
  await store.put('demo', 'kept', Buffer.from('still here'));
  store.destroy();
  await first.stop();
  t.notOk(isAlive(first.pid), 'process gone after stop');
  t.notOk(await answers(first.endpoint), 'port closed after stop');
  await first.stop(); // idempotent

  const second = await startEmbeddedS3({ dir, buckets: ['demo'] });
  t.teardown(() => second.stop());
  const again = storeFor(second);
  t.teardown(() => again.destroy());
  t.equal((await again.getObject('demo', 'kept')).body.toString(), 'still here', 'data survived a restart');
});

t.test('startup failure is reported, not hung on', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-embedded-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const running = await startEmbeddedS3({ dir });
  t.teardown(() => running.stop());
  await t.rejects(startEmbeddedS3({ dir, port: running.port }), /exited during startup.*EADDRINUSE/);
});

t.test('test harness server: fresh directory, removed on stop', async (t) => {
  const server = await startS3Server();
  t.teardown(() => server.stop());
  t.ok((await stat(server.dir)).isDirectory());
  t.ok(await answers(server.endpoint));
  await server.stop();
  await t.rejects(stat(server.dir), { code: 'ENOENT' });
  t.notOk(await answers(server.endpoint));
});

t.test('CopyObject behaves as on S3: the new content\'s ETag, a new LastModified', async (t) => {
  const { store, bucket } = await withS3(t);
  const a = await store.put(bucket, 'a', Buffer.from('content A'));
  const b = await store.put(bucket, 'b', Buffer.from('content B, longer'));
  t.not(a.etag, b.etag);
  const copied = await store.copy(bucket, 'a', 'b', { metadata: { x: '1' }, metadataDirective: 'REPLACE' });
  t.equal(copied.etag, a.etag, 'copy onto an existing key: ETag of the copied content (s3rver kept the old one)');
  const head = await store.head(bucket, 'b');
  t.equal(head?.etag, a.etag, 'HEAD agrees');
  t.equal(head?.metadata.x, '1');
  const before = (await store.head(bucket, 'a'))!.lastModified.getTime();
  await new Promise((r) => setTimeout(r, 1100)); // LastModified has one-second resolution in HEAD
  await store.copy(bucket, 'a', 'a', { metadata: { y: '2' }, metadataDirective: 'REPLACE' });
  const after = await store.head(bucket, 'a');
  t.ok(after!.lastModified.getTime() > before, 'a copy onto itself gets a new LastModified');
  t.equal(after!.etag, a.etag, 'same content, same ETag');
  t.equal((await store.getObject(bucket, 'a')).body.toString(), 'content A');
});
