// The mount command's refusals: one clear line on stderr and the documented exit code.
// Exit codes (src/cli/exit-codes.ts): 3 wrong key, 5 unreachable, 9 not initialised, 11 FUSE unavailable.
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';

import { CLI, isMounted, mount, run, setupStore, sh } from './fixtures/mount.js';

const store = await setupStore(t);
const q = JSON.stringify;
const cli = `${q(process.execPath)} ${q(CLI)}`;

async function refused(t: Test, args: string, env: NodeJS.ProcessEnv, code: number, pattern: RegExp) {
  const r = await sh(`${cli} ${args}`, { env: { ...store.env, ...env }, timeoutMs: 60_000 });
  t.equal(r.code, code, `exit code ${code}`);
  const lines = r.stderr.trim().split('\n');
  t.equal(lines.length, 1, `one line on stderr: ${r.stderr.trim()}`);
  t.match(lines[0], pattern);
  return r;
}

t.test('wrong key', async (t) => {
  const mnt = path.join(store.dir, 'wk');
  await mkdir(mnt);
  const other = path.join(store.dir, 'other.key');
  await writeFile(other, 'ab'.repeat(32) + '\n', { mode: 0o600 });
  await refused(t, `mount s3://${store.bucket} ${q(mnt)}`, { S3CRYPTFS_KEY_FILE: other }, 3, /^s3cryptfs: wrong key/);
  t.notOk(await isMounted(mnt), 'nothing mounted');
  await refused(t, `mount --daemon s3://${store.bucket} ${q(mnt)}`, { S3CRYPTFS_KEY_FILE: other }, 3, /^s3cryptfs: wrong key/);
  t.notOk(await isMounted(mnt), 'nothing mounted (daemon)');
});

t.test('FUSE unavailable (no fusermount on PATH)', async (t) => {
  const mnt = path.join(store.dir, 'nofuse');
  await mkdir(mnt);
  await refused(t, `mount s3://${store.bucket} ${q(mnt)}`, { PATH: '/nonexistent' }, 11, /^s3cryptfs: FUSE is not available: fusermount is not installed/);
});

t.test('bucket unreachable, missing, not initialised', async (t) => {
  const mnt = path.join(store.dir, 'unreach');
  await mkdir(mnt);
  await refused(t, `mount s3://${store.bucket} ${q(mnt)}`, { AWS_ENDPOINT_URL: 'http://127.0.0.1:1' }, 5, /cannot connect/);
  await refused(t, `mount s3://no-such-bucket-here ${q(mnt)}`, {}, 4, /bucket does not exist/);
  await refused(t, `mount s3://${store.bucket}/elsewhere/deeper ${q(mnt)}`, {}, 2, /directory inside the store|mount the store/);
});

t.test('mount point missing, busy, stale', async (t) => {
  await refused(t, `mount s3://${store.bucket} ${q(path.join(store.dir, 'nope'))}`, {}, 1, /does not exist/);
  const m = await mount(t, store, [], 'busy');
  await refused(t, `mount s3://${store.bucket} ${q(m.mnt)}`, {}, 1, /already a mount point.*fusermount -u/);
  await m.stop();

  // A stale mount: a FUSE server killed without unmounting (no auto_unmount).
  const stale = path.join(store.dir, 'stale');
  await mkdir(stale);
  const program = `const F = require(${q(path.join(path.dirname(CLI), '../node_modules/fuse-native'))});
    const f = new F(${q(stale)}, { getattr: (p, cb) => cb(0, { mode: 0o40755, size: 0 }) }, {});
    f.mount((err) => { if (err) { console.error(err); process.exit(1); } process.kill(process.pid, 'SIGKILL'); });`;
  await new Promise((resolve) => spawn(process.execPath, ['-e', program], { stdio: 'inherit' }).once('exit', resolve));
  t.teardown(() => sh(`fusermount -uz ${q(stale)}`));
  t.equal((await sh(`stat ${q(stale)}`)).stderr.includes('Transport endpoint is not connected'), true, 'the mount point is stale');
  await refused(t, `mount s3://${store.bucket} ${q(stale)}`, {}, 1, /stale FUSE mount .*fusermount -u .*umount -l/);
  await run(`fusermount -u ${q(stale)}`);
  const fresh = await mount(t, store, [], 'stale');
  t.ok(await isMounted(fresh.mnt), 'mounts after fusermount -u');
});

t.test('--daemon returns once the mount is ready; fusermount -u ends it', async (t) => {
  const mnt = path.join(store.dir, 'daemon');
  await mkdir(mnt);
  const r = await sh(`${cli} mount --daemon s3://${store.bucket} ${q(mnt)} --log-file ${q(path.join(store.dir, 'daemon.log'))}`, { env: store.env });
  t.teardown(() => sh(`fusermount -uz ${q(mnt)}`));
  t.equal(r.code, 0, r.stderr);
  const pid = Number(/daemon pid (\d+)/.exec(r.stdout)?.[1]);
  t.ok(pid > 0, 'reports the daemon pid');
  t.ok(await isMounted(mnt), 'mounted when the command returns');
  await run(`echo hello > ${q(path.join(mnt, 'd.txt'))}`);
  t.equal(await run(`cat ${q(path.join(mnt, 'd.txt'))}`), 'hello\n');
  await run(`fusermount -u ${q(mnt)}`);
  let alive = true;
  for (let i = 0; i < 100 && alive; i++) {
    await new Promise((res) => setTimeout(res, 100));
    try {
      process.kill(pid, 0);
    } catch {
      alive = false;
    }
  }
  t.notOk(alive, 'the daemon exits after an external unmount');
});
