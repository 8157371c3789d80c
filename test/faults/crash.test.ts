// kill -9 of `s3cryptfs serve-s3` in the middle of a large PUT: after a restart the new object is not
// visible (the earlier version reads back exactly) and `s3cryptfs gc` finds the stale multipart upload.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

import { Engine } from '../../src/engine/index.js';
import { newBucketConfig } from '../../src/format/index.js';
import { KeyFileSource, loadKeys } from '../../src/keys/index.js';
import { BIN, baseEnv, runCli } from '../cli/fixtures/cli.js';
import { withS3 } from '../helpers/s3server.js';
import { s3request, signRequest } from '../gateway/fixtures/signed.js';
import { startUploadsProxy } from '../ops/fixtures/uploads-proxy.js';

const AK = 'CRASHKEY01';
const SK = 'crash-secret-0123456789';

const s3 = await withS3(t);
const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-crash-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const keyFile = path.join(dir, 'master.key');
await writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
const { keys } = await loadKeys(new KeyFileSource(keyFile));
await Engine.init(s3.store, s3.bucket, '', newBucketConfig(keys, { names: 'plain' }));
const engine = await Engine.open({ store: s3.store, bucket: s3.bucket, prefix: '', keys });
const env = {
  ...baseEnv(dir), AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: s3.endpoint,
  S3CRYPTFS_KEY_FILE: keyFile, S3CRYPTFS_GATEWAY_ACCESS_KEY_ID: AK, S3CRYPTFS_GATEWAY_SECRET_ACCESS_KEY: SK, S3CRYPTFS_GATEWAY_BUCKETS: s3.bucket,
};

const children = new Set<ChildProcess>();
t.teardown(() => children.forEach((c) => c.kill('SIGKILL')));
async function startGateway(): Promise<{ child: ChildProcess; url: string; exited: Promise<unknown> }> {
  const child = spawn(process.execPath, [BIN, 'serve-s3', '--http-listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const exited = new Promise((resolve) => child.on('close', resolve));
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b));
  child.stderr!.on('data', (b: Buffer) => (out += b));
  for (let i = 0; i < 600 && !/S3 endpoint \(HTTP[^)]*\): http/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  const url = /S3 endpoint \(HTTP[^)]*\): (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
  if (!url) throw new Error(`serve-s3 did not start: ${out}`);
  return { child, url, exited };
}

t.test('kill -9 during a large PUT leaves the earlier version and a stale upload for gc', async (t) => {
  const old = randomBytes(64 * 1024);
  await engine.putBuffer('big.bin', old);
  const gw = await startGateway();
  const size = 24 * 1024 * 1024;
  const { signed } = await signRequest(gw.url, { method: 'PUT', path: `/${s3.bucket}/big.bin`, headers: { 'content-length': String(size) }, payloadHash: 'UNSIGNED-PAYLOAD', accessKeyId: AK, secretAccessKey: SK });
  const u = new URL(gw.url);
  const req = http.request({ host: u.hostname, port: u.port, method: 'PUT', path: signed.path, headers: signed.headers as Record<string, string>, agent: false });
  const answered = new Promise<string>((resolve) => {
    req.on('response', (res) => resolve(`status ${res.statusCode}`));
    req.on('error', (e) => resolve(`error ${e.message}`));
  });
  // Send ~10 MiB, then kill the gateway while the body is still coming.
  const piece = randomBytes(1024 * 1024);
  for (let i = 0; i < 10; i++) if (!req.write(piece)) await new Promise((r) => req.once('drain', r));
  await new Promise((r) => setTimeout(r, 300));
  gw.child.kill('SIGKILL');
  await gw.exited;
  const outcome = await Promise.race([answered, new Promise<string>((r) => setTimeout(() => r('no answer'), 5_000).unref())]);
  req.destroy();
  t.notMatch(outcome, /status 2/, `the client saw the failure (${outcome})`);

  const again = await startGateway();
  const got = await s3request(again.url, { method: 'GET', path: `/${s3.bucket}/big.bin`, accessKeyId: AK, secretAccessKey: SK });
  t.equal(got.status, 200);
  t.ok(got.body.equals(old), 'after restart the earlier version reads back exactly, no partial object');
  t.ok((await engine.getBuffer('big.bin')).equals(old), 'and so through the engine');
  again.child.kill('SIGTERM');
  await again.exited;

  // gc sees the upload the killed gateway left (s3rver lacks ListMultipartUploads: the ops proxy answers it).
  const proxy = await startUploadsProxy(s3.endpoint, s3.server.dir);
  t.teardown(() => proxy.stop());
  await new Promise((r) => setTimeout(r, 1_100));
  const r = await runCli(['gc', '--dry-run', '--older-than', '1s', `s3://${s3.bucket}`], { env: { ...env, AWS_ENDPOINT_URL: proxy.endpoint }, timeoutMs: 60_000 });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /would abort s3:\/\/\S+\/big\.bin upload/, `gc lists the stale upload: ${r.stdout}`);
});
