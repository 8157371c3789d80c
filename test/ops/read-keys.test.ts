/**
 * Reads during a key rotation (issue #8): a store whose rotation was interrupted holds objects under
 * the old and the new key. With `--key-file NEW --read-key-file OLD` (flag, env or config file)
 * every object reads through the CLI and through a real mount; without the read key the old-key
 * objects fail clearly (CLI exit 7 naming --read-key-file, EIO in the mount) and the others read.
 */
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Engine } from '../../src/engine/index.js';
import { deriveKeys, HEADER_SIZE, headerKeyId } from '../../src/format/index.js';
import { spawn } from 'node:child_process';
import { storeFor } from '../helpers/s3server.js';
import { s3request } from '../gateway/fixtures/signed.js';
import { CLI, mount, sh, setupStore, TEST_FUSE } from '../e2e/fixtures/mount.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('an interrupted rotation reads with --read-key-file through the CLI and a mount', async (t) => {
  const s = await setupStore(t);
  const oldKey = Buffer.from((await readFile(s.keyFile, 'utf8')).trim(), 'hex');
  const newKeyFile = path.join(s.dir, 'new.key');
  const newKey = randomBytes(32);
  await writeFile(newKeyFile, newKey.toString('hex') + '\n', { mode: 0o600 });
  const store = storeFor(s.server);
  t.teardown(() => store.destroy());

  const files: Record<string, Buffer> = {
    'empty': Buffer.alloc(0),
    'small.txt': Buffer.from('small and sweet\n'),
    'docs/medium.bin': randomBytes(300 * 1024),
    'docs/deep/two-mib.bin': randomBytes(2 * 1024 * 1024 + 17),
    'notes/a.txt': Buffer.from('a'.repeat(5000)),
    'notes/b.txt': Buffer.from('b'.repeat(7000)),
  };
  const engine = await Engine.open({ store, bucket: s.bucket, prefix: '', keys: deriveKeys(oldKey) });
  for (const [p, data] of Object.entries(files)) await engine.putBuffer(p, data);

  const cli = (args: string, env: NodeJS.ProcessEnv = {}) => sh(`node ${JSON.stringify(CLI)} ${args}`, { env: { ...s.env, ...env } });
  /** `cat` into a file: exit code, stderr and the sha256 of what it wrote. */
  const catHash = async (args: string, env: NodeJS.ProcessEnv = {}) => {
    const out = path.join(s.dir, 'cat.out');
    const res = await cli(`cat ${args} > ${JSON.stringify(out)}`, env);
    return { code: res.code, stderr: res.stderr, hash: sha(await readFile(out)) };
  };
  const url = (p = '') => `s3://${s.bucket}/${p}`;
  const both = `--key-file ${JSON.stringify(newKeyFile)} --read-key-file ${JSON.stringify(s.keyFile)}`;
  const newOnly = `--key-file ${JSON.stringify(newKeyFile)}`;

  // Interrupted rotation: three objects moved, the config lists both key ids.
  let c: { code: number; stderr: string; hash: string };
  let r = await cli(`rotate-key ${url()} --new-key-file ${JSON.stringify(newKeyFile)} --limit 3`);
  t.equal(r.code, 0, `partial rotation: ${r.stderr}`);
  t.match(r.stdout, /rotation not complete/);
  const newId = deriveKeys(newKey).keyId;
  const underOld: string[] = [];
  const underNew: string[] = [];
  for (const p of Object.keys(files)) {
    const id = headerKeyId(await store.getRange(s.bucket, engine.objectKey(p), 0, HEADER_SIZE));
    (id.equals(newId) ? underNew : underOld).push(p);
  }
  t.equal(underNew.length, 3, 'three objects under the new key');
  t.equal(underOld.length, 3, 'three still under the old key');

  // ---- CLI ----------------------------------------------------------------------------------------
  r = await cli(`ls -l ${both} ${url('notes/')}`);
  t.equal(r.code, 0, `ls: ${r.stderr}`);
  t.match(r.stdout, /a\.txt/);
  t.match(r.stdout, /b\.txt/);
  for (const [p, data] of Object.entries(files)) {
    c = await catHash(`${both} ${url(p)}`);
    t.same([c.code, c.hash], [0, sha(data)], `cat ${p} with both keys: exact bytes`, { stderr: c.stderr });
    r = await cli(`stat ${both} ${url(p)}`);
    t.equal(r.code, 0, `stat ${p}: ${r.stderr}`);
  }
  r = await cli(`verify ${both} ${url()}`);
  t.equal(r.code, 0, `verify with both keys: ${r.stderr}`);
  t.match(r.stdout, /verified 6 object\(s\).*0 failed/);

  for (const p of underOld) {
    r = await cli(`cat ${newOnly} ${url(p)} > /dev/null`);
    t.equal(r.code, 7, `cat ${p} without the old key: exit 7`);
    t.match(r.stderr, /sealed with another master key .*--read-key-file/, 'the message names the way out');
  }
  for (const p of underNew) {
    c = await catHash(`${newOnly} ${url(p)}`);
    t.same([c.code, c.hash], [0, sha(files[p])], `cat ${p} (new key) without a read key`, { stderr: c.stderr });
  }
  r = await cli(`verify ${newOnly} ${url()}`);
  t.equal(r.code, 7, 'verify without the old key fails');
  t.match(r.stdout, /verified 3 object\(s\).*3 failed/);

  // The same from the environment and from a config file.
  const [oldOne] = underOld;
  c = await catHash(`${url(oldOne)}`, { S3CRYPTFS_KEY_FILE: newKeyFile, S3CRYPTFS_READ_KEY_FILE: s.keyFile });
  t.same([c.code, c.hash], [0, sha(files[oldOne])], 'S3CRYPTFS_READ_KEY_FILE', { stderr: c.stderr });
  c = await catHash(`${url(oldOne)}`, { S3CRYPTFS_KEY_FILE: newKeyFile, S3CRYPTFS_READ_KEY_FILE: `${newKeyFile},${s.keyFile}` });
  t.same([c.code, c.hash], [0, sha(files[oldOne])], 'S3CRYPTFS_READ_KEY_FILE with a comma-separated list', { stderr: c.stderr });
  const configFile = path.join(s.dir, 'config.json');
  await writeFile(configFile, JSON.stringify({ 'key-file': 'new.key', 'read-key-file': ['master.key'] }));
  c = await catHash(`--config ${JSON.stringify(configFile)} ${url(oldOne)}`, { S3CRYPTFS_KEY_FILE: '' });
  t.same([c.code, c.hash], [0, sha(files[oldOne])], 'read-key-file in the config file (relative to it)', { stderr: c.stderr });
  r = await cli(`cat ${newOnly} --read-key-file /nonexistent.key ${url(oldOne)}`);
  t.not(r.code, 0, 'a missing read key file is an error');
  t.match(r.stderr, /nonexistent\.key/);

  // ---- mount ----------------------------------------------------------------------------------------
  const m = await mount(t, s, ['--key-file', newKeyFile, '--read-key-file', s.keyFile], 'both');
  for (const [p, data] of Object.entries(files)) {
    r = await sh(`sha256sum ${JSON.stringify(path.join(m.mnt, p))}`);
    t.equal(r.stdout.split(' ')[0], sha(data), `mount (${TEST_FUSE}) with both keys: ${p} exact`);
  }
  await sh(`printf written-now > ${JSON.stringify(path.join(m.mnt, 'notes/new.txt'))}`);
  t.equal(await m.stop(), 0, 'mount with both keys stops cleanly');
  const id = headerKeyId(await store.getRange(s.bucket, engine.objectKey('notes/new.txt'), 0, HEADER_SIZE));
  t.ok(id.equals(newId), 'what the mount wrote is sealed with the primary (new) key');

  const m2 = await mount(t, s, ['--key-file', newKeyFile], 'new-only');
  for (const p of underOld) {
    r = await sh(`cat ${JSON.stringify(path.join(m2.mnt, p))} | wc -c`);
    if (files[p].length === 0) {
      // Nothing to decrypt: the size (0) comes from the listing, a read is answered without the header.
      t.equal(r.stdout.trim(), '0', `mount without the old key: ${p} is empty, never other bytes`);
      continue;
    }
    t.equal(r.stdout.trim(), '0', `mount without the old key: reading ${p} gives no bytes`);
    t.match(r.stderr, /Input\/output error/, 'but EIO');
  }
  for (const p of underNew) {
    r = await sh(`sha256sum ${JSON.stringify(path.join(m2.mnt, p))}`);
    t.equal(r.stdout.split(' ')[0], sha(files[p]), `mount without the old key: ${p} (new key) reads`);
  }
  r = await sh(`ls ${JSON.stringify(path.join(m2.mnt, 'notes'))}`);
  t.match(r.stdout, /a\.txt/, 'names list without the old key (the bucket keys are wrapped for the new one)');
  t.equal(await m2.stop(), 0);

  // ---- serve-s3 -------------------------------------------------------------------------------------
  const AK = 'ROTATEKEY01';
  const SK = 'rotate-secret-0123456789';
  const gateway = async (keyArgs: string[]) => {
    const child = spawn(process.execPath, [CLI, 'serve-s3', '--http-listen', '127.0.0.1:0', ...keyArgs], {
      env: { ...process.env, ...s.env, S3CRYPTFS_GATEWAY_ACCESS_KEY_ID: AK, S3CRYPTFS_GATEWAY_SECRET_ACCESS_KEY: SK, S3CRYPTFS_GATEWAY_BUCKETS: s.bucket },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.teardown(() => { child.kill('SIGKILL'); });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b));
    child.stderr!.on('data', (b: Buffer) => (out += b));
    for (let i = 0; i < 1200 && !/S3 endpoint \(HTTP[^)]*\): http/.test(out); i++) await new Promise((res) => setTimeout(res, 50));
    const endpoint = /S3 endpoint \(HTTP[^)]*\): (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
    if (!endpoint) throw new Error(`serve-s3 did not start: ${out}`);
    const get = (p: string) => s3request(endpoint, { method: 'GET', path: `/${s.bucket}/${p}`, accessKeyId: AK, secretAccessKey: SK });
    const stop = () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    });
    return { get, stop };
  };
  const gw = await gateway(['--key-file', newKeyFile, '--read-key-file', s.keyFile]);
  for (const [p, data] of Object.entries(files)) {
    const res = await gw.get(p);
    t.same([res.status, sha(res.body)], [200, sha(data)], `serve-s3 with both keys: GET ${p} exact`);
  }
  await gw.stop();
  const gw2 = await gateway(['--key-file', newKeyFile]);
  for (const p of underOld) {
    const res = await gw2.get(p);
    t.ok(res.status !== 200 || (files[p].length === 0 && res.body.length === 0), `serve-s3 without the old key: GET ${p} is not a 200 with bytes (${res.status})`);
  }
  for (const p of underNew) {
    const res = await gw2.get(p);
    t.same([res.status, sha(res.body)], [200, sha(files[p])], `serve-s3 without the old key: GET ${p} (new key) exact`);
  }
  await gw2.stop();

  // Finishing the rotation: the new key alone reads everything.
  r = await cli(`rotate-key ${url()} --new-key-file ${JSON.stringify(newKeyFile)}`);
  t.equal(r.code, 0, `rotation resumed: ${r.stderr}`);
  t.match(r.stdout, /rotation complete/);
  r = await cli(`verify ${newOnly} ${url()}`);
  t.equal(r.code, 0, `verify under the new key alone: ${r.stderr}`);
  t.match(r.stdout, /verified 7 object\(s\)/);
});
