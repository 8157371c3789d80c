// `s3cryptfs serve-s3` as a process: --help documents the options, it starts from flags and
// environment variables, prints its endpoints and certificate fingerprint, serves, and stops
// cleanly on SIGTERM; config errors are one line with exit code 10.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { Engine } from '../../src/engine/index.js';
import { newBucketConfig } from '../../src/format/index.js';
import { KeyFileSource, loadKeys } from '../../src/keys/index.js';
import { BIN, baseEnv, runCli } from '../cli/fixtures/cli.js';
import { withS3 } from '../helpers/s3server.js';
import { s3request } from '../gateway/fixtures/signed.js';

t.test('--help documents every setting', async (t) => {
  const home = await mkdtemp(path.join(tmpdir(), 's3cryptfs-gwcli-'));
  t.teardown(() => rm(home, { recursive: true, force: true }));
  const r = await runCli(['serve-s3', '--help'], { env: baseEnv(home) });
  t.equal(r.code, 0, r.stderr);
  for (const opt of ['--listen', '--http-listen', '--admin-listen', '--tls-self-signed', '--buckets', '--conditional-writes', '--max-object-size', '--idle-timeout', 'S3CRYPTFS_GATEWAY_ACCESS_KEY_ID', '--gateway-config']) {
    t.match(r.stdout, opt);
  }
  const bad = await runCli(['serve-s3', '--http-listen', '127.0.0.1:0'], { env: { ...baseEnv(home), S3CRYPTFS_KEY: randomBytes(32).toString('hex') } });
  t.equal(bad.code, 10, 'no buckets: config error');
  t.match(bad.stderr, /^s3cryptfs: no buckets to serve/);
  t.equal(bad.stderr.trim().split('\n').length, 1);
});

t.test('serves from flags and environment, stops on SIGTERM', async (t) => {
  const s3 = await withS3(t);
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-gwcli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const keyFile = path.join(dir, 'k.key');
  await writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
  const { keys } = await loadKeys(new KeyFileSource(keyFile));
  await Engine.init(s3.store, s3.bucket, '', newBucketConfig(keys, { names: 'plain' }));
  const env = {
    ...baseEnv(dir), AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: s3.endpoint,
    S3CRYPTFS_KEY_FILE: keyFile, S3CRYPTFS_GATEWAY_ACCESS_KEY_ID: 'CLIENTKEY01', S3CRYPTFS_GATEWAY_SECRET_ACCESS_KEY: 'client-secret-0123456789',
    S3CRYPTFS_GATEWAY_BUCKETS: s3.bucket,
  };
  const child = spawn(process.execPath, [BIN, 'serve-s3', '--http-listen', '127.0.0.1:0', '--listen', '127.0.0.1:0', '--tls-self-signed',
    '--tls-cert', path.join(dir, 'tls/gw.crt'), '--tls-key', path.join(dir, 'tls/gw.key'), '--admin-listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b));
  child.stderr.on('data', (b: Buffer) => (err += b));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  t.teardown(() => child.kill('SIGKILL'));
  for (let i = 0; i < 300 && !/buckets:/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(out, /S3 endpoint \(HTTPS\): https:\/\/127\.0\.0\.1:\d+/, err);
  t.match(out, /certificate fingerprint \(SHA-256\): ([0-9a-f]{2}:){31}[0-9a-f]{2}/);
  const http = /S3 endpoint \(HTTP, loopback\): (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
  t.ok(http);
  const body = 'through the command';
  let r = await s3request(http!, { accessKeyId: 'CLIENTKEY01', secretAccessKey: 'client-secret-0123456789', method: 'PUT', path: `/${s3.bucket}/x.txt`, body, headers: { 'content-length': String(body.length) } });
  t.equal(r.status, 200, r.text);
  r = await s3request(http!, { accessKeyId: 'CLIENTKEY01', secretAccessKey: 'client-secret-0123456789', method: 'GET', path: `/${s3.bucket}/x.txt` });
  t.equal(r.text, body);
  child.kill('SIGTERM');
  t.equal(await exited, 0, `exit 0 on SIGTERM (${err})`);
  t.match(out, /stopping/);
  // The generated pair was saved: a restart keeps the fingerprint.
  const again = await runCli(['serve-s3', '--listen', '127.0.0.1:0', '--tls-cert', path.join(dir, 'tls/gw.crt'), '--tls-key', path.join(dir, 'tls/gw.key'), '--buckets', 'nope-bucket', '--http-listen', '0.0.0.0:0'], { env });
  t.equal(again.code, 10, 'plain HTTP on a public address is refused');
  t.match(again.stderr, /plain HTTP/);
});
