// What the storage provider stores (s3rver's data directory) contains no plaintext: no file
// contents, and with name encryption no file or directory names or symlink targets. The daemon's
// local spool files hold no plaintext either.
import { spawn } from 'node:child_process';
import { readdir, readFile, readlink } from 'node:fs/promises';
import path from 'node:path';
import t, { type Test } from 'tap';

import { mount, MiB, run, setupStore, type Store } from './fixtures/mount.js';

const q = JSON.stringify;
const CONTENT = 'CONTENT-MARKER-7f3a9c';
const NAME = 'NAMEMARKER4d2e';

async function scan(dir: string, needles: string[]): Promise<string[]> {
  const hits: string[] = [];
  const bufs = needles.map((n) => Buffer.from(n));
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      for (const n of needles) if (e.name.includes(n)) hits.push(`name ${p}`);
      if (e.isDirectory()) await walk(p);
      else if (e.isFile()) {
        const body = await readFile(p);
        bufs.forEach((b, i) => { if (body.includes(b)) hits.push(`"${needles[i]}" in ${p}`); });
      }
    }
  };
  await walk(dir);
  return hits;
}

/** Writes files in every way the write path stores them. */
async function populate(mnt: string, src: string): Promise<void> {
  const line = `${CONTENT}\n`.repeat(1000);
  await run(`mkdir -p ${q(src)} && printf ${q(line)} > ${q(path.join(src, 'marker.txt'))}`);
  const big = path.join(src, 'big');
  // > 8 MiB: a streamed multipart upload, markers throughout.
  await run(`for i in $(seq 1 700); do cat ${q(path.join(src, 'marker.txt'))}; done > ${q(big)}`);
  await run(`mkdir -p ${q(path.join(mnt, `dir-${NAME}`, 'sub'))}`);
  await run(`cp ${q(path.join(src, 'marker.txt'))} ${q(path.join(mnt, `dir-${NAME}`, `small-${NAME}.txt`))}`);
  await run(`cp ${q(big)} ${q(path.join(mnt, `dir-${NAME}`, 'sub', `big-${NAME}.bin`))}`);
  // Spool path: random writes into an existing file.
  await run(`head -c ${2 * MiB} /dev/zero > ${q(path.join(mnt, `spool-${NAME}`))}`);
  await run(`for off in 7 70000 1500000 900001; do printf ${q(CONTENT)} | dd of=${q(path.join(mnt, `spool-${NAME}`))} bs=1 seek=$off conv=notrunc status=none; done`);
  await run(`ln -s target-${NAME} ${q(path.join(mnt, `link-${NAME}`))}`);
  await run(`chmod 600 ${q(path.join(mnt, `dir-${NAME}`, `small-${NAME}.txt`))} && mv ${q(path.join(mnt, `dir-${NAME}`, `small-${NAME}.txt`))} ${q(path.join(mnt, `moved-${NAME}.txt`))}`);
  if ((await run(`grep -c ${CONTENT} ${q(path.join(mnt, `spool-${NAME}`))}`)).trim() === '0') throw new Error('spool writes missing');
}

async function scanBucket(t: Test, store: Store, needles: string[]) {
  const objects = await run(`find ${q(store.bucketDir)} -type f | wc -l`);
  t.ok(Number(objects) > 5, `the bucket holds ${objects.trim()} files`);
  t.same(await scan(store.bucketDir, needles), [], `no ${needles.join(', ')} in what the provider stores`);
}

t.test('encrypted names: no plaintext content, names or link targets in the bucket', async (t) => {
  const store = await setupStore(t);
  const m = await mount(t, store);
  await populate(m.mnt, path.join(store.dir, 'src'));
  await m.stop();
  await scanBucket(t, store, [CONTENT, NAME]);
});

t.test('plain names: no plaintext content in the bucket', async (t) => {
  const store = await setupStore(t, { names: 'plain' });
  const m = await mount(t, store);
  await populate(m.mnt, path.join(store.dir, 'src'));
  await m.stop();
  await scanBucket(t, store, [CONTENT]);
  t.ok((await run(`find ${q(store.bucketDir)} -name '*${NAME}*' | wc -l`)).trim() !== '0', 'names are stored as given (plain mode)');
});

t.test('spool files of a file being modified hold no plaintext', async (t) => {
  const store = await setupStore(t);
  const spoolDir = path.join(store.dir, 'spool');
  await run(`mkdir ${q(spoolDir)}`);
  const m = await mount(t, store, ['--spool-dir', spoolDir]);
  const file = path.join(m.mnt, 'patched');
  await run(`head -c ${MiB} /dev/zero > ${q(file)}`);
  // Keep a descriptor open with random writes pending (spool mode) while we look.
  const writer = spawn('python3', ['-c', `
import os, sys
fd = os.open(${q(file)}, os.O_RDWR)
for off in (5, 4096 * 3 + 1, 700000):
    os.pwrite(fd, b'${CONTENT}' * 50, off)
os.pread(fd, 1, 0)  # a read of the file waits for its queued writes (fuse3 write-behind)
print('ready', flush=True)
sys.stdin.read()
os.close(fd)
`], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => writer.stdout.once('data', () => resolve()));
  const fdDir = `/proc/${m.child.pid}/fd`;
  // Belt and braces: poll briefly for the spool file.
  let spoolFds: string[] = [];
  for (let i = 0; i < 100 && spoolFds.length === 0; i++) {
    if (i > 0) await new Promise((r) => setTimeout(r, 100));
    spoolFds = [];
    for (const fd of await readdir(fdDir)) {
      const target = await readlink(path.join(fdDir, fd)).catch(() => '');
      if (target.startsWith(spoolDir)) spoolFds.push(fd);
    }
  }
  let spools = 0;
  for (const fd of spoolFds) {
    const target = await readlink(path.join(fdDir, fd)).catch(() => '');
    spools++;
    const body = await readFile(path.join(fdDir, fd));
    t.equal(body.indexOf(Buffer.from(CONTENT)), -1, `no plaintext in ${target}`);
    t.ok(body.length >= 3 * 4096, 'the spool holds the written blocks');
  }
  t.equal(spools, 1, 'the daemon holds one (unlinked) spool file');
  const [sub, ...others] = await readdir(spoolDir);
  t.same(others, [], 'one spool directory per mount');
  t.same(await readdir(path.join(spoolDir, sub)), [], 'spool files have no names');
  writer.stdin.end();
  await new Promise((resolve) => writer.once('exit', resolve));
  t.equal((await run(`grep -ao ${CONTENT} ${q(file)} | wc -l`)).trim(), '150', 'the writes landed');
});
