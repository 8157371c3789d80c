// SIGTERM while a write is in flight: the write either completes (the daemon detaches the mount,
// waits for open files to be closed and stores them) or fails visibly (the writer gets an error,
// the daemon exits non-zero naming the file, and nothing half-written is stored).
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';

import { isMounted, mount, MiB, run, setupStore, sh, sha256 } from './fixtures/mount.js';

const q = JSON.stringify;
const store = await setupStore(t);

function background(cmd: string) {
  const child = spawn('/bin/bash', ['-c', cmd], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) => child.once('exit', (code) => resolve({ code, stderr: err })));
  return done;
}

t.test('a write in flight at SIGTERM completes and is stored', async (t) => {
  const m = await mount(t, store);
  const local = path.join(store.dir, 'payload');
  await run(`head -c ${48 * MiB} /dev/urandom > ${q(local)}`);
  const target = path.join(m.mnt, 'inflight.bin');
  const writer = background(`(dd if=${q(local)} bs=1M count=24 status=none; sleep 3; dd if=${q(local)} bs=1M skip=24 status=none) > ${q(target)}`);
  await new Promise((r) => setTimeout(r, 1500));
  m.child.kill('SIGTERM');
  const w = await writer;
  t.equal(w.code, 0, `the writer finished without error ${w.stderr}`);
  t.equal(await m.exited, 0, 'the daemon exits 0 after storing it');
  t.match(m.output(), /busy.*detaching it and waiting/, 'it said it was waiting for the open file');
  t.notOk(await isMounted(m.mnt), 'unmounted');
  const again = await mount(t, store, [], 'mnt-again');
  t.equal(await sha256(path.join(again.mnt, 'inflight.bin')), await sha256(local), 'complete content stored');
  await again.stop();
});

t.test('a writer that does not finish in time fails visibly; nothing half-written is stored', async (t) => {
  const m = await mount(t, store, ['--unmount-timeout', '2'], 'mnt-slow');
  const target = path.join(m.mnt, 'slow.txt');
  // One descriptor, no dup/close in between (a close of any descriptor flushes, which would store
  // "start" legitimately).
  const script = path.join(store.dir, 'slow-writer.py');
  await writeFile(script, [
    'import os, sys, time',
    'fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)',
    "os.write(fd, b'start\\n')",
    'time.sleep(6)',
    "os.write(fd, b'end\\n')",
    'os.close(fd)',
  ].join('\n'));
  const writer = background(`python3 ${q(script)} ${q(target)}`);
  await new Promise((r) => setTimeout(r, 1000));
  m.child.kill('SIGTERM');
  t.equal(await m.exited, 1, 'the daemon exits non-zero');
  // Names are encrypted in this store: the file is named by its S3 key, never by its plaintext name.
  t.match(m.output(), /giving up on 1 file.*: s3:\S+/, 'and names the file whose changes were discarded, by its S3 key');
  t.notMatch(m.output(), /slow\.txt/, 'without its plaintext name');
  const w = await writer;
  t.not(w.code, 0, `the writer sees its write fail (${w.stderr.trim()})`);
  const again = await mount(t, store, [], 'mnt-check');
  t.equal((await sh(`ls ${q(path.join(again.mnt, 'slow.txt'))}`)).code, 2, 'no half-written file in the bucket');
  await again.stop();
});
