// kill -9 of the mount daemon: with auto_unmount (the default) fusermount3 removes the mount when the
// daemon dies; without it the mount point is left "Transport endpoint is not connected".
// libfuse's control socket lives in s3cryptfs-unmount-guard (native-bindings/fuse3/src/unmount-guard.c),
// which lets fusermount3 look only once the connection is aborted: before it, a loaded machine left
// 9 of 30 killed mounts stale.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import type Tap from 'tap';

import { fuseSkipReason, isMounted, q, sh } from './helpers/harness.js';

const skip = await fuseSkipReason('fuse3');
if (skip) {
  t.plan(0, `libfuse3 binding unavailable: ${skip}`);
  process.exit(0);
}

const CHILD = path.join(import.meta.dirname, 'helpers/mount-child.ts');

async function startDaemon(mnt: string, auto: boolean): Promise<number> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, mnt, 'fuse3', auto ? 'auto' : 'manual'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, LD_PRELOAD: '' },
  });
  child.unref();
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon did not start: ${out}`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`daemon exited (${code}): ${out}`)));
  });
  return child.pid!;
}

/** Pids of live processes running `program` whose last argument is `mnt` (zombies have no command line). */
async function processesFor(program: string, mnt: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const argv = (await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')).split('\0').slice(0, -1);
    if (argv.length > 1 && path.basename(argv[0]!) === program && argv.at(-1) === mnt) pids.push(Number(name));
  }
  return pids;
}

async function socketsOf(pid: number): Promise<string[]> {
  const fds = await readdir(`/proc/${pid}/fd`);
  const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return links.filter((l) => l.startsWith('socket:'));
}

/** Busy loops on every core, so the daemon's exit and fusermount3 compete for the CPU. */
function loadCpus(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

/** A mount point in a fresh directory, unmounted (if still mounted) and removed after the test. */
async function mountPoint(t: Tap.Test): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-kill-'));
  const mnt = path.join(dir, 'mnt');
  t.teardown(async () => {
    if (await isMounted(mnt)) await sh(`fusermount3 -u -z ${q(mnt)}`);
    await rm(dir, { recursive: true, force: true });
  });
  return mnt;
}

const guardsOf = (mnt: string) => processesFor('s3cryptfs-unmount-guard', mnt);

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

t.test('kill -9 with auto_unmount: no stale mount', async (t) => {
  const mnt = await mountPoint(t);
  const pid = await startDaemon(mnt, true);
  t.ok(await isMounted(mnt), 'mounted');
  t.equal((await sh(`echo hi > ${q(mnt + '/f')} && cat ${q(mnt + '/f')}`)).stdout, 'hi\n', 'serving');
  process.kill(pid, 'SIGKILL');
  // fusermount3 (its auto_unmount watcher) unmounts once it sees the daemon gone; a loaded machine
  // once needed more than 10 s (clean-clone suite run), so the bound is generous.
  t.ok(await waitFor(async () => !(await isMounted(mnt)), 30_000), 'the mount is gone after kill -9');
  const ls = await sh(`ls ${q(mnt)}`);
  t.equal(ls.code, 0, `the mount point is a plain directory again ${ls.stderr}`);
  t.ok(await waitFor(async () => (await guardsOf(mnt)).length === 0, 10_000), 'the guard is gone');
});

t.test('the control socket is held by the guard, which leaves with a clean unmount', async (t) => {
  const mnt = await mountPoint(t);
  const pid = await startDaemon(mnt, true);
  const guards = await guardsOf(mnt);
  t.equal(guards.length, 1, 'one guard for the mount');
  t.equal((await processesFor('fusermount3', mnt)).length, 1, 'fusermount3 waits for it');
  const held = await socketsOf(guards[0]!);
  t.equal(held.length, 1, 'the guard holds one socket (fusermount3 control)');
  t.notOk((await socketsOf(pid)).includes(held[0]!), 'the daemon no longer holds it');
  process.kill(pid, 'SIGTERM');
  t.ok(await waitFor(async () => !(await isMounted(mnt)), 30_000), 'unmounted on SIGTERM');
  t.ok(await waitFor(async () => (await guardsOf(mnt)).length === 0, 10_000), 'the guard is gone');
  t.ok(await waitFor(async () => (await processesFor('fusermount3', mnt)).length === 0, 10_000), 'fusermount3 is gone');
});

t.test('kill -9 on a loaded machine, repeatedly: never a stale mount', async (t) => {
  const mnt = await mountPoint(t);
  const load = loadCpus(3);
  t.teardown(() => load.forEach((p) => p.kill('SIGKILL')));
  const rounds = 10;
  let stale = 0;
  for (let i = 0; i < rounds; i++) {
    const pid = await startDaemon(mnt, true);
    await sh(`echo hi > ${q(mnt + '/f')} && cat ${q(mnt + '/f')}`);
    process.kill(pid, 'SIGKILL');
    if (!(await waitFor(async () => !(await isMounted(mnt)), 30_000))) {
      stale++;
      await sh(`fusermount3 -u -z ${q(mnt)}`);
    }
  }
  t.equal(stale, 0, `stale mounts after ${rounds} kills`);
});

t.test('kill -9 without auto_unmount leaves a stale mount (what auto_unmount prevents)', async (t) => {
  const mnt = await mountPoint(t);
  const pid = await startDaemon(mnt, false);
  process.kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 500));
  t.ok(await isMounted(mnt), 'still in the mount table');
  t.match((await sh(`ls ${q(mnt)}`)).stderr, /Transport endpoint is not connected/);
});
