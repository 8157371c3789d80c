// kill -9 of the mount daemon (issue #9, crash safety):
//  - during a 200 MiB `cp` into the mount: the earlier version stays intact, the stale multipart
//    upload is found and aborted by `s3cryptfs gc`; with its auto-unmount helper killed too, the
//    mount point is stale, `s3cryptfs mount` refuses it naming `fusermount -u MNT`, and that one
//    command makes it usable again;
//  - during `mv` of a directory of 200 files (rename = copy every object, then delete the
//    originals): every file exists in the old or the new place (or both, identical), none lost, none
//    partial; auto_unmount leaves no stale mount point.
import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';

import { CLI, isMounted, mount, run, sh, type Mounted } from '../e2e/fixtures/mount.js';
import { setupMountStore } from './fixtures/mount-store.js';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const { s, store, uploads, uploadsStore, direct } = await setupMountStore(t);
const cli = (args: string, env: NodeJS.ProcessEnv = {}) => sh(`node ${JSON.stringify(CLI)} ${args}`, { env: { ...s.env, ...env } });

/** Pids of the daemon's children (fusermount3 with auto_unmount). */
function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

async function until(what: string, check: () => Promise<boolean>, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

t.test('kill -9 during a 200 MiB cp: earlier version intact, gc finds the upload, stale mount point recovered', async (t) => {
  const old = randomBytes(64 * 1024);
  await direct.putBuffer('big.bin', old);
  const local = path.join(s.dir, 'big-local.bin');
  await run(`head -c ${200 * MiB} /dev/urandom > ${JSON.stringify(local)}`);
  t.teardown(() => rm(local, { force: true }));

  const m = await mount(t, s, [], 'mnt-big');
  const cp = spawn('cp', [local, path.join(m.mnt, 'big.bin')], { stdio: ['ignore', 'ignore', 'pipe'] });
  t.teardown(() => { cp.kill('SIGKILL'); });
  let cpErr = '';
  cp.stderr!.on('data', (b: Buffer) => (cpErr += b.toString()));
  const cpExit = new Promise<number | null>((resolve) => cp.on('close', (code) => resolve(code)));
  const key = direct.objectKey('big.bin');
  await until('the multipart upload of big.bin', async () => (await uploadsStore.listMultipartUploads(s.bucket)).some((u) => u.key === key));

  // Without its auto-unmount helper the kernel mount outlives the daemon: a stale mount point.
  for (const pid of childPids(m.child.pid!)) process.kill(pid, 'SIGKILL');
  m.child.kill('SIGKILL');
  await m.exited;
  const code = await cpExit;
  t.not(code, 0, `cp fails when the daemon dies (${cpErr.trim().slice(-120)})`);

  t.ok((await direct.getBuffer('big.bin')).equals(old), 'the earlier version is intact (nothing partial visible)');
  const stale = (await uploadsStore.listMultipartUploads(s.bucket)).filter((u) => u.key === key);
  t.equal(stale.length, 1, 'the interrupted multipart upload is left behind');

  // The stale mount point: a clear message, then one command.
  t.ok(await isMounted(m.mnt), 'the kernel mount is still there');
  let r = await sh(`ls ${JSON.stringify(m.mnt)}`);
  t.match(r.stderr, /Transport endpoint is not connected/, 'ls on the stale mount point');
  r = await cli(`mount s3://${s.bucket} ${JSON.stringify(m.mnt)}`);
  t.equal(r.code, 1, 's3cryptfs mount refuses the stale mount point');
  t.match(r.stderr, new RegExp(`stale FUSE mount .*run \`fusermount -u ${m.mnt.replace(/[/.-]/g, '\\$&')}\``), 'naming the recovery command');
  r = await sh(`fusermount -u ${JSON.stringify(m.mnt)}`);
  t.equal(r.code, 0, `fusermount -u recovers it: ${r.stderr}`);
  t.notOk(await isMounted(m.mnt), 'no longer mounted');

  // gc finds and removes the stale upload.
  await sleep(1100);
  const viaUploads = { AWS_ENDPOINT_URL: uploads.endpoint };
  r = await cli(`gc --dry-run --older-than 1s s3://${s.bucket}`, viaUploads);
  t.equal(r.code, 0, `gc --dry-run: ${r.stderr}`);
  t.match(r.stdout, new RegExp(`would abort s3://${s.bucket}/${key.replace(/[-/]/g, '\\$&')} upload ${stale[0].uploadId}`), 'gc --dry-run names the stale upload');
  r = await cli(`gc --older-than 1s s3://${s.bucket}`, viaUploads);
  t.equal(r.code, 0, `gc: ${r.stderr}`);
  t.match(r.stdout, /reclaimed 1 /);
  t.equal((await uploadsStore.listMultipartUploads(s.bucket)).length, 0, 'no upload left');

  // Mounting again works and shows the earlier version.
  const m2 = await mount(t, s, [], 'mnt-big');
  r = await sh(`sha256sum ${JSON.stringify(path.join(m2.mnt, 'big.bin'))}`);
  t.equal(r.stdout.split(' ')[0], sha(old), 'the remount reads the earlier version');
  t.equal(await m2.stop(), 0);
});

t.test('kill -9 during mv of a 200-file directory: every file in the old or the new place, none lost', async (t) => {
  const files = new Map<string, Buffer>();
  for (let i = 0; i < 200; i++) files.set(`f${String(i).padStart(3, '0')}.txt`, randomBytes(100 + i * 37));
  await Promise.all([...files].map(([n, data]) => direct.putBuffer(`tree/${n}`, data)));
  const newPrefix = direct.objectKey('moved/x').replace(/[^/]+$/, '');
  const copied = async () => (await store.list(s.bucket, { prefix: newPrefix })).objects.length;

  const m: Mounted = await mount(t, s, [], 'mnt-mv');
  const mv = spawn('mv', [path.join(m.mnt, 'tree'), path.join(m.mnt, 'moved')], { stdio: 'ignore' });
  t.teardown(() => { mv.kill('SIGKILL'); });
  const mvExit = new Promise<number | null>((resolve) => mv.on('close', (code) => resolve(code)));
  await until('some objects copied to the new place', async () => (await copied()) >= 20 || mv.exitCode !== null);
  t.equal(mv.exitCode, null, 'the rename is still running when the daemon is killed');
  m.child.kill('SIGKILL');
  await m.exited;
  t.not(await mvExit, 0, 'mv fails when the daemon dies');
  // auto_unmount (default): the helper removes the mount, no stale mount point is left.
  await until('auto_unmount', async () => !(await isMounted(m.mnt)), 30_000);
  t.pass('the mount point is free again without any command');

  const tally = { old: 0, new: 0, both: 0 };
  for (const [n, data] of files) {
    const a = await direct.getBuffer(`tree/${n}`).catch(() => undefined);
    const b = await direct.getBuffer(`moved/${n}`).catch(() => undefined);
    t.ok(a !== undefined || b !== undefined, `${n} exists somewhere`);
    if (a) t.ok(a.equals(data), `${n} in the old place is exact`);
    if (b) t.ok(b.equals(data), `${n} in the new place is exact`);
    if (a && b) tally.both++;
    else if (a) tally.old++;
    else tally.new++;
  }
  t.comment(`after the crash: ${JSON.stringify(tally)} (rename copies every object, then deletes the originals)`);
  t.ok(tally.both > 0, 'the crash hit between copy and delete: some files are in both places');

  // Remount: the user finishes the move by hand (what is in both places is identical).
  const m2 = await mount(t, s, [], 'mnt-mv');
  const r = await sh(`cd ${JSON.stringify(m2.mnt)} && mkdir -p moved && cp -n tree/* moved/ && rm -r tree && ls moved | wc -l`);
  t.equal(r.stdout.trim(), '200', `the move completes after the remount: ${r.stderr}`);
  for (const [n, data] of files) {
    if (!(await direct.getBuffer(`moved/${n}`)).equals(data)) t.fail(`${n} differs after finishing the move`);
  }
  t.equal(await m2.stop(), 0);
});
