// Bounded load on `serve-s3` (a child process on loopback, over a local s3rver): many concurrent
// clients mix PUT (0 B–3 MiB, now and then a two-part multipart upload of 5–6 MiB), GET, ranged GET,
// ListObjectsV2 and DELETE. Each client owns its own keys, so the expected final state is exact;
// everybody also reads a few shared objects. Afterwards every key is checked byte-for-byte through
// the gateway and through an engine of its own.
// Bounds: S3CRYPTFS_LOAD_SECONDS, S3CRYPTFS_LOAD_CLIENTS, S3CRYPTFS_LOAD_REQUESTS (npm run load).
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

import { Engine } from '../../src/engine/index.js';
import { newBucketConfig } from '../../src/format/index.js';
import { KeyFileSource, loadKeys } from '../../src/keys/index.js';
import { BIN, baseEnv } from '../cli/fixtures/cli.js';
import { s3request, type Response } from '../gateway/fixtures/signed.js';
import { withS3 } from '../helpers/s3server.js';
import { envInt, Latencies, peakRssMiB, prng, SEED } from './fixtures/load.js';

const SECONDS = envInt('S3CRYPTFS_LOAD_SECONDS', 20);
const CLIENTS = envInt('S3CRYPTFS_LOAD_CLIENTS', 32);
const MAX_REQUESTS = envInt('S3CRYPTFS_LOAD_REQUESTS', 3000);
const KEYS_PER_CLIENT = 6;
const AK = 'LOADKEY0001';
const SK = 'load-secret-0123456789abcdef';
const KiB = 1024;
const MiB = 1024 * KiB;

const s3 = await withS3(t);
const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-load-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const keyFile = path.join(dir, 'master.key');
await writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
const { keys } = await loadKeys(new KeyFileSource(keyFile));
// 64 KiB chunks: a 3 MiB object is ~48 chunks, so ranged GETs cross chunk boundaries.
await Engine.init(s3.store, s3.bucket, '', newBucketConfig(keys, { names: 'aes-siv', chunkSize: 64 * KiB }));
const env = {
  ...baseEnv(dir), AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: s3.endpoint,
  S3CRYPTFS_KEY_FILE: keyFile, S3CRYPTFS_GATEWAY_ACCESS_KEY_ID: AK, S3CRYPTFS_GATEWAY_SECRET_ACCESS_KEY: SK, S3CRYPTFS_GATEWAY_BUCKETS: s3.bucket,
};

let child: ChildProcess | undefined;
t.teardown(() => { child?.kill('SIGKILL'); });
async function startGateway(): Promise<{ child: ChildProcess; url: string; exited: Promise<unknown> }> {
  const c = spawn(process.execPath, [BIN, 'serve-s3', '--http-listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child = c;
  const exited = new Promise((resolve) => c.on('close', resolve));
  let out = '';
  c.stdout!.on('data', (b: Buffer) => (out += b));
  c.stderr!.on('data', (b: Buffer) => (out += b));
  for (let i = 0; i < 1200 && !/S3 endpoint \(HTTP[^)]*\): http/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  const url = /S3 endpoint \(HTTP[^)]*\): (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
  if (!url) throw new Error(`serve-s3 did not start: ${out}`);
  return { child: c, url, exited };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const keysOf = (xml: string) => [...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]);

t.test(`${CLIENTS} clients mixing PUT/multipart/GET/ranged GET/LIST/DELETE for ${SECONDS} s`, async (t) => {
  const gw = await startGateway();
  const lat = new Latencies();
  const unexpected: string[] = [];
  let served = 0;
  let bytesUp = 0;
  let bytesDown = 0;
  const req = async (op: string, r: { method: string; key: string; query?: Record<string, string>; headers?: Record<string, string>; body?: Buffer }): Promise<Response | undefined> => {
    const start = performance.now();
    try {
      const res = await s3request(gw.url, { method: r.method, path: r.key === '' ? `/${s3.bucket}` : `/${s3.bucket}/${r.key}`, query: r.query, headers: r.headers, body: r.body, accessKeyId: AK, secretAccessKey: SK });
      lat.add(op, performance.now() - start);
      served++;
      bytesDown += res.body.length;
      if (r.body) bytesUp += r.body.length;
      return res;
    } catch (err) {
      served++;
      unexpected.push(`${op} ${r.key}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const expect = (ok: boolean, what: string) => { if (!ok) unexpected.push(what); };

  // Shared read-only objects, written through the gateway before the load starts.
  const shared = new Map<string, Buffer>();
  for (const [i, size] of [0, 1, 100 * KiB + 7, 1 * MiB + 17, 3 * MiB].entries()) {
    const body = randomBytes(size);
    const res = await req('put-shared', { method: 'PUT', key: `shared/s${i}`, body });
    t.equal(res?.status, 200, `shared object ${i} (${size} B) stored`);
    shared.set(`shared/s${i}`, body);
  }
  const sharedKeys = [...shared.keys()];

  // What each client knows it stored: key -> sha256 and size, or absent after a DELETE.
  const model = new Map<string, { sha: string; size: number }>();
  const deadline = Date.now() + SECONDS * 1000;
  const done = () => Date.now() >= deadline || served >= MAX_REQUESTS;
  const counts: Record<string, number> = {};

  async function client(id: number): Promise<void> {
    const rnd = prng(SEED + id);
    const pick = <T>(a: T[]) => a[Math.floor(rnd() * a.length)];
    const mine = Array.from({ length: KEYS_PER_CLIENT }, (_, k) => `c${id}/k${k}${k % 2 ? '/deep name é' : ''}`);
    const size = () => {
      const r = rnd();
      // Mostly small, some medium, a few up to 3 MiB (single-PUT bodies).
      return r < 0.1 ? 0 : r < 0.7 ? Math.floor(rnd() * 64 * KiB) : r < 0.95 ? Math.floor(rnd() * 1 * MiB) : Math.floor(rnd() * 3 * MiB);
    };
    while (!done()) {
      const r = rnd();
      const key = pick(mine);
      const enc = key.split('/').map(encodeURIComponent).join('/');
      const known = model.get(key);
      if (r < 0.01) {
        // Multipart: a 5 MiB part (the S3 minimum for all but the last) and a 0–1 MiB tail.
        const parts = [randomBytes(5 * MiB), randomBytes(Math.floor(rnd() * MiB))];
        const created = await req('MPU-create', { method: 'POST', key: enc, query: { uploads: '' } });
        const uploadId = created && /<UploadId>([^<]+)<\/UploadId>/.exec(created.text)?.[1];
        if (!created) continue;
        expect(created.status === 200 && !!uploadId, `CreateMultipartUpload ${key}: ${created.status} ${created.text.slice(0, 200)}`);
        if (!uploadId) continue;
        const etags: string[] = [];
        for (const [i, body] of parts.entries()) {
          const res = await req('MPU-part', { method: 'PUT', key: enc, query: { partNumber: String(i + 1), uploadId }, body });
          if (res) expect(res.status === 200 && !!res.headers.etag, `UploadPart ${i + 1} ${key}: ${res.status} ${res.text.slice(0, 200)}`);
          etags.push(String(res?.headers.etag));
        }
        const xml = `<CompleteMultipartUpload>${etags.map((e, i) => `<Part><PartNumber>${i + 1}</PartNumber><ETag>${e}</ETag></Part>`).join('')}</CompleteMultipartUpload>`;
        const done = await req('MPU-complete', { method: 'POST', key: enc, query: { uploadId }, body: Buffer.from(xml) });
        if (done) {
          // S3 may answer 200 with an <Error> body; only a CompleteMultipartUploadResult counts.
          const ok = done.status === 200 && /<CompleteMultipartUploadResult/.test(done.text);
          expect(ok, `CompleteMultipartUpload ${key}: ${done.status} ${done.text.slice(0, 200)}`);
          if (ok) model.set(key, { sha: sha(Buffer.concat(parts)), size: parts[0].length + parts[1].length });
        }
      } else if (r < 0.3) {
        const body = randomBytes(size());
        const res = await req('PUT', { method: 'PUT', key: enc, body });
        if (res) {
          expect(res.status === 200, `PUT ${key}: ${res.status} ${res.text.slice(0, 200)}`);
          if (res.status === 200) model.set(key, { sha: sha(body), size: body.length });
        }
      } else if (r < 0.5) {
        const res = await req('GET', { method: 'GET', key: enc });
        if (res) {
          if (known) expect(res.status === 200 && res.body.length === known.size && sha(res.body) === known.sha, `GET ${key}: ${res.status}, ${res.body.length} B, expected ${known.size} B exact`);
          else expect(res.status === 404 && /NoSuchKey/.test(res.text), `GET of absent ${key}: ${res.status}`);
        }
      } else if (r < 0.7) {
        const skey = pick(sharedKeys);
        const want = shared.get(skey)!;
        const ranged = want.length > 0 && rnd() < 0.6;
        const from = ranged ? Math.floor(rnd() * want.length) : 0;
        const to = ranged ? Math.min(want.length - 1, from + Math.floor(rnd() * 300 * KiB)) : want.length - 1;
        const res = await req(ranged ? 'GET-range' : 'GET-shared', { method: 'GET', key: skey, headers: ranged ? { range: `bytes=${from}-${to}` } : undefined });
        if (res) {
          const exp = ranged ? want.subarray(from, to + 1) : want;
          expect(res.status === (ranged ? 206 : 200) && res.body.equals(exp), `GET ${skey} ${ranged ? `bytes=${from}-${to}` : ''}: ${res.status}, ${res.body.length} B, not the ${exp.length} stored bytes`);
        }
      } else if (r < 0.82) {
        const res = await req('LIST', { method: 'GET', key: '', query: { 'list-type': '2', prefix: `c${id}/` } });
        if (res) {
          const got = keysOf(res.text).sort();
          const want = mine.filter((k) => model.has(k)).map((k) => k.replace(/&/g, '&amp;')).sort();
          expect(res.status === 200 && JSON.stringify(got) === JSON.stringify(want), `LIST c${id}/: ${res.status} ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
        }
      } else {
        const res = await req('DELETE', { method: 'DELETE', key: enc });
        if (res) {
          expect(res.status === 204, `DELETE ${key}: ${res.status} ${res.text.slice(0, 200)}`);
          if (res.status === 204) model.delete(key);
        }
      }
      counts.ops = (counts.ops ?? 0) + 1;
    }
  }

  const began = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i)));
  const elapsed = (performance.now() - began) / 1000;
  const rss = await peakRssMiB(gw.child.pid!);

  // Final state, through the gateway: every key a client holds reads exactly; deleted keys are absent.
  let verified = 0;
  for (let id = 0; id < CLIENTS; id++) {
    for (let k = 0; k < KEYS_PER_CLIENT; k++) {
      const key = `c${id}/k${k}${k % 2 ? '/deep name é' : ''}`;
      const res = await s3request(gw.url, { method: 'GET', path: `/${s3.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`, accessKeyId: AK, secretAccessKey: SK });
      const want = model.get(key);
      if (want) expect(res.status === 200 && sha(res.body) === want.sha && res.body.length === want.size, `final ${key}: ${res.status}, ${res.body.length} B not exact`);
      else expect(res.status === 404, `final ${key} was deleted but answers ${res.status}`);
      verified++;
    }
  }
  gw.child.kill('SIGTERM');
  await gw.exited;

  // And through an engine of its own (no gateway cache involved): the listing is exactly the model.
  const engine = await Engine.open({ store: s3.store, bucket: s3.bucket, prefix: '', keys });
  const listed: string[] = [];
  for await (const page of engine.listAll('', { recursive: true })) listed.push(...page.files.map((f) => f.path));
  const wantAll = [...model.keys(), ...sharedKeys].sort();
  t.same(listed.sort(), wantAll, `the store holds exactly the ${model.size} client keys and ${sharedKeys.length} shared objects`);
  for (const [key, want] of model) {
    const got = await engine.getBuffer(key);
    expect(sha(got) === want.sha, `engine read of ${key} not exact`);
  }

  t.same(unexpected.slice(0, 20), [], 'no unexpected status, error or wrong byte');
  t.equal(unexpected.length, 0, `${unexpected.length} unexpected outcomes`);
  t.ok(served > CLIENTS, `requests were served (${served})`);
  t.comment(`gateway load: ${CLIENTS} clients, ${elapsed.toFixed(1)} s, ${served} requests (${(served / elapsed).toFixed(0)}/s), ` +
    `${(bytesUp / MiB).toFixed(0)} MiB up, ${(bytesDown / MiB).toFixed(0)} MiB down, ${unexpected.length} unexpected ` +
    `(error rate ${((unexpected.length / served) * 100).toFixed(2)} %), ${verified} keys verified at the end, ${model.size} present; serve-s3 peak RSS ${rss} MiB`);
  t.comment(lat.summary());
});
