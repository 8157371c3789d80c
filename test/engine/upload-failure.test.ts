import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';

import { Engine } from '../../src/engine/index.js';
import { isStoreError, storeError } from '../../src/store/errors.js';
import { ObjectStore } from '../../src/store/store.js';
import { deriveKeys } from '../../src/format/index.js';
import { withS3 } from '../helpers/s3server.js';
import { bucketConfig, MiB } from './fixtures/setup.js';

/** The real store, with part uploads that can fail or stall, and a record of multipart calls. */
class ScriptedStore extends ObjectStore {
  failPart = 0;
  partDelayMs = 0;
  created: string[] = [];
  aborted: string[] = [];
  inFlight = 0;
  maxInFlight = 0;

  override async createMultipart(...args: Parameters<ObjectStore['createMultipart']>): Promise<string> {
    const id = await super.createMultipart(...args);
    this.created.push(id);
    return id;
  }

  override async uploadPart(...args: Parameters<ObjectStore['uploadPart']>): Promise<string> {
    const [bucket, key, , partNumber] = args;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.partDelayMs) await new Promise((r) => setTimeout(r, this.partDelayMs));
      if (partNumber === this.failPart) throw storeError('ServerError', 'injected failure of part 2', { op: 'UploadPart', bucket, key });
      return await super.uploadPart(...args);
    } finally {
      this.inFlight--;
    }
  }

  override async abortMultipart(bucket: string, key: string, uploadId: string): Promise<void> {
    this.aborted.push(uploadId);
    try {
      await super.abortMultipart(bucket, key, uploadId);
    } catch (err) {
      if (!isStoreError(err, 'NotImplemented')) throw err; // s3rver has no AbortMultipartUpload
    }
  }
}

async function setup(t: Test) {
  const s3 = await withS3(t);
  const store = new ScriptedStore({ endpoint: s3.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  t.teardown(() => store.destroy());
  const keys = deriveKeys(randomBytes(32));
  await Engine.init(store, s3.bucket, 'x', bucketConfig(keys));
  const engine = await Engine.open({ store, bucket: s3.bucket, prefix: 'x', keys, partSize: 5 * MiB, uploadConcurrency: 2 });
  const nothingLeft = async (path: string) => {
    t.equal(await engine.stat(path), null, 'no object is visible');
    t.same((await engine.list('')).files, [], 'nothing listed');
    try {
      t.same(await store.listMultipartUploads(s3.bucket), [], 'no multipart upload remains');
    } catch (err) {
      if (!isStoreError(err, 'NotImplemented')) throw err;
      t.ok(store.aborted.length > 0 && store.aborted.every((id) => store.created.includes(id)), 'the upload was aborted (server cannot list uploads)');
    }
  };
  return { ...s3, store, engine, nothingLeft };
}

t.test('a failing part upload rejects close() and aborts the upload', async (t) => {
  const { engine, store, nothingLeft } = await setup(t);
  store.failPart = 2;
  const writer = engine.createWriter('fail.bin');
  let writeError: unknown = null;
  try {
    for (let i = 0; i < 30; i++) await writer.write(randomBytes(MiB));
  } catch (err) {
    writeError = err;
  }
  t.match(writeError, { code: 'ServerError', message: /injected/ }, 'a later write() reports the failure');
  await t.rejects(writer.close(), { code: 'ServerError', message: /injected/ });
  t.same(store.aborted, store.created, 'the multipart upload was aborted');
  t.equal(store.created.length, 1);
  t.equal(engine.stats.uploadsInFlight, 0);
  await nothingLeft('fail.bin');
});

t.test('abort() mid-way leaves nothing', async (t) => {
  const { engine, store, nothingLeft } = await setup(t);
  const writer = engine.createWriter('aborted.bin');
  for (let i = 0; i < 12; i++) await writer.write(randomBytes(MiB));
  await writer.abort();
  await t.rejects(writer.close(), { code: 'ABORTED' });
  await t.rejects(writer.write(Buffer.from('more')), { code: 'ABORTED' });
  t.equal(store.aborted.length, 1);
  await nothingLeft('aborted.bin');
});

t.test('an abort signal fails the writer', async (t) => {
  const { engine, store, nothingLeft } = await setup(t);
  const ac = new AbortController();
  const writer = engine.createWriter('signalled.bin', { signal: ac.signal });
  for (let i = 0; i < 11; i++) await writer.write(randomBytes(MiB));
  ac.abort();
  await t.rejects(writer.close(), { code: 'ABORTED' });
  t.equal(store.aborted.length, 1);
  await nothingLeft('signalled.bin');
  // aborting a single-PUT-sized writer: nothing was sent at all
  const ac2 = new AbortController();
  const small = engine.createWriter('small.bin', { signal: ac2.signal });
  await small.write(Buffer.from('tiny'));
  ac2.abort();
  await t.rejects(small.close(), { code: 'ABORTED' });
  t.equal(await engine.stat('small.bin'), null);
});

t.test('write() waits while uploadConcurrency parts are in flight', async (t) => {
  const { engine, store } = await setup(t);
  store.partDelayMs = 150;
  const writer = engine.createWriter('slow.bin');
  const data = randomBytes(31 * MiB);
  let seen = 0;
  for (let pos = 0; pos < data.length; pos += MiB) {
    await writer.write(data.subarray(pos, pos + MiB));
    seen = Math.max(seen, store.inFlight);
  }
  t.ok(seen <= 2, 'at most 2 parts in flight whenever write() returns');
  await writer.close();
  t.equal(store.maxInFlight, 2, 'concurrency reached but not exceeded');
  t.equal(engine.stats.partsUploaded, 7);
  t.ok((await engine.getBuffer('slow.bin')).equals(data));
});
