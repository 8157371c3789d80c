// Authentication and authorization failures, error documents, conditional writes on both paths
// (forwarded to the backend, serialised in the gateway), ranges and conditional GETs, integrity
// failures (500 and a metric, never wrong bytes), aws-chunked uploads from the JS SDK, and
// listings over encrypted names.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import { ACCESS_KEY, gatewayFixture, OTHER_KEY, OTHER_SECRET, SECRET_KEY, type GatewayFixture } from './fixtures/gateway.js';
import { rawRequest, s3request, type SignedRequest } from './fixtures/signed.js';

const f = await gatewayFixture(t, { buckets: 2 });
const [B, B2] = f.buckets;
const creds = { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY };
const req = (r: Omit<SignedRequest, 'accessKeyId' | 'secretAccessKey'>, c = creds) => s3request(f.endpoint, { ...c, ...r });
const code = (text: string) => /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
const put = (key: string, body: Buffer | string, headers: Record<string, string> = {}) =>
  req({ method: 'PUT', path: `/${B}/${key}`, body, headers: { 'content-length': String(Buffer.byteLength(body)), ...headers } });

async function metric(fx: GatewayFixture, name: string): Promise<number> {
  const text = await new Promise<string>((resolve, reject) => {
    http.get(`${fx.gw.admin!.url}/metrics`, (res) => {
      let s = '';
      res.on('data', (b) => (s += b));
      res.on('end', () => resolve(s));
    }).on('error', reject);
  });
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm');
  let total = 0;
  for (const x of text.matchAll(m)) total += Number(x[1]);
  return total;
}

t.test('authentication and authorization errors', async (t) => {
  let r = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2' } }, { accessKeyId: ACCESS_KEY, secretAccessKey: 'wrong-secret-xxxxxxxx' });
  t.equal(r.status, 403);
  t.equal(code(r.text), 'SignatureDoesNotMatch');
  r = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2' } }, { accessKeyId: 'NOSUCHKEY0000', secretAccessKey: SECRET_KEY });
  t.equal(r.status, 403);
  t.equal(code(r.text), 'InvalidAccessKeyId');
  r = await req({ method: 'GET', path: '/not-served-bucket/', query: { 'list-type': '2' } });
  t.equal(r.status, 403, 'bucket not in allowed_buckets');
  t.equal(code(r.text), 'AccessDenied');
  r = await req({ method: 'GET', path: `/${B2}/`, query: { 'list-type': '2' } }, { accessKeyId: OTHER_KEY, secretAccessKey: OTHER_SECRET });
  t.equal(r.status, 403, 'credential limited to another bucket');
  t.equal(code(r.text), 'AccessDenied');
  r = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2' } }, { accessKeyId: OTHER_KEY, secretAccessKey: OTHER_SECRET });
  t.equal(r.status, 200, 'its own bucket is fine');
  r = await req({ method: 'GET', path: '/' }, { accessKeyId: OTHER_KEY, secretAccessKey: OTHER_SECRET });
  t.match(r.text, new RegExp(`<Name>${B}</Name>`));
  t.notMatch(r.text, new RegExp(`<Name>${B2}</Name>`), 'ListBuckets shows only permitted buckets');
  r = await req({ method: 'GET', path: `/${B}/x`, signingDate: new Date(Date.now() - 3600_000) });
  t.equal(code(r.text), 'RequestTimeTooSkewed');
  const url = new URL(f.endpoint);
  r = await rawRequest(url, 'GET', `/${B}/x`, { host: url.host });
  t.equal(r.status, 403, 'anonymous');
  r = await req({ method: 'PUT', path: `/${B}/tampered-body`, body: 'hello', headers: { 'content-length': '5' }, payloadHash: createHash('sha256').update('other').digest('hex') });
  t.equal(code(r.text), 'XAmzContentSHA256Mismatch');
  r = await put('bad-md5', 'hello', { 'content-md5': 'AAAAAAAAAAAAAAAAAAAAAA==' });
  t.equal(code(r.text), 'BadDigest');
  r = await req({ method: 'HEAD', path: `/${B}/bad-md5` });
  t.equal(r.status, 404, 'nothing was stored');
  r = await req({ method: 'GET', path: `/${B}/.s3cryptfs.json` });
  t.equal(r.status, 400, 'the store config is not reachable');
});

t.test('malformed XML and bad requests', async (t) => {
  for (const body of ['<Delete><Object><Key>a</Key></Object>', 'not xml', '<Wrong/>']) {
    const r = await req({ method: 'POST', path: `/${B}/`, query: { delete: '' }, body, headers: { 'content-length': String(body.length) } });
    t.equal(r.status, 400, body);
    t.equal(code(r.text), 'MalformedXML');
  }
  let r = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2', 'continuation-token': 'garbage' } });
  t.equal(code(r.text), 'InvalidArgument');
  r = await req({ method: 'GET', path: `/${B}/no-such-key` });
  t.equal(r.status, 404);
  t.match(r.text, /<Code>NoSuchKey<\/Code>.*<Key>no-such-key<\/Key>/);
  r = await req({ method: 'PUT', path: `/${B}/a//b`, body: 'x', headers: { 'content-length': '1' } });
  t.equal(r.status, 400, 'empty path segment');
});

t.test('ranges, conditional GETs, metadata', async (t) => {
  const data = randomBytes(300_000);
  let r = await put('ranged.bin', data, { 'content-type': 'image/png', 'x-amz-meta-owner': 'alice', 'cache-control': 'no-cache' });
  t.equal(r.status, 200);
  const etag = String(r.headers.etag);
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { range: 'bytes=70000-200000' } });
  t.equal(r.status, 206);
  t.equal(r.headers['content-range'], `bytes 70000-200000/${data.length}`);
  t.ok(r.body.equals(data.subarray(70000, 200001)));
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { range: 'bytes=-10' } });
  t.ok(r.body.equals(data.subarray(data.length - 10)));
  const ranged = { ...f.backend.stats.requests };
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { range: 'bytes=10-1000' } });
  t.equal(r.status, 206);
  t.ok(r.body.equals(data.subarray(10, 1001)), 'range in the first chunk');
  t.equal((f.backend.stats.requests.GetObject ?? 0) - (ranged.GetObject ?? 0), 1, 'one GET (header and chunk together)');
  t.equal((f.backend.stats.requests.HeadObject ?? 0) - (ranged.HeadObject ?? 0), 0, 'and no HEAD: the version was stat\'ed by the earlier range');
  const later = { ...f.backend.stats.requests };
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { range: 'bytes=140000-150000' } });
  t.ok(r.body.equals(data.subarray(140000, 150001)), 'range past the first chunk');
  t.equal(r.headers['content-type'], 'image/png', 'headers of the stat\'ed version');
  t.equal(r.headers.etag, etag);
  t.equal((f.backend.stats.requests.GetObject ?? 0) - (later.GetObject ?? 0), 1, 'a range of a known version with a cached header: one backend GET');
  t.equal((f.backend.stats.requests.HeadObject ?? 0) - (later.HeadObject ?? 0), 0, 'no HEAD');
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { range: `bytes=${data.length}-` } });
  t.equal(r.status, 416);
  const before = { ...f.backend.stats.requests };
  r = await req({ method: 'GET', path: `/${B}/ranged.bin` });
  t.ok(r.body.equals(data), 'whole GET');
  t.equal(r.headers.etag, etag);
  t.equal(r.headers['content-type'], 'image/png', 'metadata from the GET response');
  t.equal((f.backend.stats.requests.GetObject ?? 0) - (before.GetObject ?? 0), 1, 'a whole GET is one backend GET');
  t.equal((f.backend.stats.requests.HeadObject ?? 0) - (before.HeadObject ?? 0), 0, 'and no HEAD');
  const conditional = { ...f.backend.stats.requests };
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { 'if-none-match': etag } });
  t.equal(r.status, 304);
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { 'if-match': '"0123"' } });
  t.equal(r.status, 412);
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { 'if-modified-since': new Date(Date.now() + 60_000).toUTCString(), range: 'bytes=0-9' } });
  t.equal(r.status, 304, 'If-Modified-Since on a range');
  t.equal((f.backend.stats.requests.GetObject ?? 0) - (conditional.GetObject ?? 0), 0, '304 and 412 start no backend GET');
  t.equal((f.backend.stats.requests.HeadObject ?? 0) - (conditional.HeadObject ?? 0), 3, 'one HEAD each');
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, headers: { 'if-match': etag } });
  t.equal(r.status, 200, 'a condition that holds');
  t.ok(r.body.equals(data));
  t.equal(r.headers.etag, etag);
  r = await req({ method: 'HEAD', path: `/${B}/ranged.bin` });
  t.equal(r.headers['content-type'], 'image/png');
  t.equal(r.headers['x-amz-meta-owner'], 'alice');
  t.equal(r.headers['cache-control'], 'no-cache');
  t.equal(r.headers['content-length'], String(data.length));
  r = await req({ method: 'GET', path: `/${B}/ranged.bin`, query: { 'response-content-type': 'text/plain' }, presign: 60 });
  t.equal(r.status, 200, 'presigned GET');
  t.equal(r.headers['content-type'], 'text/plain');
  t.ok(r.body.equals(data));
});

t.test('If-None-Match: * on both paths, under concurrency', async (t) => {
  for (const mode of ['backend', 'gateway'] as const) {
    await f.restart({ conditionalWrites: mode });
    const key = `cond-${mode}`;
    const bodies = Array.from({ length: 6 }, () => randomBytes(50_000));
    const results = await Promise.all(bodies.map((b) => put(key, b, { 'if-none-match': '*' })));
    const winners = results.filter((r) => r.status === 200);
    t.equal(winners.length, 1, `${mode}: exactly one create wins (${results.map((r) => r.status).join(',')})`);
    for (const r of results) if (r.status !== 200) t.ok(r.status === 412 || r.status === 409, `${mode}: loser gets 412/409, got ${r.status}`);
    const got = await req({ method: 'GET', path: `/${B}/${key}` });
    const winner = bodies[results.findIndex((r) => r.status === 200)];
    t.ok(got.body.equals(winner), `${mode}: the stored object is the winner's`);
    const again = await put(key, randomBytes(10), { 'if-none-match': '*' });
    t.equal(again.status, 412, `${mode}: existing key`);
  }
  await f.restart();
});

t.test('a tampered backend object: 500 and a metric, never wrong bytes', async (t) => {
  await f.restart({ verifyBeforeSendBytes: 200_000 });
  const small = randomBytes(100_000);
  const large = randomBytes(1_000_000);
  t.equal((await put('tamper-small', small)).status, 200);
  t.equal((await put('tamper-large', large)).status, 200);
  const before = await metric(f, 's3cryptfs_gateway_integrity_failures_total');
  // Flip one byte in the middle of each stored ciphertext (s3rver keeps objects as plain files).
  const flip = async (key: string, at: (n: number) => number) => {
    const dir = path.join(f.s3.dir, f.bucket);
    const files = await readdir(dir, { recursive: true });
    const file = files.map(String).find((p) => p.endsWith(`${key}._S3rver_object`));
    t.ok(file, `backend file for ${key}`);
    const full = path.join(dir, file!);
    const b = await readFile(full);
    b[at(b.length)] ^= 0x40;
    await writeFile(full, b);
  };
  await flip('tamper-small', (n) => Math.floor(n / 2));
  await flip('tamper-large', (n) => n - 1000);
  let r = await req({ method: 'GET', path: `/${B}/tamper-small` });
  t.equal(r.status, 500);
  t.equal(code(r.text), 'InternalError');
  t.match(r.text, /integrity/);
  t.notOk(r.body.includes(small.subarray(0, 32)), 'no plaintext in the error');
  const res = await new Promise<{ status: number; got: Buffer; error: boolean }>((resolve) => {
    void (async () => {
      const { signRequest } = await import('./fixtures/signed.js');
      const { signed } = await signRequest(f.endpoint, { ...creds, method: 'GET', path: `/${B}/tamper-large` });
      const url = new URL(f.endpoint);
      const parts: Buffer[] = [];
      const q = http.request({ host: url.hostname, port: url.port, path: signed.path, headers: signed.headers as Record<string, string>, agent: false }, (res) => {
        res.on('data', (b: Buffer) => parts.push(b));
        res.on('error', () => resolve({ status: res.statusCode ?? 0, got: Buffer.concat(parts), error: true }));
        res.on('aborted', () => resolve({ status: res.statusCode ?? 0, got: Buffer.concat(parts), error: true }));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, got: Buffer.concat(parts), error: false }));
      });
      q.on('error', () => resolve({ status: 0, got: Buffer.concat(parts), error: true }));
      q.end();
    })();
  });
  t.ok(res.error || res.status === 500, 'a large tampered object is cut off');
  t.ok(res.got.length < large.length, 'short body');
  t.ok(large.subarray(0, res.got.length).equals(res.got), 'what arrived is a correct prefix');
  r = await req({ method: 'GET', path: `/${B}/tamper-large`, headers: { range: 'bytes=0-999' } });
  t.equal(r.status, 206, 'untouched chunks still read');
  t.ok(r.body.equals(large.subarray(0, 1000)));
  t.ok((await metric(f, 's3cryptfs_gateway_integrity_failures_total')) >= before + 2, 'integrity failures counted');
  t.ok((await metric(f, 's3cryptfs_gateway_requests_total')) >= 4, 'requests counted');
  await f.restart();
});

t.test('a cached stat never serves another version\'s bytes', async (t) => {
  const v1 = randomBytes(200_000);
  t.equal((await put('replaced.bin', v1)).status, 200);
  let r = await req({ method: 'GET', path: `/${B}/replaced.bin`, headers: { range: 'bytes=100000-100099' } });
  t.ok(r.body.equals(v1.subarray(100000, 100100)));
  // Replaced behind the gateway's back (as the CLI or the mount would), with another size.
  const engine = await f.engine();
  const v2 = randomBytes(300_000);
  await engine.putBuffer('replaced.bin', v2);
  const before = { ...f.backend.stats.requests };
  r = await req({ method: 'GET', path: `/${B}/replaced.bin`, headers: { range: 'bytes=100000-100099' } });
  t.equal(r.status, 206);
  t.ok(r.body.equals(v2.subarray(100000, 100100)), 'the new version\'s bytes');
  t.equal(r.headers['content-range'], `bytes 100000-100099/${v2.length}`, 'and its size');
  t.equal((f.backend.stats.requests.HeadObject ?? 0) - (before.HeadObject ?? 0), 1, 'stat\'ed afresh once the pinned GET was refused');
  // Grown past the cached size: a range beyond the old end is no 416.
  const v3 = randomBytes(400_000);
  await engine.putBuffer('replaced.bin', v3);
  r = await req({ method: 'GET', path: `/${B}/replaced.bin`, headers: { range: 'bytes=350000-350009' } });
  t.equal(r.status, 206);
  t.ok(r.body.equals(v3.subarray(350000, 350010)));
  r = await req({ method: 'GET', path: `/${B}/replaced.bin`, headers: { range: 'bytes=-5' } });
  t.ok(r.body.equals(v3.subarray(v3.length - 5)), 'suffix range of the cached version');
  await engine.delete('replaced.bin');
  r = await req({ method: 'GET', path: `/${B}/replaced.bin`, headers: { range: 'bytes=0-9' } });
  t.equal(r.status, 404, 'deleted elsewhere');
});

t.test('without an MD5 to record, a PUT still checks every claim about its body', async (t) => {
  await f.restart({ md5BufferMaxBytes: 0 });
  const body = randomBytes(100_000);
  const md5 = createHash('md5').update(body);
  const md5b64 = md5.copy().digest('base64');
  const md5hex = md5.digest('hex');
  let r = await put('streamed.bin', body);
  t.equal(r.status, 200);
  t.match(String(r.headers.etag), /-1"$/, 'a derived ETag: no MD5 was needed');
  r = await req({ method: 'GET', path: `/${B}/streamed.bin` });
  t.ok(r.body.equals(body));
  r = await put('streamed-md5.bin', body, { 'content-md5': md5b64 });
  t.equal(r.headers.etag, `"${md5hex}"`, 'Content-MD5: checked, and the ETag');
  r = await put('streamed-bad-md5.bin', body, { 'content-md5': 'AAAAAAAAAAAAAAAAAAAAAA==' });
  t.equal(code(r.text), 'BadDigest');
  r = await req({ method: 'PUT', path: `/${B}/streamed-bad-sha.bin`, body, headers: { 'content-length': String(body.length) }, payloadHash: createHash('sha256').update('other').digest('hex') });
  t.equal(code(r.text), 'XAmzContentSHA256Mismatch');
  for (const k of ['streamed-bad-md5.bin', 'streamed-bad-sha.bin']) {
    r = await req({ method: 'HEAD', path: `/${B}/${k}` });
    t.equal(r.status, 404, `${k}: nothing was stored`);
  }
  await f.restart();
});

t.test('aws-chunked uploads from the AWS SDK (trailing checksums)', async (t) => {
  const client = new S3Client({
    endpoint: f.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: creds,
    requestChecksumCalculation: 'WHEN_SUPPORTED',
  });
  t.teardown(() => client.destroy());
  const data = randomBytes(1_500_000);
  const out = await client.send(new PutObjectCommand({ Bucket: B, Key: 'sdk/stream.bin', Body: Readable.from([data.subarray(0, 700_000), data.subarray(700_000)]), ContentLength: data.length, ChecksumAlgorithm: 'CRC32' }));
  t.ok(out.ETag);
  await client.send(new PutObjectCommand({ Bucket: B, Key: 'sdk/buffer.bin', Body: data, ChecksumAlgorithm: 'CRC32C' }));
  for (const key of ['sdk/stream.bin', 'sdk/buffer.bin']) {
    const got = await client.send(new GetObjectCommand({ Bucket: B, Key: key }));
    t.ok(Buffer.from(await got.Body!.transformToByteArray()).equals(data), key);
  }
  const list = await client.send(new ListObjectsV2Command({ Bucket: B, Prefix: 'sdk/' }));
  t.same(list.Contents?.map((c) => [c.Key, c.Size]), [['sdk/buffer.bin', data.length], ['sdk/stream.bin', data.length]]);
});

t.test('admin: healthz, readyz, dashboard', async (t) => {
  const get = (p: string) => new Promise<{ status: number; text: string }>((resolve, reject) => {
    http.get(`${f.gw.admin!.url}${p}`, (res) => {
      let s = '';
      res.on('data', (b) => (s += b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: s }));
    }).on('error', reject);
  });
  t.equal((await get('/healthz')).status, 200);
  const ready = await get('/readyz');
  t.equal(ready.status, 200);
  t.match(JSON.parse(ready.text), { ready: true });
  const dash = await get('/');
  t.match(dash.text, /<html/);
  t.match(dash.text, /metrics\.json/);
  const json = JSON.parse((await get('/metrics.json')).text) as { metrics: { name: string }[] };
  t.ok(json.metrics.some((m) => m.name === 's3cryptfs_gateway_requests_in_flight'));
});

t.test('encrypted names: sorted listings, delimiters, paging', async (t) => {
  const g = await gatewayFixture(t, { names: 'aes-siv' });
  const r2 = (r: Omit<SignedRequest, 'accessKeyId' | 'secretAccessKey'>) => s3request(g.endpoint, { ...creds, ...r });
  const keys = ['b/2', 'a-b', 'a/x/1', 'a/x/2', 'a/y', 'a0', 'c', 'a/x/10', 'b/1'];
  for (const k of keys) {
    const r = await r2({ method: 'PUT', path: `/${g.bucket}/${k}`, body: k, headers: { 'content-length': String(k.length) } });
    t.equal(r.status, 200, k);
  }
  const list = async (q: Record<string, string>) => {
    const out: string[] = [];
    const prefixes: string[] = [];
    let token: string | undefined;
    for (let i = 0; i < 20; i++) {
      const r = await r2({ method: 'GET', path: `/${g.bucket}/`, query: { 'list-type': '2', ...q, ...(token ? { 'continuation-token': token } : {}) } });
      t.equal(r.status, 200, r.text);
      out.push(...[...r.text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]));
      prefixes.push(...[...r.text.matchAll(/<Prefix>([^<]*)<\/Prefix><\/CommonPrefixes>/g)].map((m) => m[1]));
      token = /<NextContinuationToken>([^<]*)</.exec(r.text)?.[1];
      if (!token) break;
    }
    return { out, prefixes };
  };
  t.same((await list({})).out, [...keys].sort(), 'whole bucket, byte order');
  t.same((await list({ 'max-keys': '2' })).out, [...keys].sort(), 'paged by 2');
  t.same((await list({ prefix: 'a/x' })).out, ['a/x/1', 'a/x/10', 'a/x/2']);
  const d = await list({ delimiter: '/' });
  t.same(d.out, ['a-b', 'a0', 'c']);
  t.same(d.prefixes, ['a/', 'b/']);
  t.same((await list({ delimiter: '/', prefix: 'a/' })).prefixes, ['a/x/']);
  t.same((await list({ 'start-after': 'a/x/2' })).out, ['a/y', 'a0', 'b/1', 'b/2', 'c']);
  const raw = await g.store.list(g.bucket, {});
  t.notOk(raw.objects.some((o) => o.key.includes('a/x')), 'backend keys are encrypted');
});
