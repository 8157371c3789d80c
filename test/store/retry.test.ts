import { createHash, randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';

import { startS3Proxy, type ProxyAction, type SeenRequest } from '../helpers/s3-proxy.js';
import { storeFor, withS3 } from '../helpers/s3server.js';

const { store: direct, bucket, server } = await withS3(t);

/** A store talking to s3rver through a fault-injecting proxy. */
async function throughProxy(
  t: Test,
  decide: (req: SeenRequest, index: number) => ProxyAction,
  storeOptions: Parameters<typeof storeFor>[1] = {},
) {
  const proxy = await startS3Proxy(server.endpoint, { decide });
  t.teardown(() => proxy.stop());
  const store = storeFor(proxy, storeOptions);
  t.teardown(() => store.destroy());
  return { proxy, store };
}

t.test('503 SlowDown is retried with backoff until it succeeds', async (t) => {
  const { proxy, store } = await throughProxy(t, (_req, i) =>
    i < 2 ? { kind: 'error', status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' } : { kind: 'forward' },
  );
  const data = randomBytes(1000);
  const { etag } = await store.put(bucket, 'retry/slowdown', data);
  t.ok((await direct.getObject(bucket, 'retry/slowdown')).body.equals(data), 'the write landed');
  t.equal(etag, `"${createHash('md5').update(data).digest('hex')}"`);
  t.equal(store.stats.retries, 2, 'two throttled attempts were retried');
  t.equal(store.stats.requests.PutObject, 3, 'three HTTP requests for one put');
  t.equal(proxy.seen.length, 3);
});

t.test('throttling that never ends surfaces as Throttled after maxAttempts', async (t) => {
  const { proxy, store } = await throughProxy(t, () => ({ kind: 'error', status: 503, code: 'SlowDown' }), { maxAttempts: 2 });
  await t.rejects(store.head(bucket, 'retry/never'), { code: 'Throttled', status: 503 });
  t.equal(proxy.seen.length, 2);
  t.equal(store.stats.retries, 1);
});

t.test('500 InternalError is retried', async (t) => {
  const { store } = await throughProxy(t, (_req, i) =>
    i === 0 ? { kind: 'error', status: 500, code: 'InternalError' } : { kind: 'forward' },
  );
  await direct.put(bucket, 'retry/500', Buffer.from('ok'));
  t.equal((await store.head(bucket, 'retry/500'))?.size, 2);
  t.equal(store.stats.retries, 1);
});

t.test('a connection reset before any response is retried by the SDK', async (t) => {
  const { store } = await throughProxy(t, (_req, i) => (i === 0 ? { kind: 'reset-before-response' } : { kind: 'forward' }));
  await direct.put(bucket, 'retry/hangup', Buffer.from('hello'));
  t.ok((await store.getObject(bucket, 'retry/hangup')).body.equals(Buffer.from('hello')));
  t.equal(store.stats.retries, 1);
});

t.test('getRange resumes after the connection resets mid-body', async (t) => {
  const data = randomBytes(1024 * 1024);
  const { etag } = await direct.put(bucket, 'retry/midbody', data);
  const { proxy, store } = await throughProxy(t, (req, i) =>
    i === 0 && req.method === 'GET' ? { kind: 'reset-mid-body', afterBytes: 300_000 } : { kind: 'forward' },
  );
  const start = 100;
  const end = 900_000;
  const got = await store.getRange(bucket, 'retry/midbody', start, end);
  t.equal(got.length, end - start);
  t.ok(got.equals(data.subarray(start, end)), 'bytes are exactly right');
  t.equal(store.stats.retries, 1, 'one resumption');
  t.equal(proxy.seen.length, 2);

  const [first, second] = proxy.seen;
  t.equal(first.headers.range, `bytes=${start}-${end - 1}`);
  const resumedAt = Number(/^bytes=(\d+)-/.exec(String(second.headers.range))?.[1]);
  t.ok(resumedAt > start && resumedAt <= start + 300_000, `resumed from byte ${resumedAt}, not from scratch`);
  t.equal(second.headers.range, `bytes=${resumedAt}-${end - 1}`);
  t.equal(second.headers['if-match'], etag, 'the resumed read is pinned to the same object version');
});

t.test('getObject also survives a mid-body reset', async (t) => {
  const data = randomBytes(600_000);
  await direct.put(bucket, 'retry/midbody-whole', data);
  const { store } = await throughProxy(t, (req, i) =>
    i === 0 && req.method === 'GET' ? { kind: 'reset-mid-body', afterBytes: 200_000 } : { kind: 'forward' },
  );
  const got = await store.getObject(bucket, 'retry/midbody-whole');
  t.ok(got.body.equals(data));
  t.equal(got.info.size, data.length);
  t.equal(store.stats.retries, 1);
});

t.test('getRange gives up after maxAttempts body failures', async (t) => {
  const data = randomBytes(200_000);
  await direct.put(bucket, 'retry/always-reset', data);
  const { proxy, store } = await throughProxy(
    t,
    (req) => (req.method === 'GET' ? { kind: 'reset-mid-body', afterBytes: 1000 } : { kind: 'forward' }),
    { maxAttempts: 3 },
  );
  await t.rejects(store.getRange(bucket, 'retry/always-reset', 0, 200_000), { name: 'StoreError', code: 'ServerError' });
  t.equal(proxy.seen.length, 3, 'three attempts in total');
});

t.test('an abort signal stops getRange without wrapping the abort', async (t) => {
  await direct.put(bucket, 'retry/abort', randomBytes(1000));
  const { store } = await throughProxy(t, () => ({ kind: 'forward' }));
  const controller = new AbortController();
  controller.abort();
  const err = await store.getRange(bucket, 'retry/abort', 0, 10, { signal: controller.signal }).catch((e: unknown) => e);
  t.equal((err as Error).name, 'AbortError');
});

t.test('requests carry the headers S3-compatible servers expect', async (t) => {
  const { proxy, store } = await throughProxy(t, () => ({ kind: 'forward' }));
  await store.put(bucket, 'hdr/a', Buffer.from('a'), { ifNoneMatch: '*' });
  await store.put(bucket, 'hdr/b', Buffer.from('b'));
  await store.deleteMany(bucket, ['hdr/a', 'hdr/b']);

  const [putA, putB, deleteObjects] = proxy.seen;
  t.equal(putA.headers['if-none-match'], '*', 'conditional create is sent as If-None-Match');
  t.notOk('x-amz-checksum-crc32' in putB.headers, 'no flexible checksum on plain puts');
  t.equal(deleteObjects.method, 'POST');
  t.match(deleteObjects.url, /\?delete/);
  t.match(String(deleteObjects.headers['content-md5']), /^[A-Za-z0-9+/]{22}==$/, 'DeleteObjects carries Content-MD5');
  t.equal(await direct.head(bucket, 'hdr/a'), null);
});

t.test('412 from the server is PreconditionFailed', async (t) => {
  const { store } = await throughProxy(t, () => ({ kind: 'error', status: 412, code: 'PreconditionFailed' }));
  await t.rejects(store.put(bucket, 'cond/exists', Buffer.from('x'), { ifNoneMatch: '*' }), {
    code: 'PreconditionFailed',
    status: 412,
  });
  t.equal(store.stats.retries, 0, 'precondition failures are not retried');
});
