import net from 'node:net';
import t from 'tap';

import { StoreError, toStoreError } from '../../src/store/errors.js';
import { ObjectStore } from '../../src/store/store.js';
import { randomBucketName, storeFor, withS3 } from '../helpers/s3server.js';

const { store, bucket, server } = await withS3(t);

/** A port on 127.0.0.1 that nothing listens on (bound once, then released). */
async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

t.test('missing bucket is NoSuchBucket', async (t) => {
  const missing = randomBucketName();
  await t.rejects(store.headBucket(missing), { code: 'NoSuchBucket', status: 404 });
  await t.rejects(store.list(missing), { code: 'NoSuchBucket', bucket: missing });
  await t.rejects(store.put(missing, 'k', Buffer.from('x')), { code: 'NoSuchBucket' });
  const err = await store.list(missing).catch((e: unknown) => e);
  t.ok(err instanceof StoreError);
  t.match((err as Error).message, missing, 'message names the bucket');
  t.match((err as Error).message, server.endpoint, 'message names the endpoint');
  t.notMatch((err as Error).message, /\n/, 'one line');
});

t.test('missing key: head is null, reads are NoSuchKey', async (t) => {
  t.equal(await store.head(bucket, 'nope'), null);
  await t.rejects(store.getObject(bucket, 'nope'), { code: 'NoSuchKey', key: 'nope', op: 'GetObject' });
  await t.rejects(store.getRange(bucket, 'nope', 0, 10), { code: 'NoSuchKey' });
  await t.rejects(store.getStream(bucket, 'nope'), { code: 'NoSuchKey' });
});

t.test('unknown access key is InvalidCredentials, and the secret never shows', async (t) => {
  const secret = 'SUPER-SECRET-VALUE-123';
  const bad = storeFor(server, { credentials: { accessKeyId: 'NOT-S3RVER', secretAccessKey: secret } });
  t.teardown(() => bad.destroy());
  const err = await bad.list(bucket).catch((e: unknown) => e);
  t.match(err, { name: 'StoreError', code: 'InvalidCredentials', s3Code: 'InvalidAccessKeyId', status: 403 });
  t.notMatch((err as Error).message, secret);
  t.notMatch(JSON.stringify(err), secret);
});

t.test('closed port is EndpointUnreachable, quickly and without retries', async (t) => {
  const port = await closedPort();
  const endpoint = `http://127.0.0.1:${port}`;
  const unreachable = new ObjectStore({
    endpoint,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    maxAttempts: 1,
    connectTimeoutMs: 1000,
    requestTimeoutMs: 2000,
  });
  t.teardown(() => unreachable.destroy());
  const started = Date.now();
  const err = await unreachable.head(bucket, 'k').catch((e: unknown) => e);
  t.match(err, { name: 'StoreError', code: 'EndpointUnreachable', s3Code: 'ECONNREFUSED' });
  t.match((err as Error).message, endpoint);
  t.ok(Date.now() - started < 5000, 'fails fast');
  t.equal(unreachable.stats.requests.HeadObject, 1);
  t.equal(unreachable.stats.retries, 0);
});

t.test('endpoint with credentials in it is redacted from messages', async (t) => {
  const port = await closedPort();
  const leaky = new ObjectStore({
    endpoint: `http://user:hunter2@127.0.0.1:${port}`,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    maxAttempts: 1,
  });
  t.teardown(() => leaky.destroy());
  const err = await leaky.headBucket(bucket).catch((e: unknown) => e);
  t.match(err, { code: 'EndpointUnreachable' });
  t.notMatch((err as Error).message, 'hunter2');
});

t.test('invalid endpoint is rejected up front', async (t) => {
  t.throws(() => new ObjectStore({ endpoint: 'localhost:9000' }), TypeError);
  t.throws(() => new ObjectStore({ endpoint: 'ftp://example.com' }), TypeError);
});

t.test('toStoreError maps SDK-shaped errors', async (t) => {
  const ctx = { op: 'GetObject', bucket: 'b', key: 'k', endpoint: 'https://s3.example.com' };
  const sdk = (name: string, status: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
  const cases: [unknown, string][] = [
    [sdk('NoSuchKey', 404), 'NoSuchKey'],
    [sdk('NotFound', 404), 'NoSuchKey'],
    [sdk('NoSuchUpload', 404), 'NoSuchUpload'],
    [sdk('AccessDenied', 403), 'AccessDenied'],
    [sdk('Forbidden', 403), 'AccessDenied'],
    [sdk('SignatureDoesNotMatch', 403), 'InvalidCredentials'],
    [sdk('PreconditionFailed', 412), 'PreconditionFailed'],
    [sdk('ConditionalRequestConflict', 409), 'PreconditionFailed'],
    [sdk('InvalidRange', 416), 'InvalidRange'],
    [sdk('NotImplemented', 501), 'NotImplemented'],
    [sdk('SlowDown', 503), 'Throttled'],
    [sdk('InternalError', 500), 'ServerError'],
    [sdk('BadGateway', 502), 'ServerError'],
    [sdk('BucketAlreadyExists', 409), 'Unknown'],
    [Object.assign(new Error('getaddrinfo ENOTFOUND s3.example.com'), { code: 'ENOTFOUND' }), 'EndpointUnreachable'],
    [Object.assign(new Error('x'), { code: 'EAI_AGAIN' }), 'EndpointUnreachable'],
    [
      Object.assign(new Error('the request socket did not establish a connection with the server within 1000 ms'), {
        name: 'TimeoutError',
      }),
      'EndpointUnreachable',
    ],
    [Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }), 'ServerError'],
    [new Error('weird'), 'Unknown'],
  ];
  for (const [input, code] of cases) {
    const mapped = toStoreError(input, ctx);
    t.equal(mapped.code, code, `${(input as Error).name}/${(input as Error).message} -> ${code}`);
    t.equal(mapped.cause, input, 'keeps the original as cause');
  }
  const mapped = toStoreError(sdk('NoSuchBucket', 404), { op: 'ListObjectsV2', bucket: 'b' });
  t.equal(mapped.code, 'NoSuchBucket');
  t.equal(toStoreError(sdk('NotFound', 404), { op: 'HeadBucket', bucket: 'b' }).code, 'NoSuchBucket', 'bare 404 on a bucket op');
  t.equal(toStoreError(mapped, ctx), mapped, 'StoreErrors pass through');
});
