// The fuse3 binding raises the kernel's readahead for its mount (the bdi's read_ahead_kb) when it
// may (root), so sequential reads reach the daemon as 1 MiB requests; 0 leaves the kernel default.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';

import { mountDevice } from '../../native-bindings/fuse3/index.js';
import { fuseSkipReason, mountMemory, q, run } from './helpers/harness.js';

const skip = await fuseSkipReason('fuse3');
if (skip) {
  t.plan(0, `libfuse3 binding unavailable: ${skip}`);
  process.exit(0);
}
const root = process.getuid?.() === 0;

async function readaheadKiB(mnt: string): Promise<number> {
  const dev = await mountDevice(mnt);
  if (!dev) throw new Error(`${mnt} is not in /proc/self/mountinfo`);
  return Number((await readFile(`/sys/class/bdi/${dev}/read_ahead_kb`, 'utf8')).trim());
}

t.test('default: 1024 KiB (as root), and files read back exactly', { skip: root ? false : 'needs root to write sysfs' }, async (t) => {
  const m = await mountMemory(t);
  t.equal(await readaheadKiB(m.mnt), 1024);
  const f = path.join(m.mnt, 'f.bin');
  const src = path.join(m.dir, 'src.bin');
  await run(`head -c 5000000 /dev/urandom > ${q(src)} && cp ${q(src)} ${q(f)}`);
  // A new open drops the file's page cache (no keep_cache): the read goes through the daemon.
  await run(`cmp ${q(src)} ${q(f)}`);
  t.pass('content exact');
});

t.test('kernelReadaheadKiB 0 leaves the kernel default; another value is applied', { skip: root ? false : 'needs root to write sysfs' }, async (t) => {
  const a = await mountMemory(t, { mountOptions: { kernelReadaheadKiB: 0 } });
  t.equal(await readaheadKiB(a.mnt), 128, 'kernel default for FUSE');
  const b = await mountMemory(t, { mountOptions: { kernelReadaheadKiB: 2048 } });
  t.equal(await readaheadKiB(b.mnt), 2048);
});
