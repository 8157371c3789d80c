// s3cmd and rclone (Debian's packages) against the gateway over s3rver: put/get/sync/check.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { ACCESS_KEY, clientEnv, gatewayFixture, SECRET_KEY } from '../gateway/fixtures/gateway.js';
import { missing, run, TOOLS } from '../gateway/fixtures/tools.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function makeTree(root: string): Promise<Record<string, Buffer>> {
  const files: Record<string, Buffer> = {
    'top.txt': Buffer.from('top level\n'),
    'd1/a.bin': randomBytes(200_000),
    'd1/d2/b.bin': randomBytes(9 * 1024 * 1024 + 17), // multipart for rclone (--s3-upload-cutoff below) and s3cmd (chunk 5 MiB)
    'd1/d2/with space:colon.txt': Buffer.from('odd name\n'),
    'empty': Buffer.alloc(0),
  };
  const past = new Date(Date.now() - 120_000);
  for (const [p, b] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, p)), { recursive: true });
    await writeFile(path.join(root, p), b);
    await utimes(path.join(root, p), past, past);
  }
  return files;
}

t.test('s3cmd: put, get, sync both ways, ls, del', { skip: missing('s3cmd') }, async (t) => {
  const f = await gatewayFixture(t);
  const home = path.join(f.dir, 'home');
  await mkdir(home);
  const host = new URL(f.endpoint).host;
  const cfg = path.join(home, '.s3cfg');
  await writeFile(cfg, [
    '[default]', `access_key = ${ACCESS_KEY}`, `secret_key = ${SECRET_KEY}`, `host_base = ${host}`, `host_bucket = ${host}`,
    'use_https = False', 'signature_v2 = False', 'bucket_location = us-east-1', 'multipart_chunk_size_mb = 5', 'check_ssl_certificate = False', '',
  ].join('\n'));
  const s3cmd = (...args: string[]) => run(TOOLS.s3cmd, ['-c', cfg, '--no-progress', ...args], clientEnv(f, home), { cwd: f.dir });
  const ok = (r: { code: number | null; stderr: string; stdout: string }, what: string) => t.equal(r.code, 0, `${what}: ${r.stderr.slice(-800)}${r.stdout.slice(-400)}`);
  const B = f.bucket;
  const src = path.join(f.dir, 'src');
  const files = await makeTree(src);
  ok(await s3cmd('put', path.join(src, 'top.txt'), `s3://${B}/single/top.txt`), 'put');
  ok(await s3cmd('put', path.join(src, 'd1/d2/b.bin'), `s3://${B}/single/b.bin`), 'put multipart');
  ok(await s3cmd('get', `s3://${B}/single/b.bin`, path.join(f.dir, 'b.out')), 'get');
  t.equal(sha(await readFile(path.join(f.dir, 'b.out'))), sha(files['d1/d2/b.bin']));
  let r = await s3cmd('ls', `s3://${B}/single/`);
  ok(r, 'ls');
  t.match(r.stdout, new RegExp(`${files['d1/d2/b.bin'].length}\\s+s3://${B}/single/b\\.bin`));
  ok(await s3cmd('sync', src + '/', `s3://${B}/tree/`), 'sync up');
  r = await s3cmd('sync', src + '/', `s3://${B}/tree/`);
  ok(r, 'sync up again');
  t.notMatch(r.stdout, /upload:/, 'nothing left to upload (MD5s agree)');
  const dst = path.join(f.dir, 'dst');
  await mkdir(dst);
  ok(await s3cmd('sync', `s3://${B}/tree/`, dst + '/'), 'sync down');
  for (const [p, b] of Object.entries(files)) t.equal(sha(await readFile(path.join(dst, p))), sha(b), p);
  r = await s3cmd('info', `s3://${B}/tree/top.txt`);
  ok(r, 'info');
  t.match(r.stdout, /MD5 sum:\s+[0-9a-f]{32}/);
  ok(await s3cmd('del', '--recursive', '--force', `s3://${B}/tree/`), 'del --recursive');
  r = await s3cmd('ls', '--recursive', `s3://${B}/tree/`);
  t.equal(r.stdout.trim(), '', 'empty after delete');
});

t.test('rclone: copy, sync, check (with hashes), cat', { skip: missing('rclone') }, async (t) => {
  const f = await gatewayFixture(t);
  const home = path.join(f.dir, 'home');
  await mkdir(home);
  const env = clientEnv(f, home, {
    RCLONE_CONFIG: path.join(home, 'rclone.conf'),
    RCLONE_CONFIG_GW_TYPE: 's3', RCLONE_CONFIG_GW_PROVIDER: 'Other', RCLONE_CONFIG_GW_ACCESS_KEY_ID: ACCESS_KEY,
    RCLONE_CONFIG_GW_SECRET_ACCESS_KEY: SECRET_KEY, RCLONE_CONFIG_GW_ENDPOINT: f.endpoint, RCLONE_CONFIG_GW_REGION: 'us-east-1',
    RCLONE_CONFIG_GW_FORCE_PATH_STYLE: 'true',
  });
  await writeFile(path.join(home, 'rclone.conf'), '');
  const rclone = (...args: string[]) => run(TOOLS.rclone, ['--s3-upload-cutoff', '5M', '--s3-chunk-size', '5M', '--retries', '1', '--low-level-retries', '1', ...args], env, { cwd: f.dir });
  const ok = (r: { code: number | null; stderr: string }, what: string) => t.equal(r.code, 0, `${what}: ${r.stderr.slice(-1500)}`);
  const B = f.bucket;
  const src = path.join(f.dir, 'src');
  const files = await makeTree(src);
  ok(await rclone('copy', src, `gw:${B}/rc`), 'copy up');
  let r = await rclone('check', src, `gw:${B}/rc`);
  ok(r, 'check (size and MD5)');
  t.notMatch(r.stderr, /hash differ|ERROR/);
  r = await rclone('sync', src, `gw:${B}/rc`, '-v');
  ok(r, 'sync again');
  t.notMatch(r.stderr, /Copied \(new\)|Copied \(replaced/, 'nothing re-copied');
  const dst = path.join(f.dir, 'dst');
  ok(await rclone('sync', `gw:${B}/rc`, dst), 'sync down');
  for (const [p, b] of Object.entries(files)) t.equal(sha(await readFile(path.join(dst, p))), sha(b), p);
  ok(await rclone('check', `gw:${B}/rc`, dst), 'check down');
  r = await rclone('cat', `gw:${B}/rc/top.txt`);
  t.equal(r.stdout, 'top level\n');
  r = await rclone('lsl', `gw:${B}/rc`);
  t.match(r.stdout, new RegExp(`${files['d1/d2/b.bin'].length} .* d1/d2/b\\.bin`));
  r = await rclone('md5sum', `gw:${B}/rc/d1`);
  t.match(r.stdout, new RegExp(`${createHash('md5').update(files['d1/a.bin']).digest('hex')}  a.bin`), 'single-part MD5 from the listing');
  await writeFile(path.join(src, 'top.txt'), 'changed\n');
  ok(await rclone('sync', src, `gw:${B}/rc`), 'sync a change');
  t.equal((await rclone('cat', `gw:${B}/rc/top.txt`)).stdout, 'changed\n');
  ok(await rclone('purge', `gw:${B}/rc`), 'purge');
  t.equal((await rclone('lsf', '-R', `gw:${B}`)).stdout.trim(), '', 'empty');
});
