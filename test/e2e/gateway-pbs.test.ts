// Proxmox Backup Server's request shapes (shared/reference/pbs-s3-client.md) against the gateway
// over HTTPS with a pinned self-signed certificate: every header signed, Content-MD5 on bodies,
// If-None-Match on chunk uploads, ":" in keys (%3A on the wire), DeleteObjects without Quiet,
// copy sources without a leading "/", path style with the trailing "/" on bucket calls and
// virtual-host style; and the exact responses PBS insists on.
import { createHash, randomBytes } from 'node:crypto';
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { ACCESS_KEY, gatewayFixture, SECRET_KEY } from '../gateway/fixtures/gateway.js';
import { s3request, type SignedRequest } from '../gateway/fixtures/signed.js';

const f = await gatewayFixture(t, { https: true, argv: { 'virtual-host': 's3.pbs.test', 'tls-hosts': 'localhost,127.0.0.1,*.s3.pbs.test' } });
const ep = f.httpsEndpoint!;
const ca = f.gw.tls!.cert;
const B = f.bucket;
const creds = { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY, region: 'us-west-1', ca };
const md5 = (b: Buffer) => createHash('md5').update(b).digest('base64');
const IMF = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$/;
const req = (r: Omit<SignedRequest, 'accessKeyId' | 'secretAccessKey'>) => s3request(ep, { ...creds, ...r });
const enc = (key: string) => key.split('/').map((s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase())).join('/');
const put = (key: string, body: Buffer, extra: Record<string, string> = {}) =>
  req({
    method: 'PUT', path: `/${B}/${enc(key)}`, body,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length), ...(body.length ? { 'content-md5': md5(body) } : {}), ...extra },
  });

const digest = createHash('sha256').update(randomBytes(8)).digest('hex');
const chunkKey = `store/.chunks/${digest.slice(0, 4)}/${digest}`;
const snap = 'store/.cnt/vm/100/2025-07-14T14:20:02Z';
const chunk = randomBytes(4 * 1024 * 1024 + 13);

t.test('TLS: the certificate fingerprint is what the gateway printed', async (t) => {
  t.equal(new X509Certificate(ca).fingerprint256.toLowerCase(), f.gw.fingerprint);
  t.match(f.gw.fingerprint!, /^([0-9a-f]{2}:){31}[0-9a-f]{2}$/);
});

t.test('datastore creation: HeadBucket, GET .in-use 404, PUT .in-use, zero chunk', async (t) => {
  let r = await req({ method: 'HEAD', path: `/${B}/` });
  t.equal(r.status, 200, 'HeadBucket with trailing slash');
  t.equal(r.body.length, 0);
  r = await req({ method: 'GET', path: `/${B}/store/.in-use` });
  t.equal(r.status, 404, '.in-use absent');
  t.match(r.text, /<Code>NoSuchKey<\/Code>/);
  r = await put('store/.in-use', Buffer.from('{"hostname":"pbs"}'));
  t.equal(r.status, 200);
  t.equal(r.body.length, 0, 'PUT answers with an empty body');
  t.match(String(r.headers.etag), /^"[0-9a-f]{32}"$/);
  if (r.headers.date !== undefined) t.match(String(r.headers.date), IMF);
});

t.test('chunk upload: no-replace PUT 200, then 412; GET returns the exact bytes and headers', async (t) => {
  let r = await put(chunkKey, chunk, { 'if-none-match': '*' });
  t.equal(r.status, 200, r.text);
  t.equal(r.body.length, 0);
  t.equal(r.headers.etag, `"${createHash('md5').update(chunk).digest('hex')}"`);
  r = await put(chunkKey, chunk, { 'if-none-match': '*' });
  t.equal(r.status, 412, 'second no-replace PUT: already exists');
  r = await req({ method: 'GET', path: `/${B}/${enc(chunkKey)}` });
  t.equal(r.status, 200);
  t.ok(r.body.equals(chunk), 'same bytes');
  t.equal(r.headers['content-length'], String(chunk.length));
  t.equal(r.headers['content-type'], 'application/octet-stream');
  t.ok(r.headers.etag);
  t.match(String(r.headers['last-modified']), IMF);
  t.equal(String(r.headers['last-modified']).length, 29);
  t.match(String(r.headers.date), IMF);
});

t.test('snapshot files with ":" in keys, markers, replace PUTs', async (t) => {
  for (const file of ['index.json.blob', 'drive-scsi0.img.fidx', 'client.log.blob']) {
    const r = await put(`${snap}/${file}`, randomBytes(1000 + file.length));
    t.equal(r.status, 200, file);
  }
  let r = await put(`${snap}/.protected`, Buffer.alloc(0), { 'if-none-match': '*' });
  t.equal(r.status, 200, 'empty marker, no Content-MD5');
  r = await put('store/.cnt/vm/100/owner', Buffer.from('root@pam\n'));
  t.equal(r.status, 200);
  r = await put('store/.cnt/vm/100/owner', Buffer.from('backup@pbs\n'));
  t.equal(r.status, 200, 'replace');
  r = await req({ method: 'GET', path: `/${B}/${enc('store/.cnt/vm/100/owner')}` });
  t.equal(r.text, 'backup@pbs\n');
});

t.test('ListObjectsV2 as PBS sends it (prefix without trailing slash, %2F), contiguous Contents', async (t) => {
  const r = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2', prefix: 'store/.cnt/vm/10' } });
  t.equal(r.status, 200, r.text);
  const keys = [...r.text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
  t.same(keys, [`${snap}/.protected`, `${snap}/client.log.blob`, `${snap}/drive-scsi0.img.fidx`, `${snap}/index.json.blob`, 'store/.cnt/vm/100/owner']);
  t.match(r.text, /<IsTruncated>false<\/IsTruncated>/);
  const contents = r.text.slice(r.text.indexOf('<Contents>'), r.text.lastIndexOf('</Contents>') + 11);
  t.equal(contents.replace(/<Contents>.*?<\/Contents>/g, ''), '', 'Contents are contiguous');
  for (const m of r.text.matchAll(/<Contents>(.*?)<\/Contents>/g)) t.match(m[1], /<Key>.+<\/Key><LastModified>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z<\/LastModified><ETag>&quot;[^<]+&quot;<\/ETag><Size>\d+<\/Size>/);
  const chunks = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2', prefix: 'store/.chunks/' } });
  t.match(chunks.text, new RegExp(`<Key>${chunkKey}</Key>.*<Size>${chunk.length}</Size>`), 'plaintext size');
});

t.test('paging with continuation tokens', async (t) => {
  const seen: string[] = [];
  let token: string | undefined;
  let pages = 0;
  do {
    const r = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2', prefix: 'store/', 'max-keys': '2', ...(token ? { 'continuation-token': token } : {}) } });
    t.equal(r.status, 200);
    seen.push(...[...r.text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]));
    token = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(r.text)?.[1];
    pages++;
  } while (token && pages < 20);
  t.equal(seen.length, 7);
  t.same(seen, [...seen].sort());
  t.ok(pages >= 4);
});

t.test('verify renames a corrupt chunk: CopyObject (no leading "/", REPLACE) then DeleteObject 204', async (t) => {
  const bad = `${chunkKey}.0.bad`;
  let r = await req({
    method: 'PUT', path: `/${B}/${enc(bad)}`,
    headers: { 'x-amz-copy-source': `${B}/${enc(chunkKey)}`, 'x-amz-metadata-directive': 'REPLACE', 'content-type': 'application/octet-stream', 'content-length': '0' },
  });
  t.equal(r.status, 200, r.text);
  t.match(r.text, /<CopyObjectResult[^>]*><LastModified>[^<]+<\/LastModified><ETag>&quot;[0-9a-f]{32}&quot;<\/ETag><\/CopyObjectResult>/);
  r = await req({ method: 'DELETE', path: `/${B}/${enc(chunkKey)}` });
  t.equal(r.status, 204);
  r = await req({ method: 'GET', path: `/${B}/${enc(bad)}` });
  t.equal(r.status, 200);
  t.ok(r.body.equals(chunk));
  t.equal(r.headers['content-type'], 'application/octet-stream', 'content type after a REPLACE copy');
  const snapCopy = await req({
    method: 'PUT', path: `/${B}/${enc('store/.cnt/vm/101/2025-07-14T14:20:02Z/index.json.blob')}`,
    headers: { 'x-amz-copy-source': `${B}/${enc(`${snap}/index.json.blob`)}`, 'x-amz-metadata-directive': 'REPLACE', 'content-type': 'application/octet-stream', 'content-length': '0' },
  });
  t.equal(snapCopy.status, 200, 'copy source with %3A');
});

t.test('DeleteObjects without Quiet: every key reported in contiguous <Deleted>', async (t) => {
  const list = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2', prefix: 'store/.cnt/vm/10' } });
  const keys = [...list.text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);
  t.ok(keys.length >= 6);
  const body = Buffer.from(`<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${keys.map((k) => `<Object><Key>${k}</Key></Object>`).join('')}</Delete>`);
  const r = await req({ method: 'POST', path: `/${B}/`, query: { delete: '' }, body, headers: { 'content-length': String(body.length), 'content-md5': md5(body) } });
  t.equal(r.status, 200, r.text);
  const deleted = [...r.text.matchAll(/<Deleted><Key>([^<]*)<\/Key><\/Deleted>/g)].map((m) => m[1]);
  t.same(deleted.sort(), [...keys].sort());
  t.notMatch(r.text, /<Error>/);
  const after = await req({ method: 'GET', path: `/${B}/`, query: { 'list-type': '2', prefix: 'store/.cnt/' } });
  t.notMatch(after.text, /<Contents>/);
});

t.test('virtual-host style: the bucket in the Host header, "/" paths', async (t) => {
  const url = new URL(ep);
  const vhost = (r: Omit<SignedRequest, 'accessKeyId' | 'secretAccessKey'>) =>
    s3request(ep, { ...creds, ...r, headers: { ...(r.headers ?? {}), host: `${B}.s3.pbs.test:${url.port}` } });
  let r = await vhost({ method: 'HEAD', path: '/' });
  t.equal(r.status, 200, 'HeadBucket');
  r = await vhost({ method: 'PUT', path: `/${enc('store/.s3-client-test')}`, body: Buffer.alloc(0), headers: { 'content-type': 'application/octet-stream', 'content-length': '0' } });
  t.equal(r.status, 200);
  r = await vhost({ method: 'GET', path: `/${enc('store/.s3-client-test')}` });
  t.equal(r.status, 200);
  t.equal(r.headers['content-length'], '0');
  r = await vhost({ method: 'DELETE', path: `/${enc('store/.s3-client-test')}` });
  t.equal(r.status, 204);
  r = await vhost({ method: 'GET', path: '/', query: { 'list-type': '2', prefix: 'store/.chunks/' } });
  t.match(r.text, /\.0\.bad<\/Key>/);
});

t.test('ListBuckets with CreationDate', async (t) => {
  const r = await req({ method: 'GET', path: '/' });
  t.equal(r.status, 200);
  t.match(r.text, new RegExp(`<Bucket><Name>${B}</Name><CreationDate>\\d{4}-\\d\\d-\\d\\dT[^<]+Z</CreationDate></Bucket>`));
});
