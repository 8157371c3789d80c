// The libfuse3 binding on a real kernel mount, over the in-memory store (no S3 in the way):
// nanosecond times through utimens (touch -d, touch -m/-a, rsync -a with a second run that sends
// nothing), 64-bit file handles, a 10,000-entry `ls -l` answered by readdirplus (no LOOKUP, no HEAD),
// an interrupted read, and lookup counting. Needs root or a usable /dev/fuse + fusermount3.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';

import type Tap from 'tap';

import { FIRST_HANDLE, type Fuse3MountHandle, type Fuse3MountOptions } from '../../native-bindings/fuse3/index.js';
import type { OpName } from '../../native-bindings/fuse3/native.js';
import { EncryptedFileSystem } from '../../src/fs/filesystem.js';
import { fuseSkipReason, mountMemory, q, run, sh, wrapFs } from './helpers/harness.js';

const skip = await fuseSkipReason('fuse3');
if (skip) {
  t.plan(0, `libfuse3 binding unavailable: ${skip}`);
  process.exit(0);
}

const stats = (h: unknown) => (h as Fuse3MountHandle).stats();

t.test('touch -d: nanosecond mtime and atime, set together or one at a time, stored', async (t) => {
  const m = await mountMemory(t);
  const f = path.join(m.mnt, 'f');
  await run(`echo hi > ${q(f)}`);
  await run(`touch -d '2001-02-03 04:05:06.123456789 UTC' ${q(f)}`);
  t.equal((await run(`stat -c '%y|%x' ${q(f)}`)).trim(), '2001-02-03 04:05:06.123456789 +0000|2001-02-03 04:05:06.123456789 +0000');
  await run(`touch -m -d '2010-06-07 08:09:10.000000001 UTC' ${q(f)}`);
  t.equal((await run(`stat -c '%y|%x' ${q(f)}`)).trim(), '2010-06-07 08:09:10.000000001 +0000|2001-02-03 04:05:06.123456789 +0000', 'touch -m leaves atime (UTIME_OMIT)');
  await run(`touch -a -d '1999-12-31 23:59:59.999999999 UTC' ${q(f)}`);
  t.equal((await run(`stat -c '%y|%x' ${q(f)}`)).trim(), '2010-06-07 08:09:10.000000001 +0000|1999-12-31 23:59:59.999999999 +0000', 'touch -a leaves mtime');
  await run(`touch -d '1960-01-01 00:00:00.5 UTC' ${q(f)}`);
  t.equal((await run(`stat -c '%y' ${q(f)}`)).trim(), '1960-01-01 00:00:00.500000000 +0000', 'before 1970');
  const before = Date.now();
  await run(`touch -m ${q(f)}`);
  const mtime = Number((await run(`stat -c %Y ${q(f)}`)).trim());
  t.ok(Math.abs(mtime * 1000 - before) < 5000, 'touch -m without a date: UTIME_NOW');
  t.equal((await run(`stat -c '%x' ${q(f)}`)).trim(), '1960-01-01 00:00:00.500000000 +0000', 'atime kept');

  // What is stored, seen by a fresh filesystem over the same bucket.
  await run(`touch -d '2001-02-03 04:05:06.123456789 UTC' ${q(f)}`);
  await m.unmount();
  const fresh = await EncryptedFileSystem.create(m.engine, { spoolDir: m.dir });
  const st = await fresh.getattr('/f');
  t.equal(st.mtimeNs, 981173106123456789n, 'stored mtime');
  t.equal(st.atimeNs, 981173106123456789n, 'stored atime');
  await fresh.close();
});

t.test('rsync -a: times, modes and links round-trip; a second rsync transfers nothing', async (t) => {
  const m = await mountMemory(t);
  const src = path.join(m.dir, 'tree');
  await run(`set -e; mkdir -p ${q(src)}; cd ${q(src)}
    for a in 1 2 3 4 5; do mkdir -p d$a/s; for c in $(seq 1 30); do head -c $((a * 997 + c * 131)) /dev/urandom > d$a/s/f$c; done; ln -s s/f1 d$a/link; done
    chmod 600 d1/s/f1; chmod 751 d2/s; chmod 4755 d3/s/f3
    find . -type f -name 'f1*' -exec touch -m -d '2001-02-03 04:05:06.123456789' {} +
    find . -type f -name 'f2*' -exec touch -d '2010-06-07 08:09:10' {} +
    touch -h -d '2005-05-05 05:05:05.5' d1/link`);
  const dst = path.join(m.mnt, 'copy');
  await run(`rsync -a ${q(src + '/')} ${q(dst + '/')}`);
  const d = await sh(`diff -r --no-dereference ${q(src)} ${q(dst)}`);
  t.equal(d.code, 0, `diff -r: ${d.stdout}${d.stderr}`);
  const listing = (root: string) => run(`cd ${q(root)} && find . -mindepth 1 -printf '%y %m %s %T@ %P\\n' | grep -v '^[dl]' | sort -k5`);
  t.equal(await listing(dst), await listing(src), 'type, mode, size and nanosecond mtime of every file');
  const second = await run(`rsync -a --itemize-changes --stats ${q(src + '/')} ${q(dst + '/')}`);
  const changes = second.split('\n').filter((l) => /^[<>ch.][fdLDS]/.test(l) && !/^\.d\.\.t\.\.\.\.\.\. /.test(l));
  t.same(changes, [], 'no file, link or permission changes in the second run');
  t.match(second, /Number of regular files transferred: 0/);
  t.match(second, /Total transferred file size: 0 bytes/);
});

t.test('64-bit file handles: the kernel hands back values above 2^32', async (t) => {
  let seen = 0;
  const m = await mountMemory(t, {
    fsWrap: (fs) => wrapFs(fs, {
      read: (p: string, fh: number, len: number, off: number) => {
        seen++;
        return fs.read(p, fh, len, off);
      },
    }),
  });
  await run(`head -c 300000 /dev/urandom > ${q(path.join(m.dir, 'src'))} && cp ${q(path.join(m.dir, 'src'))} ${q(path.join(m.mnt, 'f'))}`);
  // Several descriptors at once, each read through its own handle.
  const out = await run(`cd ${q(m.mnt)} && exec 3<f 4<f 5<f && cat <&3 | sha256sum && cat <&4 | sha256sum && dd iflag=direct bs=64k <&5 2>/dev/null | sha256sum`);
  const want = (await run(`sha256sum < ${q(path.join(m.dir, 'src'))}`)).trim();
  t.same(out.trim().split('\n').map((l) => l.trim()), [want, want, want]);
  const s = stats(m.handle);
  t.ok(s.maxHandle > 2 ** 32, `largest handle ${s.maxHandle} > 2^32`);
  t.ok(s.maxHandle >= FIRST_HANDLE + 3);
  t.ok(seen > 0, 'reads reached the filesystem');
  t.equal(s.handles, 0, 'all released');
});

// Under the sanitizers (test:native-asan) the 10,000-entry listings are too slow to be useful.
const quick = process.env.S3CRYPTFS_NATIVE_QUICK === '1';
const N = 10_000;

async function bigDirMount(t: Tap.Test, mountOptions: Fuse3MountOptions) {
  const counts: Partial<Record<OpName, number>> = {};
  const m = await mountMemory(t, {
    mountOptions: { onRequest: (op) => (counts[op] = (counts[op] ?? 0) + 1), ...mountOptions },
    prepare: async (fs, engine) => {
      await fs.mkdir('/big', 0o755);
      for (let i = 0; i < N; i += 500) {
        await Promise.all(Array.from({ length: Math.min(500, N - i) }, (_, k) =>
          engine.putBuffer(`big/file-${String(i + k).padStart(5, '0')}`, Buffer.from(`content ${String(i + k).padStart(5, '0')}\n`))));
      }
    },
  });
  await run(`stat ${q(path.join(m.mnt, 'big'))}`);
  const ls = async () => {
    for (const k of Object.keys(counts)) delete counts[k as OpName];
    const heads = m.store.requests.HeadObject ?? 0;
    const started = Date.now();
    const lines = (await run(`ls -l ${q(path.join(m.mnt, 'big'))}`)).trim().split('\n');
    return { lines, ms: Date.now() - started, heads: (m.store.requests.HeadObject ?? 0) - heads, counts: { ...counts } };
  };
  return { m, ls };
}

t.test('ls -l of 10,000 entries: once the attributes are known, readdirplus answers it alone (no LOOKUP, no HEAD)', { skip: quick }, async (t) => {
  const { m, ls } = await bigDirMount(t, { kernelAttrTimeoutSec: 0.5, kernelEntryTimeoutSec: 0.5 });
  const cold = await ls();
  t.equal(cold.lines.length, N + 1, 'total line + every entry');
  t.comment(`cold ls -l: ${cold.ms} ms, FUSE ${JSON.stringify(cold.counts)}, HEADs ${cold.heads}`);
  t.ok((cold.counts.lookup ?? 0) >= N, 'cold: entries without read attributes are looked up (exact stat)');
  await new Promise((r) => setTimeout(r, 1000)); // the kernel's entry and attribute caches expire
  const warm = await ls();
  t.comment(`warm ls -l: ${warm.ms} ms, FUSE ${JSON.stringify(warm.counts)}, HEADs ${warm.heads}`);
  t.equal(warm.lines.length, N + 1);
  t.ok((warm.counts.readdirplus ?? 0) > 0, 'readdirplus used');
  t.equal(warm.counts.readdir ?? 0, 0, 'no plain readdir');
  t.ok((warm.counts.lookup ?? 0) <= 2, `lookups: ${warm.counts.lookup ?? 0}`);
  t.ok((warm.counts.getattr ?? 0) <= 2, `getattrs: ${warm.counts.getattr ?? 0}`);
  t.equal(warm.heads, 0, 'no HEAD requests');
  t.ok(stats(m.handle).referencedInodes >= N, 'every entry holds a kernel reference');
});

t.test('ls -l of 10,000 cold entries with listingAttributes: readdirplus alone, no HEAD', { skip: quick }, async (t) => {
  const { m, ls } = await bigDirMount(t, { listingAttributes: true, kernelAttrTimeoutSec: 60, kernelEntryTimeoutSec: 60 });
  const cold = await ls();
  t.comment(`ls -l: ${cold.ms} ms, FUSE ${JSON.stringify(cold.counts)}, HEADs ${cold.heads}`);
  t.equal(cold.lines.length, N + 1);
  t.match(cold.lines[1], /^-rw-r--r-- 1 \S+ \S+ +14 .* file-00000$/, cold.lines[1]);
  t.ok((cold.counts.lookup ?? 0) <= 1, `lookups: ${cold.counts.lookup ?? 0}`);
  t.equal(cold.heads, 0, 'no HEAD requests');

  // Forgetting: dropping the kernel's caches returns the references.
  const drop = await sh('sync; echo 2 > /proc/sys/vm/drop_caches');
  if (drop.code === 0) {
    await new Promise((r) => setTimeout(r, 200));
    t.ok(stats(m.handle).referencedInodes < 10, `after drop_caches: ${stats(m.handle).referencedInodes} referenced`);
  }
});

t.test('an interrupted read returns EINTR, aborts the backend call and frees the request', async (t) => {
  let release: (() => void) | undefined;
  let aborted = false;
  const m = await mountMemory(t, {
    fsWrap: (fs) => wrapFs(fs, {
      read: (p: string, fh: number, len: number, off: number, signal?: AbortSignal) => {
        if (!p.endsWith('stall')) return fs.read(p, fh, len, off);
        return new Promise<Buffer>((resolve) => {
          release = () => resolve(Buffer.from('late'));
          signal?.addEventListener('abort', () => (aborted = true));
        });
      },
    }),
  });
  await run(`echo data > ${q(path.join(m.mnt, 'stall'))}`);
  // O_DIRECT makes the read a synchronous request, which the kernel interrupts on a signal.
  const reader = sh(`perl -e 'use Fcntl; $SIG{USR1} = sub {}; sysopen(F, $ARGV[0], O_RDONLY | O_DIRECT) or die "open: $!"; my $n = sysread(F, my $b, 4096); print defined $n ? "read $n\\n" : "errno " . ($! + 0) . "\\n"' ${q(path.join(m.mnt, 'stall'))} & pid=$!; sleep 1; kill -USR1 $pid; wait $pid`);
  const r = await reader;
  t.equal(r.stdout.trim(), 'errno 4', `the reader got EINTR ${r.stderr}`);
  t.ok(aborted, 'the AbortSignal of the backend call fired');
  const s = stats(m.handle);
  t.equal(s.requests.interrupt, 1, 'one INTERRUPT');
  t.equal(s.pending, 0, 'the request was answered and freed');
  release?.();
  await new Promise((r) => setTimeout(r, 50));
  t.equal(stats(m.handle).repliesDropped, 1, 'the late answer was dropped, not sent twice');
});

t.test('namespace operations through the inode table', async (t) => {
  const m = await mountMemory(t);
  const q2 = (p: string) => q(path.join(m.mnt, p));
  await run(`mkdir -p ${q2('a/b/c')} && echo 1 > ${q2('a/b/c/f')} && ln -s c/f ${q2('a/b/l')}`);
  const ino = (p: string) => run(`stat -c %i ${q2(p)}`).then((s) => s.trim());
  const before = await ino('a/b/c/f');
  await run(`mv ${q2('a')} ${q2('z')}`);
  t.equal(await ino('z/b/c/f'), before, 'a file keeps its inode number when its directory is renamed');
  t.equal(await run(`cat ${q2('z/b/l')}`), '1\n');
  t.equal((await sh(`ls ${q2('a')}`)).code, 2, 'old path gone');
  await run(`echo 2 > ${q2('z/b/c/g')} && mv ${q2('z/b/c/g')} ${q2('z/b/c/f')}`);
  t.equal(await run(`cat ${q2('z/b/c/f')}`), '2\n', 'rename over an existing file');
  t.not(await ino('z/b/c/f'), before, 'the replaced file had another inode');
  // Unlinked while open: the descriptor still works.
  t.equal(await run(`cd ${q(m.mnt)} && exec 3<z/b/c/f && rm z/b/c/f && cat <&3 && stat -L -c %s /dev/fd/3`), '2\n2\n');
  await run(`rm -rf ${q2('z')}`);
  t.equal((await run(`ls -A ${q(m.mnt)}`)).trim(), '');
  await run(`mkdir ${q2('d')} && chmod 700 ${q2('d')} && truncate -s 5 ${q2('d/t')} && chmod 640 ${q2('d/t')}`);
  t.equal((await run(`stat -c '%a %s' ${q2('d')} ${q2('d/t')}`)).trim(), '700 4096\n640 5');
  t.equal((await sh(`mknod ${q2('d/fifo')} p`)).code, 1, 'mknod of a FIFO: EPERM');
  t.equal((await sh(`ln ${q2('d/t')} ${q2('d/hard')}`)).code, 1, 'hard link: EPERM');
  t.match((await run(`df -P ${q(m.mnt)}`)), /memory/);
  await mkdir(path.join(m.mnt, 'async-mkdir'));
  t.equal((await run(`ls ${q(m.mnt)}`)).trim(), 'async-mkdir\nd');
});

t.test('large requests: writes and reads of up to 1 MiB', async (t) => {
  const m = await mountMemory(t);
  const src = path.join(m.dir, 'src');
  await run(`head -c ${24 * 1024 * 1024 + 5} /dev/urandom > ${q(src)}`);
  const before = stats(m.handle).requests.write;
  await run(`dd if=${q(src)} of=${q(path.join(m.mnt, 'f'))} bs=1M 2>/dev/null`);
  const writes = stats(m.handle).requests.write - before;
  t.ok(writes <= 26, `${writes} write requests for 24 MiB`);
  t.equal((await run(`sha256sum < ${q(path.join(m.mnt, 'f'))}`)), await run(`sha256sum < ${q(src)}`));
  t.ok((stats(m.handle).kernelWant & 0x2000) !== 0, 'readdirplus negotiated');
});
