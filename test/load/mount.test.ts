// Bounded load on a real kernel mount (`s3cryptfs mount` as a child, over a local s3rver): parallel
// writers create files of random sizes (0–8 MiB) under their own directories and overwrite them,
// while parallel readers read whole files and random ranges of files already acknowledged (the
// writer's close() returned). Every read must give exactly the acknowledged bytes; after a remount
// every file is checked by sha256 and the tree holds exactly the written names.
// Bounds: S3CRYPTFS_LOAD_SECONDS, S3CRYPTFS_LOAD_WRITERS, S3CRYPTFS_LOAD_READERS, S3CRYPTFS_LOAD_REQUESTS.
import { spawn } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';

import { mount, run, setupStore } from '../e2e/fixtures/mount.js';
import { envInt, Latencies, peakRssMiB, prng, SEED } from './fixtures/load.js';

const SECONDS = envInt('S3CRYPTFS_LOAD_SECONDS', 20);
const WRITERS = envInt('S3CRYPTFS_LOAD_WRITERS', 8);
const READERS = envInt('S3CRYPTFS_LOAD_READERS', 8);
const MAX_OPS = envInt('S3CRYPTFS_LOAD_REQUESTS', 3000);
const KiB = 1024;
const MiB = 1024 * KiB;

/** File content from (name, version): an AES-CTR keystream, so any range can be recomputed. */
function content(name: string, version: number, size: number): Buffer {
  const key = createHash('sha256').update(`${SEED}:${name}:${version}`).digest();
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(size));
}
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Runs argv in a child (the mount is only touched from other processes), feeding `input`. */
function exec(argv: string[], input?: Buffer): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    c.stdout.on('data', (b: Buffer) => out.push(b));
    c.stderr.on('data', (b: Buffer) => (err += b));
    c.stdin.on('error', () => {});
    c.on('error', (e) => resolve({ code: -1, stdout: Buffer.alloc(0), stderr: e.message }));
    c.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    c.stdin.end(input ?? Buffer.alloc(0));
  });
}

t.test(`${WRITERS} writers and ${READERS} readers on a mount for ${SECONDS} s`, async (t) => {
  const store = await setupStore(t);
  const m = await mount(t, store);
  const lat = new Latencies();
  const unexpected: string[] = [];
  // Acknowledged state per file (relative path): version and size; `busy` while written, `readers` while read.
  const files = new Map<string, { version: number; size: number; busy: boolean; readers: number }>();
  let ops = 0;
  let bytesWritten = 0;
  let bytesRead = 0;
  const deadline = Date.now() + SECONDS * 1000;
  const done = () => Date.now() >= deadline || ops >= MAX_OPS;

  async function writer(id: number): Promise<void> {
    const rnd = prng(SEED + id);
    await mkdir(path.join(m.mnt, `w${id}`));
    const mine: string[] = [];
    let n = 0;
    while (!done()) {
      const idle = mine.filter((f) => files.get(f)!.readers === 0);
      const overwrite = idle.length > 0 && rnd() < 0.35;
      const name = overwrite ? idle[Math.floor(rnd() * idle.length)] : `w${id}/f${n++}.bin`;
      const r = rnd();
      const size = r < 0.1 ? 0 : r < 0.6 ? Math.floor(rnd() * 256 * KiB) : r < 0.9 ? Math.floor(rnd() * 2 * MiB) : Math.floor(rnd() * 8 * MiB);
      const prev = files.get(name);
      const version = (prev?.version ?? 0) + 1;
      if (prev) prev.busy = true;
      const start = performance.now();
      const res = await exec(['/bin/sh', '-c', 'cat > "$1"', 'sh', path.join(m.mnt, name)], content(name, version, size));
      lat.add(overwrite ? 'overwrite' : 'create', performance.now() - start);
      ops++;
      if (res.code === 0) {
        files.set(name, { version, size, busy: false, readers: 0 });
        if (!prev) mine.push(name);
        bytesWritten += size;
      } else {
        unexpected.push(`write ${name} (${size} B): exit ${res.code} ${res.stderr.trim()}`);
        if (prev) prev.busy = false;
      }
    }
  }

  async function reader(id: number): Promise<void> {
    const rnd = prng(SEED + 1000 + id);
    while (!done()) {
      const ready = [...files.entries()].filter(([, f]) => !f.busy);
      if (ready.length === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const [name, f] = ready[Math.floor(rnd() * ready.length)];
      const { version, size } = f;
      f.readers++;
      const file = path.join(m.mnt, name);
      const start = performance.now();
      try {
        if (size === 0 || rnd() < 0.5) {
          const res = await exec(['sha256sum', file]);
          lat.add('read-whole', performance.now() - start);
          const want = sha(content(name, version, size));
          if (res.code !== 0 || res.stdout.toString().split(' ')[0] !== want) unexpected.push(`read ${name} v${version}: exit ${res.code}, sha256 not the acknowledged one ${res.stderr.trim()}`);
          else bytesRead += size;
        } else {
          const from = Math.floor(rnd() * size);
          const len = Math.min(size - from, 1 + Math.floor(rnd() * 512 * KiB));
          const res = await exec(['dd', `if=${file}`, 'bs=64K', 'iflag=skip_bytes,count_bytes', `skip=${from}`, `count=${len}`, 'status=none']);
          lat.add('read-range', performance.now() - start);
          const want = content(name, version, from + len).subarray(from);
          if (res.code !== 0 || !res.stdout.equals(want)) unexpected.push(`read ${name} v${version} [${from}, +${len}): exit ${res.code}, ${res.stdout.length} B, not the acknowledged bytes ${res.stderr.trim()}`);
          else bytesRead += len;
        }
      } finally {
        f.readers--;
      }
      ops++;
    }
  }

  const began = performance.now();
  await Promise.all([...Array.from({ length: WRITERS }, (_, i) => writer(i)), ...Array.from({ length: READERS }, (_, i) => reader(i))]);
  const elapsed = (performance.now() - began) / 1000;
  const rss = await peakRssMiB(m.child.pid!);
  t.equal(await m.stop(), 0, 'the mount exits cleanly on SIGTERM after the load');

  // A fresh mount of the same store: exactly the acknowledged files, each with its last acknowledged bytes.
  const again = await mount(t, store, [], 'mnt2');
  const listed = (await run('find . -type f | sort', { cwd: again.mnt })).split('\n').filter(Boolean).map((l) => l.slice(2));
  t.same(listed, [...files.keys()].sort(), `the remounted tree holds exactly the ${files.size} written files`);
  const sums = new Map((await run('find . -type f -print0 | xargs -0 -r sha256sum', { cwd: again.mnt })).split('\n').filter(Boolean).map((l) => [l.slice(66).replace(/^\.\//, ''), l.slice(0, 64)] as const));
  let exact = 0;
  for (const [name, f] of files) {
    if (sums.get(name) === sha(content(name, f.version, f.size))) exact++;
    else unexpected.push(`after remount ${name} v${f.version} (${f.size} B) is not exact`);
  }
  t.equal(exact, files.size, 'every file reads back exactly after the remount');
  t.equal(await again.stop(), 0, 'the second mount exits cleanly');

  t.same(unexpected.slice(0, 20), [], 'no failed write, failed read or wrong byte');
  t.equal(unexpected.length, 0, `${unexpected.length} unexpected outcomes`);
  t.ok(ops > WRITERS + READERS, `operations were served (${ops})`);
  const overwritten = [...files.values()].filter((f) => f.version > 1).length;
  t.comment(`mount load: ${WRITERS} writers + ${READERS} readers, ${elapsed.toFixed(1)} s, ${ops} file operations (${(ops / elapsed).toFixed(1)}/s), ` +
    `${(bytesWritten / MiB).toFixed(0)} MiB written, ${(bytesRead / MiB).toFixed(0)} MiB read and checked, ${unexpected.length} unexpected ` +
    `(error rate ${((unexpected.length / Math.max(1, ops)) * 100).toFixed(2)} %), ${files.size} files (${overwritten} overwritten) verified after remount; mount daemon peak RSS ${rss} MiB`);
  t.comment(lat.summary());
});
