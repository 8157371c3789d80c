// kill -9 of the mount daemon: with auto_unmount (the default) fusermount3 removes the mount when the
// daemon dies; without it the mount point is left "Transport endpoint is not connected".
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

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

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return cond();
}

t.test('kill -9 with auto_unmount: no stale mount', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-kill-'));
  const mnt = path.join(dir, 'mnt');
  t.teardown(async () => {
    if (await isMounted(mnt)) await sh(`fusermount3 -u -z ${q(mnt)}`);
    await rm(dir, { recursive: true, force: true });
  });
  const pid = await startDaemon(mnt, true);
  t.ok(await isMounted(mnt), 'mounted');
  t.equal((await sh(`echo hi > ${q(mnt + '/f')} && cat ${q(mnt + '/f')}`)).stdout, 'hi\n', 'serving');
  process.kill(pid, 'SIGKILL');
  // fusermount3 (its auto_unmount watcher) unmounts once it sees the daemon gone; a loaded machine
  // once needed more than 10 s (clean-clone suite run), so the bound is generous.
  t.ok(await waitFor(async () => !(await isMounted(mnt)), 30_000), 'the mount is gone after kill -9');
  const ls = await sh(`ls ${q(mnt)}`);
  t.equal(ls.code, 0, `the mount point is a plain directory again ${ls.stderr}`);
});

t.test('kill -9 without auto_unmount leaves a stale mount (what auto_unmount prevents)', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-kill-'));
  const mnt = path.join(dir, 'mnt');
  t.teardown(async () => {
    if (await isMounted(mnt)) await sh(`fusermount3 -u -z ${q(mnt)}`);
    await rm(dir, { recursive: true, force: true });
  });
  const pid = await startDaemon(mnt, false);
  process.kill(pid, 'SIGKILL');
  await new Promise((r) => setTimeout(r, 500));
  t.ok(await isMounted(mnt), 'still in the mount table');
  t.match((await sh(`ls ${q(mnt)}`)).stderr, /Transport endpoint is not connected/);
});
