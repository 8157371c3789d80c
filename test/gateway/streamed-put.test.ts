// PUTs whose attributes are known before the body (Content-MD5, as PBS sends it) are streamed to
// the backend as the client's body arrives. A body that fails a check, or a client that goes away,
// must leave nothing behind: no new object, the old one intact, no partial data in the backend.
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ACCESS_KEY, gatewayFixture, SECRET_KEY } from './fixtures/gateway.js';
import { s3request, signRequest, type SignedRequest } from './fixtures/signed.js';

const f = await gatewayFixture(t);
const B = f.bucket;
const creds = { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY };
const req = (r: Omit<SignedRequest, 'accessKeyId' | 'secretAccessKey'>) => s3request(f.endpoint, { ...creds, ...r });
const code = (text: string) => /<Code>([^<]*)<\/Code>/.exec(text)?.[1];
const md5b64 = (b: Buffer) => createHash('md5').update(b).digest('base64');
const md5hex = (b: Buffer) => createHash('md5').update(b).digest('hex');
const SIZE = 3 * 1024 * 1024 + 12345;

/** Files under the backend's data directory whose names contain `part` (s3rver's in-progress bodies). */
async function backendFiles(part: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) await walk(p);
      else if (e.name.includes(part)) out.push(p);
    }
  };
  await walk(f.s3.dir);
  return out;
}

/**
 * Sends a signed PUT in two halves: the first half, then `between` runs, then the rest (or, with
 * `cut`, the connection is destroyed instead). Resolves with the response, or null when cut.
 */
async function putInHalves(key: string, body: Buffer, headers: Record<string, string>, payloadHash: string | undefined, between: () => Promise<void>, cut = false) {
  const { url, signed } = await signRequest(f.endpoint, { ...creds, method: 'PUT', path: `/${B}/${key}`, headers: { 'content-length': String(body.length), ...headers }, payloadHash, body });
  return new Promise<{ status: number; text: string } | null>((resolve, reject) => {
    const r = http.request({ host: url.hostname, port: url.port, method: 'PUT', path: signed.path, headers: signed.headers as Record<string, string>, agent: false }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => (text += b.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    r.on('error', (err) => (cut ? resolve(null) : reject(err)));
    const half = Math.floor(body.length / 2);
    r.write(body.subarray(0, half), () => {
      between().then(() => {
        if (cut) {
          r.destroy();
          resolve(null);
        } else r.end(body.subarray(half));
      }, reject);
    });
  });
}

/** Polls until `check` holds (the gateway works concurrently with the test); fails after 10 s. */
async function eventually(check: () => Promise<boolean>): Promise<boolean> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

t.test('a PUT with Content-MD5 reaches the backend while the client is still sending', async (t) => {
  const body = randomBytes(SIZE);
  let seen = false;
  const r = await putInHalves('streamed.bin', body, { 'content-md5': md5b64(body) }, undefined, async () => {
    seen = await eventually(async () => (await backendFiles('.partial-')).length > 0);
  });
  t.ok(seen, 'ciphertext arrived at the backend before the client sent its second half');
  t.equal(r?.status, 200);
  const got = await req({ method: 'GET', path: `/${B}/streamed.bin` });
  t.ok(got.body.equals(body), 'byte-exact');
  t.equal(got.headers.etag, `"${md5hex(body)}"`, 'the MD5 ETag');
  t.same(await backendFiles('.partial-'), [], 'nothing left in progress');
});

t.test('a streamed body that fails a check leaves the old object and no new one', async (t) => {
  const old = randomBytes(100_000);
  t.equal((await req({ method: 'PUT', path: `/${B}/keep.bin`, body: old, headers: { 'content-length': String(old.length) } })).status, 200);
  const body = randomBytes(SIZE);
  const wrongSha = createHash('sha256').update('other').digest('hex');
  const cases: [string, Record<string, string>, string | undefined, string][] = [
    ['bad Content-MD5', { 'content-md5': md5b64(Buffer.from('other')) }, undefined, 'BadDigest'],
    ['bad x-amz-content-sha256', { 'content-md5': md5b64(body) }, wrongSha, 'XAmzContentSHA256Mismatch'],
    ['bad x-amz-checksum-crc32', { 'content-md5': md5b64(body), 'x-amz-checksum-crc32': 'AAAAAA==' }, undefined, 'BadDigest'],
  ];
  for (const [what, headers, hash, expected] of cases) {
    for (const key of ['keep.bin', 'never.bin']) {
      let midway = 0;
      const r = await putInHalves(key, body, headers, hash, async () => {
        // The first half is in the backend's hands before the check fails at the end.
        if (await eventually(async () => (await backendFiles('.partial-')).length > 0)) midway++;
      });
      t.equal(r?.status, 400, `${what} over ${key}`);
      t.equal(code(r!.text), expected);
      t.equal(midway, 1, `${what}: it was streaming`);
    }
    const kept = await req({ method: 'GET', path: `/${B}/keep.bin` });
    t.ok(kept.body.equals(old), `${what}: the old object is intact`);
    t.equal((await req({ method: 'HEAD', path: `/${B}/never.bin` })).status, 404, `${what}: no new object`);
    t.ok(await eventually(async () => (await backendFiles('.partial-')).length === 0), `${what}: no partial data left`);
  }
});

t.test('a client that goes away mid-body leaves the old object and no new one', async (t) => {
  const old = randomBytes(50_000);
  t.equal((await req({ method: 'PUT', path: `/${B}/cut.bin`, body: old, headers: { 'content-length': String(old.length) } })).status, 200);
  const body = randomBytes(SIZE);
  for (const key of ['cut.bin', 'cut-new.bin']) {
    const r = await putInHalves(key, body, { 'content-md5': md5b64(body) }, undefined, async () => {
      await eventually(async () => (await backendFiles('.partial-')).length > 0);
    }, true);
    t.equal(r, null);
  }
  t.ok(await eventually(async () => (await backendFiles('.partial-')).length === 0), 'the backend dropped the partial body');
  t.ok((await req({ method: 'GET', path: `/${B}/cut.bin` })).body.equals(old), 'the old object is intact');
  t.equal((await req({ method: 'HEAD', path: `/${B}/cut-new.bin` })).status, 404, 'no new object');
});

t.test('create-only PUTs as PBS sends them: streamed, atomic, and a failed one creates nothing', async (t) => {
  const body = randomBytes(SIZE);
  const h = { 'content-md5': md5b64(body), 'if-none-match': '*', 'content-type': 'application/octet-stream' };
  const bad = await putInHalves('chunk-1', body, { ...h, 'content-md5': md5b64(Buffer.from('x')) }, undefined, async () => {});
  t.equal(bad?.status, 400, 'bad MD5');
  // Until the backend has seen the cut request go, a create-only PUT of that key may get 409
  // ConditionalRequestConflict, which PBS retries (so does S3 while a conditional write is in flight).
  let r = await req({ method: 'PUT', path: `/${B}/chunk-1`, body, headers: { 'content-length': String(body.length), ...h } });
  for (let i = 0; i < 50 && r.status === 409; i++) {
    await new Promise((res) => setTimeout(res, 100));
    r = await req({ method: 'PUT', path: `/${B}/chunk-1`, body, headers: { 'content-length': String(body.length), ...h } });
  }
  t.equal(r.status, 200, 'the failed attempt did not create the key');
  t.equal(r.text, '', 'empty body');
  t.equal(r.headers.etag, `"${md5hex(body)}"`);
  r = await req({ method: 'PUT', path: `/${B}/chunk-1`, body, headers: { 'content-length': String(body.length), ...h } });
  t.equal(r.status, 412, 'exists');
  const results = await Promise.all(Array.from({ length: 4 }, () => req({ method: 'PUT', path: `/${B}/chunk-2`, body, headers: { 'content-length': String(body.length), ...h } })));
  t.same(results.map((x) => x.status).filter((s) => s === 200), [200], 'exactly one of four concurrent creates wins');
  t.ok(results.every((x) => [200, 409, 412].includes(x.status)), 'the others get 409 or 412');
  t.ok((await req({ method: 'GET', path: `/${B}/chunk-2` })).body.equals(body));
});

t.test('without Content-MD5 a PUT still gets its MD5 ETag (encrypted as it arrives, sent whole)', async (t) => {
  const body = randomBytes(SIZE);
  const r = await req({ method: 'PUT', path: `/${B}/plain.bin`, body, headers: { 'content-length': String(body.length) } });
  t.equal(r.headers.etag, `"${md5hex(body)}"`);
  const got = await req({ method: 'GET', path: `/${B}/plain.bin` });
  t.ok(got.body.equals(body));
  t.equal(got.headers.etag, `"${md5hex(body)}"`);
  const empty = await req({ method: 'PUT', path: `/${B}/empty.bin`, body: Buffer.alloc(0), headers: { 'content-length': '0', 'content-md5': md5b64(Buffer.alloc(0)) } });
  t.equal(empty.status, 200);
  t.equal((await req({ method: 'GET', path: `/${B}/empty.bin` })).body.length, 0, 'an empty object streams too');
});

t.test('bodies around chunk boundaries read back exact, streamed or not', async (t) => {
  const chunk = 64 * 1024; // the fixture's chunk size
  for (const size of [1, chunk - 1, chunk, chunk + 1, 2 * chunk, 5 * chunk + 7, 1_000_003]) {
    const body = randomBytes(size);
    for (const [mode, headers] of [['streamed', { 'content-md5': md5b64(body) }], ['whole', {}]] as const) {
      const key = `sizes/${mode}-${size}`;
      const r = await req({ method: 'PUT', path: `/${B}/${key}`, body, headers: { 'content-length': String(size), ...headers } });
      t.equal(r.headers.etag, `"${md5hex(body)}"`, `${key}: ETag`);
      t.ok((await req({ method: 'GET', path: `/${B}/${key}` })).body.equals(body), `${key}: exact`);
    }
  }
});

t.test('over HTTPS (TLS delivers the body in other pieces)', async (t) => {
  const g = await gatewayFixture(t, { https: true });
  const ep = g.httpsEndpoint!;
  const ca = g.gw.tls!.cert;
  for (const size of [1, 65_537, SIZE]) {
    const body = randomBytes(size);
    for (const [mode, headers] of [['streamed', { 'content-md5': md5b64(body), 'if-none-match': '*' }], ['whole', {}]] as const) {
      const key = `tls/${mode}-${size}`;
      const r = await s3request(ep, { ...creds, method: 'PUT', path: `/${g.bucket}/${key}`, body, headers: { 'content-length': String(size), ...headers }, ca });
      t.equal(r.status, 200, `${key}: ${r.text}`);
      t.equal(r.headers.etag, `"${md5hex(body)}"`, `${key}: ETag`);
      const got = await s3request(ep, { ...creds, method: 'GET', path: `/${g.bucket}/${key}`, ca });
      t.ok(got.body.equals(body), `${key}: exact`);
    }
  }
});
