// serve-s3 over a faulty backend (test/faults/fixtures/fault-proxy.ts between the gateway and s3rver).
// A PUT answered 200 is visible with exactly its bytes; a PUT that fails answers 5xx (or drops the
// connection) and leaves the earlier version or, if the backend applied it, exactly the new one; a GET
// answered 200 with a complete body carries exactly the stored bytes. Backend retries are counted in
// the gateway store's stats.
import t from 'tap';
import { randomBytes } from 'node:crypto';

import { s3request } from '../gateway/fixtures/signed.js';
import { faultyGateway, ACCESS_KEY, SECRET_KEY } from './fixtures/gateway.js';
import { prng, randomFault } from './fixtures/fault-proxy.js';

const SEED = Number(process.env.FAULT_SEED ?? 424242);
const ROUNDS = Number(process.env.FAULT_ROUNDS ?? 14);
const BUDGET_MS = Number(process.env.FAULT_BUDGET_MS ?? 35_000);

const f = await faultyGateway(t, { maxAttempts: 3, requestTimeoutMs: 1_000 });
const bucket = f.buckets[0];
const direct = await f.direct(bucket);
const auth = { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY };

const req = (method: string, key: string, body?: Buffer) =>
  s3request(f.endpoint, { method, path: `/${bucket}/${key}`, body, ...auth }).catch((e: Error) => ({ status: 0, text: e.message, body: Buffer.alloc(0), headers: {} }));

t.test(`random backend faults under PUT/GET (seed ${SEED})`, async (t) => {
  const rand = prng(SEED);
  f.proxy.setDecide(() => randomFault(rand, 0.3, 2_500));
  const current = new Map<string, Buffer>();
  const tally = { put200: 0, putFailed: 0, get200: 0, getFailed: 0 };
  const started = Date.now();
  for (let round = 0; round < ROUNDS && Date.now() - started < BUDGET_MS; round++) {
    const key = `k${round % 3}.bin`;
    const data = randomBytes(Math.floor(rand() * 120 * 1024));
    const before = current.get(key);
    const put = await req('PUT', key, data);
    if (put.status === 200) {
      tally.put200++;
      t.ok((await direct.getBuffer(key)).equals(data), `round ${round}: PUT 200 is visible with exactly its bytes`);
      current.set(key, data);
    } else {
      tally.putFailed++;
      t.ok(put.status === 0 || put.status >= 500, `round ${round}: a failed PUT is visible as 5xx or a dropped connection (got ${put.status})`);
      const seen = await direct.getBuffer(key).catch(() => undefined);
      if (seen === undefined) t.equal(before, undefined, `round ${round}: only a never-written key may be missing`);
      else if (before && seen.equals(before)) t.pass(`round ${round}: earlier version intact`);
      else {
        t.ok(seen.equals(data), `round ${round}: otherwise exactly the new bytes`);
        current.set(key, data);
      }
    }
    for (const [k, expected] of current) {
      const got = await req('GET', k);
      if (got.status === 200) {
        tally.get200++;
        t.ok(got.body.equals(expected), `round ${round}: GET 200 of ${k} carries exactly the stored bytes`);
      } else {
        tally.getFailed++;
        t.ok(got.status === 0 || got.status >= 500, `round ${round}: failed GET is 5xx or dropped (got ${got.status} ${got.text.slice(0, 160)})`);
      }
    }
  }
  f.proxy.setDecide(() => ({ kind: 'forward' }));
  t.comment(`tally ${JSON.stringify(tally)}; backend requests ${f.proxy.log.length}, faulted ${f.proxy.log.filter((l) => l.fault !== 'forward').length}; store stats ${JSON.stringify(f.gw.store.stats)}`);
  t.ok(f.gw.store.stats.retries > 0, 'backend retries counted in the gateway store stats');
  for (const [k, expected] of current) {
    const got = await req('GET', k);
    t.equal(got.status, 200);
    t.ok(got.body.equals(expected), `${k} exact once faults stop`);
  }
});

t.test('a backend that keeps failing gives 5xx on PUT and the earlier version stays', async (t) => {
  const old = randomBytes(5000);
  t.equal((await req('PUT', 'stay.bin', old)).status, 200);
  f.proxy.setDecide((r) => (r.method === 'PUT' ? { kind: 'error', status: 503, code: 'SlowDown' } : { kind: 'forward' }));
  const put = await req('PUT', 'stay.bin', randomBytes(7000));
  f.proxy.setDecide(() => ({ kind: 'forward' }));
  t.ok(put.status >= 500, `PUT answered ${put.status}`);
  t.ok((await direct.getBuffer('stay.bin')).equals(old), 'earlier version intact');
});

t.test('a corrupted backend body never becomes a 200 with wrong bytes', async (t) => {
  const data = randomBytes(60 * 1024);
  t.equal((await req('PUT', 'cor.bin', data)).status, 200);
  for (const at of [3, 100, 20_000, 50_000]) {
    f.proxy.setDecide((r) => (r.method === 'GET' && r.headers.range !== undefined ? { kind: 'corrupt', at } : { kind: 'forward' }));
    const got = await req('GET', 'cor.bin');
    if (got.status === 200) t.ok(got.body.equals(data), `flip at ${at}: a 200 body is exact`);
    else t.pass(`flip at ${at}: refused (${got.status})`);
  }
  f.proxy.setDecide(() => ({ kind: 'forward' }));
});

t.test('injected 503s: retried with backoff, the request succeeds, /metrics counts the retries by operation', async (t) => {
  // The registry behind the admin listener's /metrics.
  const retries = async (operation: string) => {
    const text = await f.gw.metrics.text();
    const m = new RegExp(`^s3cryptfs_backend_retries_total\\{operation="${operation}"\\} (\\d+)$`, 'm').exec(text);
    return m ? Number(m[1]) : 0;
  };
  const putBefore = await retries('PutObject');
  const getBefore = await retries('GetObject');
  // The first two backend PUTs and the first backend GET of this key answer 503 SlowDown.
  let puts = 0;
  let gets = 0;
  const objectKey = direct.objectKey('retry-me.bin'); // names are encrypted in this store
  f.proxy.setDecide((r) => {
    if (decodeURIComponent(r.url.split('?')[0]) !== `/${bucket}/${objectKey}`) return { kind: 'forward' };
    if (r.method === 'PUT' && puts++ < 2) return { kind: 'error', status: 503, code: 'SlowDown' };
    if (r.method === 'GET' && gets++ < 1) return { kind: 'error', status: 503, code: 'SlowDown' };
    return { kind: 'forward' };
  });
  t.teardown(() => f.proxy.setDecide(() => ({ kind: 'forward' })));
  const data = randomBytes(20_000);
  const put = await req('PUT', 'retry-me.bin', data);
  t.equal(put.status, 200, 'PUT succeeds on the third attempt');
  t.equal(puts, 3, 'the backend saw three PUTs');
  t.equal(await retries('PutObject') - putBefore, 2, 's3cryptfs_backend_retries_total{operation="PutObject"} grew by the two retries');
  const got = await req('GET', 'retry-me.bin');
  t.equal(got.status, 200);
  t.ok(got.body.equals(data), 'GET exact after a retried backend GET');
  t.ok(gets >= 2, 'the backend GET was retried');
  t.ok(await retries('GetObject') - getBefore >= 1, 's3cryptfs_backend_retries_total{operation="GetObject"} grew');
  const text = await f.gw.metrics.text();
  t.match(text, /^# TYPE s3cryptfs_backend_retries_total counter$/m, 'exported as a Prometheus counter');
  t.match(text, /^s3cryptfs_backend_requests_total\{operation="PutObject"\} \d+$/m, 'backend requests by operation');
});
