// The lean data path (GetObject/PutObject/UploadPart over plain node:http, SigV4 by
// @smithy/signature-v4) against real s3rver, side by side with the SDK path it replaces.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import t, { type Test } from 'tap';

import { startS3Proxy, type ProxyAction, type SeenRequest } from '../helpers/s3-proxy.js';
import { storeFor, withS3 } from '../helpers/s3server.js';

const { store: lean, bucket, server } = await withS3(t, { dataPath: 'lean' });
const sdk = storeFor(server, { dataPath: 'sdk' });
t.teardown(() => sdk.destroy());

const object = randomBytes(3 * 1024 * 1024 + 17);
await sdk.put(bucket, 'lean/object', object);

async function readStream(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function throughProxy(t: Test, decide: (req: SeenRequest, index: number) => ProxyAction, maxAttempts?: number) {
  const proxy = await startS3Proxy(server.endpoint, { decide });
  t.teardown(() => proxy.stop());
  const store = storeFor(proxy, { dataPath: 'lean', maxAttempts });
  t.teardown(() => store.destroy());
  return { proxy, store };
}

/**
 * Forwards to s3rver; GET bodies stop after `afterBytes` for the first `stalls` GETs and the
 * connection then hangs (neither data nor close) until the client gives up.
 */
async function stallingForwarder(t: Test, afterBytes: number, stalls: number) {
  const target = new URL(server.endpoint);
  let stalled = 0;
  const requests: http.IncomingHttpHeaders[] = [];
  const srv = http.createServer((req, res) => {
    requests.push(req.headers);
    const stall = req.method === 'GET' && stalled < stalls;
    if (stall) stalled++;
    const up = http.request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers, agent: false },
      (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (!stall) return void ur.pipe(res);
        let sent = 0;
        ur.on('data', (chunk: Buffer) => {
          if (sent >= afterBytes) return;
          const piece = chunk.subarray(0, afterBytes - sent);
          sent += piece.length;
          res.write(piece);
        });
      },
    );
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  );
  return { endpoint: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, requests };
}

t.test('the data path follows dataPath and S3CRYPTFS_STORE_SDK', async (t) => {
  t.equal(lean.dataPath, 'lean');
  t.equal(sdk.dataPath, 'sdk');
  const saved = process.env.S3CRYPTFS_STORE_SDK;
  t.teardown(() => {
    if (saved === undefined) delete process.env.S3CRYPTFS_STORE_SDK;
    else process.env.S3CRYPTFS_STORE_SDK = saved;
  });
  process.env.S3CRYPTFS_STORE_SDK = '1';
  const viaEnv = storeFor(server);
  t.teardown(() => viaEnv.destroy());
  t.equal(viaEnv.dataPath, 'sdk', 'S3CRYPTFS_STORE_SDK=1 selects the SDK');
  delete process.env.S3CRYPTFS_STORE_SDK;
  const byDefault = storeFor(server);
  t.teardown(() => byDefault.destroy());
  t.equal(byDefault.dataPath, 'lean', 'lean by default');
});

t.test('whole and ranged reads are byte-exact and match the SDK path', async (t) => {
  const whole = await lean.getObject(bucket, 'lean/object');
  const viaSdk = await sdk.getObject(bucket, 'lean/object');
  t.ok(whole.body.equals(object), 'getObject');
  t.same(whole.info, viaSdk.info, 'same ObjectInfo as the SDK path');
  t.equal(whole.info.size, object.length);

  const ranges: [number, number][] = [
    [0, 1],
    [0, object.length],
    [object.length - 1, object.length],
    [12345, 1024 * 1024 + 3],
  ];
  for (let i = 0; i < 20; i++) {
    const a = Math.floor(Math.random() * object.length);
    const b = a + 1 + Math.floor(Math.random() * (object.length - a));
    ranges.push([a, b]);
  }
  for (const [a, b] of ranges) {
    const got = await lean.getRange(bucket, 'lean/object', a, b);
    if (!got.equals(object.subarray(a, b))) t.fail(`getRange [${a}, ${b}) differs`);
  }
  t.pass(`${ranges.length} ranges byte-exact`);

  for (const [a, b] of [
    [0, undefined],
    [100, undefined],
    [7, 70_000],
    [object.length - 5, object.length],
  ] as [number, number | undefined][]) {
    const { stream, info } = await lean.getStream(bucket, 'lean/object', { start: a, endExclusive: b });
    t.ok((await readStream(stream)).equals(object.subarray(a, b)), `getStream [${a}, ${b})`);
    t.equal(info.size, object.length);
  }
  const before = lean.stats.bytesReceived;
  await lean.getRange(bucket, 'lean/object', 10, 1010);
  t.equal(lean.stats.bytesReceived - before, 1000, 'bytesReceived counts body bytes');
});

t.test('puts and parts: metadata, content type, ETag, stats, and the SDK reads them back alike', async (t) => {
  const data = randomBytes(200_000);
  const sentBefore = lean.stats.bytesSent;
  const { etag } = await lean.put(bucket, 'lean/put', data, { metadata: { 'wrapped-key': 'abc', n: '1' }, contentType: 'application/x-test' });
  t.equal(etag, `"${createHash('md5').update(data).digest('hex')}"`, 'quoted MD5 ETag');
  t.equal(lean.stats.bytesSent - sentBefore, data.length);
  const info = await sdk.head(bucket, 'lean/put');
  t.same(info?.metadata, { 'wrapped-key': 'abc', n: '1' });
  t.equal(info?.contentType, 'application/x-test');
  t.ok((await sdk.getObject(bucket, 'lean/put')).body.equals(data));

  await lean.put(bucket, 'lean/plain', 'héllo');
  await sdk.put(bucket, 'sdk/plain', 'héllo');
  const [a, b] = [await lean.head(bucket, 'lean/plain'), await sdk.head(bucket, 'sdk/plain')];
  t.equal(a?.size, 6, 'string bodies are sent as UTF-8 bytes');
  t.equal(a?.contentType, b?.contentType, 'same default content type as the SDK path');
  t.equal(a?.etag, b?.etag);

  await lean.put(bucket, 'lean/empty', Buffer.alloc(0));
  t.equal((await lean.getObject(bucket, 'lean/empty')).body.length, 0, 'empty object');

  const uploadId = await lean.createMultipart(bucket, 'lean/mp');
  const p1 = randomBytes(5 * 1024 * 1024);
  const p2 = randomBytes(1000);
  const e1 = await lean.uploadPart(bucket, 'lean/mp', uploadId, 1, p1);
  const e2 = await lean.uploadPart(bucket, 'lean/mp', uploadId, 2, p2);
  t.equal(e1, `"${createHash('md5').update(p1).digest('hex')}"`);
  await lean.completeMultipart(bucket, 'lean/mp', uploadId, [
    { partNumber: 2, etag: e2 },
    { partNumber: 1, etag: e1 },
  ]);
  t.ok((await sdk.getObject(bucket, 'lean/mp')).body.equals(Buffer.concat([p1, p2])), 'multipart object intact');
  t.equal(lean.stats.requests.UploadPart, 2);
});

t.test('error codes', async (t) => {
  await t.rejects(lean.getRange(bucket, 'lean/missing', 0, 10), { name: 'StoreError', code: 'NoSuchKey', status: 404 });
  await t.rejects(lean.getObject('no-such-bucket-lean', 'x'), { code: 'NoSuchBucket', status: 404 });
  await t.rejects(lean.put('no-such-bucket-lean', 'x', 'x'), { code: 'NoSuchBucket' });
  await t.rejects(lean.getRange(bucket, 'lean/object', object.length + 10, object.length + 20), { code: 'InvalidRange' });
  await t.rejects(lean.getRange(bucket, 'lean/object', 0, object.length + 1), { code: 'InvalidRange' });
  await t.rejects(lean.getRange(bucket, 'lean/object', 0, 10, { ifMatch: '"0123456789abcdef0123456789abcdef"' }), {
    code: 'PreconditionFailed',
  });
  await t.rejects(lean.getStream(bucket, 'lean/object', { start: 5, ifMatch: '"0123456789abcdef0123456789abcdef"' }), {
    code: 'PreconditionFailed',
  });
  const { etag } = (await lean.head(bucket, 'lean/object'))!;
  t.equal((await lean.getRange(bucket, 'lean/object', 0, 10, { ifMatch: etag })).length, 10, 'a matching If-Match reads');

  // s3rver does not check the secret, so the proxy plays the server that does.
  const { store: wrongKey } = await throughProxy(t, () => ({ kind: 'error', status: 403, code: 'SignatureDoesNotMatch' }));
  await t.rejects(wrongKey.getRange(bucket, 'lean/object', 0, 10), { code: 'InvalidCredentials', s3Code: 'SignatureDoesNotMatch', status: 403 });
  await t.rejects(wrongKey.put(bucket, 'lean/nope', 'x'), { code: 'InvalidCredentials', s3Code: 'SignatureDoesNotMatch' });
  t.equal(wrongKey.stats.retries, 0, 'a rejected signature is not retried');

  const { store: denied } = await throughProxy(t, () => ({ kind: 'error', status: 403, code: 'AccessDenied', message: 'Access Denied' }));
  await t.rejects(denied.getObject(bucket, 'lean/object'), { code: 'AccessDenied', s3Code: 'AccessDenied', status: 403 });
  await t.rejects(denied.uploadPart(bucket, 'k', 'u', 1, Buffer.from('x')), { code: 'AccessDenied', op: 'UploadPart' });
  t.equal(denied.stats.retries, 0);
});

t.test('throttling and 5xx are retried with backoff and counted', async (t) => {
  const { proxy, store } = await throughProxy(t, (req, i) =>
    i < 2 ? { kind: 'error', status: 503, code: 'SlowDown' } : i === 2 ? { kind: 'error', status: 500, code: 'InternalError' } : { kind: 'forward' },
  );
  const got = await store.getRange(bucket, 'lean/object', 5, 50_005);
  t.ok(got.equals(object.subarray(5, 50_005)));
  t.equal(proxy.seen.length, 4);
  t.equal(store.stats.requests.GetObject, 4, 'every attempt counted');
  t.equal(store.stats.retries, 3);
  t.same(store.stats.retriesByOp, { GetObject: 3 });

  const put = await throughProxy(t, (req, i) => (i === 0 ? { kind: 'error', status: 503, code: 'SlowDown' } : { kind: 'forward' }));
  const data = randomBytes(70_000);
  await put.store.put(bucket, 'lean/retried-put', data);
  t.same(put.store.stats.retriesByOp, { PutObject: 1 });
  t.equal(put.store.stats.bytesSent, data.length, 'bytes counted once');
  t.ok((await sdk.getObject(bucket, 'lean/retried-put')).body.equals(data));

  const part = await throughProxy(t, (req, i) => (i === 1 ? { kind: 'error', status: 502, code: 'BadGateway' } : { kind: 'forward' }));
  const uploadId = await part.store.createMultipart(bucket, 'lean/retried-part');
  const partData = randomBytes(10_000);
  const etag = await part.store.uploadPart(bucket, 'lean/retried-part', uploadId, 1, partData);
  t.equal(etag, `"${createHash('md5').update(partData).digest('hex')}"`);
  t.same(part.store.stats.retriesByOp, { UploadPart: 1 });
  t.equal(part.proxy.seen[2].url, part.proxy.seen[1].url, 'the retry targets the same part');
  t.match(part.proxy.seen[2].url, /partNumber=1/);

  const never = await throughProxy(t, () => ({ kind: 'error', status: 503, code: 'SlowDown' }), 3);
  await t.rejects(never.store.getObject(bucket, 'lean/object'), { code: 'Throttled', status: 503, s3Code: 'SlowDown' });
  t.equal(never.proxy.seen.length, 3, 'maxAttempts');
  t.equal(never.store.stats.requests.GetObject, 3);
  t.equal(never.store.stats.retries, 2);

  const reset = await throughProxy(t, (_req, i) => (i === 0 ? { kind: 'reset-before-response' } : { kind: 'forward' }));
  t.ok((await reset.store.getRange(bucket, 'lean/object', 0, 1000)).equals(object.subarray(0, 1000)));
  t.equal(reset.store.stats.retries, 1, 'a reset before the response is retried');

  const bad = await throughProxy(t, () => ({ kind: 'error', status: 400, code: 'InvalidArgument' }));
  await t.rejects(bad.store.getObject(bucket, 'lean/object'), { code: 'Unknown', s3Code: 'InvalidArgument', status: 400 });
  t.equal(bad.proxy.seen.length, 1, '4xx is not retried');
});

t.test('a body that breaks off: getRange resumes pinned to the ETag, getStream surfaces the error', async (t) => {
  const { proxy, store } = await throughProxy(t, (req, i) =>
    req.method === 'GET' && i < 2 ? { kind: 'reset-mid-body', afterBytes: 400_000 + i * 100_000 } : { kind: 'forward' },
  );
  const got = await store.getRange(bucket, 'lean/object', 10, object.length);
  t.ok(got.equals(object.subarray(10)), 'byte-exact after two resumptions');
  t.equal(store.stats.retries, 2);
  const { etag } = (await sdk.head(bucket, 'lean/object'))!;
  t.equal(proxy.seen[1].headers['if-match'], etag, 'resumption pinned to the ETag');
  t.equal(proxy.seen[2].headers['if-match'], etag);

  const broken = await throughProxy(t, (req) => (req.method === 'GET' ? { kind: 'reset-mid-body', afterBytes: 1000 } : { kind: 'forward' }));
  const { stream } = await broken.store.getStream(bucket, 'lean/object', { start: 0 });
  await t.rejects(readStream(stream), 'the stream errors');
});

t.test('a stalled body times out and is resumed', async (t) => {
  const fwd = await stallingForwarder(t, 200_000, 1);
  const store = storeFor(fwd, { dataPath: 'lean', requestTimeoutMs: 300 });
  t.teardown(() => store.destroy());
  const got = await store.getRange(bucket, 'lean/object', 0, 1_000_000);
  t.ok(got.equals(object.subarray(0, 1_000_000)));
  t.equal(store.stats.retries, 1);
  t.equal(fwd.requests.length, 2);
  t.match(String(fwd.requests[1].range), /^bytes=\d+-999999$/);
  t.not(fwd.requests[1].range, 'bytes=0-999999', 'resumed, not restarted');
});

t.test('an abort signal stops a read mid-body and in backoff, without wrapping the abort', async (t) => {
  const fwd = await stallingForwarder(t, 100_000, 10);
  const store = storeFor(fwd, { dataPath: 'lean' });
  t.teardown(() => store.destroy());
  const controller = new AbortController();
  const pending = store.getRange(bucket, 'lean/object', 0, object.length, { signal: controller.signal });
  setTimeout(() => controller.abort(), 200);
  const err = (await pending.catch((e: unknown) => e)) as Error;
  t.equal(err.name, 'AbortError', 'mid-body abort');

  const already = new AbortController();
  already.abort();
  const err2 = (await store.getRange(bucket, 'lean/object', 0, 10, { signal: already.signal }).catch((e: unknown) => e)) as Error;
  t.equal(err2.name, 'AbortError', 'aborted before sending');

  const { store: slow } = await throughProxy(t, () => ({ kind: 'error', status: 503, code: 'SlowDown' }), 50);
  const backoff = new AbortController();
  const inBackoff = slow.uploadPart(bucket, 'k', 'u', 1, Buffer.from('x'), { signal: backoff.signal });
  setTimeout(() => backoff.abort(), 150);
  const err3 = (await inBackoff.catch((e: unknown) => e)) as Error;
  t.equal(err3.name, 'AbortError', 'abort during retry backoff');
});

t.test('GET and PUT signing headers as the SDK path sends them', async (t) => {
  const { proxy, store } = await throughProxy(t, () => ({ kind: 'forward' }));
  await store.put(bucket, 'lean/hdr', Buffer.from('abc'), { ifNoneMatch: '*' });
  await store.getRange(bucket, 'lean/hdr', 1, 3);
  const [put, get] = proxy.seen;
  t.equal(put.url, `/${bucket}/lean/hdr`, 'path-style on an IP endpoint');
  t.equal(put.headers['if-none-match'], '*');
  t.equal(put.headers['x-amz-content-sha256'], 'UNSIGNED-PAYLOAD', 'loopback: unsigned payload');
  t.equal(put.headers['content-length'], '3');
  t.notOk('content-md5' in put.headers, 'no Content-MD5 on puts (as before)');
  t.match(String(put.headers.authorization), /^AWS4-HMAC-SHA256 Credential=S3RVER\/\d{8}\/us-east-1\/s3\/aws4_request, SignedHeaders=.*host/);
  t.equal(get.headers.range, 'bytes=1-2');
  t.equal(get.headers['x-amz-content-sha256'], createHash('sha256').update('').digest('hex'));

  const keyed = 'lean/odd key+ü/(1)*!\'~.bin';
  await lean.put(bucket, keyed, 'odd');
  t.equal((await sdk.getObject(bucket, keyed)).body.toString(), 'odd', 'keys needing escapes round-trip');
  t.equal((await lean.getObject(bucket, keyed)).body.toString(), 'odd');
});

/** Passes a request on to `target` with `headers`, and its answer back. */
function forward(target: URL, req: http.IncomingMessage, res: http.ServerResponse, headers: http.IncomingHttpHeaders): void {
  const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers, agent: false }, (ur) => {
    res.writeHead(ur.statusCode ?? 502, ur.headers);
    ur.pipe(res);
  });
  up.on('error', () => res.destroy());
  req.pipe(up);
}

/** A lean-path store whose endpoint is `handler` on loopback (both closed at the end of `t`). */
async function leanStoreBehind(t: Test, handler: http.RequestListener) {
  const srv = http.createServer(handler);
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => { srv.closeAllConnections(); srv.close(() => resolve()); }));
  const store = storeFor({ endpoint: `http://127.0.0.1:${(srv.address() as AddressInfo).port}` }, { dataPath: 'lean' });
  t.teardown(() => store.destroy());
  return store;
}

t.test('a clock-skew rejection adopts the server clock and is retried once, as the SDK does', async (t) => {
  const target = new URL(server.endpoint);
  const seen: http.IncomingHttpHeaders[] = [];
  const ahead = 300_000; // past the SDK's 4-minute threshold, within s3rver's own 15-minute tolerance
  const store = await leanStoreBehind(t, (req, res) => {
    seen.push(req.headers);
    if (seen.length === 1) {
      req.resume();
      const xml = '<Error><Code>RequestTimeTooSkewed</Code><Message>skewed</Message></Error>';
      res.writeHead(403, { date: new Date(Date.now() + ahead).toUTCString(), 'content-length': Buffer.byteLength(xml) });
      res.end(xml);
      return;
    }
    forward(target, req, res, req.headers);
  });
  t.ok((await store.getRange(bucket, 'lean/object', 0, 100)).equals(object.subarray(0, 100)));
  t.equal(seen.length, 2);
  t.equal(store.stats.retries, 1);
  const amzDate = (h: http.IncomingHttpHeaders) => Date.parse(String(h['x-amz-date']).replace(/^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/, '$1-$2-$3T$4:$5:$6Z'));
  const shift = amzDate(seen[1]) - amzDate(seen[0]);
  t.ok(Math.abs(shift - ahead) < 30_000, `the retry is signed with the server's clock (shifted ${shift} ms)`);
});

t.test('a server that ignores Range: the whole body is sliced to the asked window', async (t) => {
  const target = new URL(server.endpoint);
  const store = await leanStoreBehind(t, (req, res) => {
    const { range: _dropped, ...headers } = req.headers;
    forward(target, req, res, headers);
  });
  t.ok((await store.getRange(bucket, 'lean/object', 1000, 70_000)).equals(object.subarray(1000, 70_000)), 'getRange');
  const { stream, info } = await store.getStream(bucket, 'lean/object', { start: 5, endExclusive: 500_000 });
  t.ok((await readStream(stream)).equals(object.subarray(5, 500_000)), 'getStream');
  t.equal(info.size, object.length, 'size from Content-Length of the whole body');
  await t.rejects(store.getRange(bucket, 'lean/object', 0, object.length + 1), { code: 'InvalidRange' });
});

t.test('an abort after the body was read leaves the pooled socket alone', async (t) => {
  const { proxy, store } = await throughProxy(t, () => ({ kind: 'forward' }));
  for (let i = 0; i < 3; i++) {
    const controller = new AbortController();
    const got = await store.getRange(bucket, 'lean/object', i * 1000, i * 1000 + 5000, { signal: controller.signal });
    t.ok(got.equals(object.subarray(i * 1000, i * 1000 + 5000)));
    const { stream } = await store.getStream(bucket, 'lean/object', { start: 0, endExclusive: 5000, signal: controller.signal });
    let n = 0;
    for await (const chunk of stream) {
      n += (chunk as Buffer).length;
      // As a reader closing its stream does: abort once it has what it wanted (the last byte may have
      // arrived with the response not yet released to the pool), and again after it has been.
      if (n === 5000) controller.abort();
    }
    t.equal(n, 5000);
    await new Promise((resolve) => setImmediate(resolve));
    const later = new AbortController();
    t.equal((await store.getRange(bucket, 'lean/object', 0, 100, { signal: later.signal })).length, 100);
    later.abort();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  t.ok((await store.getRange(bucket, 'lean/object', 0, 10)).equals(object.subarray(0, 10)), 'the store still reads');
  t.equal(store.stats.retries, 0, 'no request met a destroyed socket');
  t.equal(proxy.seen.length, 10);
});
