// Hostile requests against serve-s3 (loopback, s3rver backend): oversized headers and bodies, a
// bounded slow-loris, odd and traversing keys, duplicate query parameters, skewed dates, expired
// presigned URLs, credentials used on a bucket they are not allowed on, a non-ASCII signature.
// No request may get a 500, hang, or reach outside its bucket; the gateway keeps serving.
import t, { type Test } from 'tap';
import net from 'node:net';
import { randomBytes } from 'node:crypto';

import { gatewayFixture, ACCESS_KEY, SECRET_KEY, OTHER_KEY, OTHER_SECRET } from '../gateway/fixtures/gateway.js';
import { rawRequest, s3request, signRequest, type Response } from '../gateway/fixtures/signed.js';

const f = await gatewayFixture(t, { buckets: 2, argv: { 'header-timeout': 2, 'max-object-size': 1024 * 1024 } });
const [b0, b1] = f.buckets;
const auth = { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY };
const url = () => new URL(f.endpoint);

async function healthy(t: Test) {
  const r = await s3request(f.endpoint, { method: 'GET', path: `/${b0}`, query: { 'list-type': '2' }, ...auth });
  t.equal(r.status, 200, 'the gateway still serves');
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, rej) => setTimeout(() => rej(new Error(`${what}: no answer in ${ms} ms`)), ms).unref())]);
}

t.test('an oversized header is refused and the gateway keeps serving', async (t) => {
  const r = await withTimeout(rawRequest(url(), 'GET', `/${b0}/x`, { 'x-amz-meta-big': 'a'.repeat(100_000) }).catch((e: Error) => ({ status: 0, text: e.message }) as Response), 10_000, 'big header');
  t.ok(r.status === 431 || r.status === 400 || r.status === 0, `answered ${r.status}`);
  await healthy(t);
});

t.test('a body over max-object-size is EntityTooLarge, not buffered', async (t) => {
  const body = randomBytes(1024 * 1024 + 10);
  const r = await withTimeout(s3request(f.endpoint, { method: 'PUT', path: `/${b0}/big.bin`, body, ...auth }).catch((e: Error) => ({ status: 0, text: e.message }) as Response), 20_000, 'big body');
  t.ok(r.status === 400 || r.status === 0, `answered ${r.status}`);
  if (r.status) t.match(r.text, /EntityTooLarge/);
  // A declared length far beyond the limit is refused before any body is read.
  const { signed } = await signRequest(f.endpoint, { method: 'PUT', path: `/${b0}/huge.bin`, headers: { 'content-length': String(10 ** 15) }, payloadHash: 'UNSIGNED-PAYLOAD', ...auth });
  const sock = net.connect(Number(url().port), '127.0.0.1');
  const head = `PUT /${b0}/huge.bin HTTP/1.1\r\n` + Object.entries(signed.headers).map(([k, v]) => `${k}: ${v}`).join('\r\n') + '\r\n\r\n';
  const answer = await withTimeout(new Promise<string>((resolve) => {
    let got = '';
    sock.on('data', (d) => {
      got += d.toString('latin1');
      if (got.includes('</Error>')) resolve(got);
    });
    sock.on('close', () => resolve(got));
    sock.on('error', () => resolve(got));
    sock.write(head);
  }), 10_000, 'declared huge length');
  sock.destroy();
  t.match(answer, /^HTTP\/1\.1 4\d\d/, 'refused with a 4xx without a body');
  t.notOk(await (await f.engine()).stat('huge.bin'), 'nothing stored');
  await healthy(t);
});

t.test('slow-loris: 20 connections trickling headers do not starve others and are closed', async (t) => {
  const socks: net.Socket[] = [];
  const closed: boolean[] = [];
  for (let i = 0; i < 20; i++) {
    const s = net.connect(Number(url().port), '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => (closed[i] = true));
    s.write(`GET /${b0}/x HTTP/1.1\r\nHost: x\r\n`);
    socks.push(s);
  }
  const started = Date.now();
  const timers: NodeJS.Timeout[] = [];
  const trickle = setInterval(() => socks.forEach((s) => !s.destroyed && s.write('X-A: b\r\n')), 300);
  timers.push(trickle);
  try {
    await healthy(t);
    t.ok(Date.now() - started < 5_000, 'a normal request is answered promptly meanwhile');
    // header-timeout is 2 s: the trickling connections must be cut within a bounded time.
    const deadline = Date.now() + 8_000;
    while (Date.now() < deadline && closed.filter(Boolean).length < socks.length) await new Promise((r) => setTimeout(r, 200));
    t.equal(closed.filter(Boolean).length, socks.length, 'every slow connection was closed by the header timeout');
  } finally {
    clearInterval(trickle);
    for (const s of socks) s.destroy();
  }
});

t.test('odd keys round-trip exactly or are refused with a 4xx; nothing escapes the bucket', async (t) => {
  const keys = ['..', '../escape', 'a/../b', 'a//b', '/lead', './dot', 'ünï/cødé/🗝', 'k'.repeat(1024), 'k'.repeat(1025), 'ctl\u0001\u001f', 'tab\tnl\n', 'sp ace+plus', '%2e%2e', 'a\u0000b', 'x/'.repeat(200) + 'y'];
  for (const key of keys) {
    const data = randomBytes(100);
    const enc = '/' + b0 + '/' + key.split('/').map(encodeURIComponent).join('/');
    const put = await s3request(f.endpoint, { method: 'PUT', path: enc, body: data, ...auth }).catch((e: Error) => ({ status: 0, text: e.message }) as Response);
    t.not(put.status, 500, `PUT ${JSON.stringify(key.slice(0, 40))} (${key.length}) is not a 500: ${put.status} ${put.status === 500 ? put.text.slice(0, 300) : ""}`);
    if (put.status === 200) {
      const get = await s3request(f.endpoint, { method: 'GET', path: enc, ...auth });
      t.equal(get.status, 200);
      t.ok(get.body.equals(data), `${JSON.stringify(key.slice(0, 40))} reads back exactly`);
    } else t.ok(put.status >= 400 && put.status < 500, `refused with ${put.status}`);
  }
  const other = await (async () => {
    const r = await s3request(f.endpoint, { method: 'GET', path: `/${b1}`, query: { 'list-type': '2' }, ...auth });
    return r.text;
  })();
  t.notMatch(other, /<Key>/, 'nothing appeared in the other bucket');
  const raw = await f.store.list(b1, {}).catch(() => ({ objects: [] as { key: string }[] }));
  t.ok(raw.objects.every((o) => o.key === '.s3cryptfs.json' || !o.key.includes('escape')), 'no backend object outside its bucket');
  t.equal(await f.s3.port > 0, true);
});

t.test('duplicate query parameters are not a 500', async (t) => {
  for (const qs of ['list-type=2&list-type=2', 'list-type=2&prefix=a&prefix=b', 'list-type=2&max-keys=1&max-keys=-5', 'uploads&uploads', 'list-type=2&continuation-token=%ff%fe']) {
    const { signed } = await signRequest(f.endpoint, { method: 'GET', path: `/${b0}`, ...auth });
    // Signed without the query: the answer must be a clean 4xx (signature), or a 200 if the query is unsigned-tolerant.
    const r = await rawRequest(url(), 'GET', `/${b0}?${qs}`, signed.headers as Record<string, string>);
    t.ok(r.status < 500, `?${qs}: ${r.status}`);
  }
  await healthy(t);
});

t.test('skewed dates, expired presigned URLs, another client\'s bucket, a non-ASCII signature: 403', async (t) => {
  for (const skew of [-3600_000, 3600_000, -20 * 60_000]) {
    const r = await s3request(f.endpoint, { method: 'GET', path: `/${b0}`, query: { 'list-type': '2' }, signingDate: new Date(Date.now() + skew), ...auth });
    t.equal(r.status, 403, `date skewed by ${skew / 60_000} min`);
    t.match(r.text, /RequestTimeTooSkewed|AccessDenied/);
  }
  const presigned = await signRequest(f.endpoint, { method: 'GET', path: `/${b0}/p.bin`, presign: 60, signingDate: new Date(Date.now() - 120_000), ...auth });
  const qs = Object.entries(presigned.signed.query ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
  const expired = await rawRequest(url(), 'GET', `/${b0}/p.bin?${qs}`, { host: url().host });
  t.equal(expired.status, 403, 'presigned URL past its expiry');
  const future = await signRequest(f.endpoint, { method: 'GET', path: `/${b0}/p.bin`, presign: 60, signingDate: new Date(Date.now() + 3600_000), ...auth });
  const fqs = Object.entries(future.signed.query ?? {}).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&');
  t.equal((await rawRequest(url(), 'GET', `/${b0}/p.bin?${fqs}`, { host: url().host })).status, 403, 'presigned URL dated an hour ahead');
  const other = await s3request(f.endpoint, { method: 'GET', path: `/${b1}`, query: { 'list-type': '2' }, accessKeyId: OTHER_KEY, secretAccessKey: OTHER_SECRET });
  t.equal(other.status, 403, 'OTHER_KEY on a bucket it is not allowed on');
  const otherPut = await s3request(f.endpoint, { method: 'PUT', path: `/${b1}/steal`, body: 'x', accessKeyId: OTHER_KEY, secretAccessKey: OTHER_SECRET });
  t.equal(otherPut.status, 403, 'and cannot write there');
  t.equal((await s3request(f.endpoint, { method: 'GET', path: `/${b0}`, query: { 'list-type': '2' }, accessKeyId: OTHER_KEY, secretAccessKey: OTHER_SECRET })).status, 200, 'but may use its own');
  const { signed } = await signRequest(f.endpoint, { method: 'GET', path: `/${b0}`, ...auth });
  const h = { ...(signed.headers as Record<string, string>) };
  h.authorization = h.authorization.replace(/Signature=([0-9a-f]{63})[0-9a-f]/, 'Signature=$1\u00e9');
  const bad = await rawRequest(url(), 'GET', `/${b0}`, h);
  t.equal(bad.status, 403, 'a signature with a non-ASCII character is SignatureDoesNotMatch, not a 500');
  await healthy(t);
});
