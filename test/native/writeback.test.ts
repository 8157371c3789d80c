// The libfuse3 binding with the kernel's writeback cache (`mount --writeback-cache`), on a real kernel
// mount over the in-memory store: the kernel batches writes in its page cache, so write-only opens
// are widened to read-write and O_APPEND is left to the kernel. What is stored after close must be
// exactly what was written (sequential, append, overwrite in the middle, truncate, mmap), and times
// set with touch -d must stick although the kernel owns mtime while data is dirty.
import { createHash } from 'node:crypto';
import path from 'node:path';
import t from 'tap';

import type { Fuse3MountHandle } from '../../native-bindings/fuse3/index.js';
import { loadAddon } from '../../native-bindings/fuse3/native.js';
import { EncryptedFileSystem } from '../../src/fs/filesystem.js';
import { fuseSkipReason, mountMemory, q, run } from './helpers/harness.js';

const skip = await fuseSkipReason('fuse3');
if (skip) {
  t.plan(0, `libfuse3 binding unavailable: ${skip}`);
  process.exit(0);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

t.test('writeback cache: content, size and times stored exactly', async (t) => {
  const m = await mountMemory(t, { mountOptions: { writeback: true } });
  const want = (m.handle as Fuse3MountHandle).stats().kernelWant;
  t.not(want & loadAddon().constants.FUSE_CAP_WRITEBACK_CACHE, 0, 'the kernel agreed to the writeback cache');
  const ref = path.join(m.dir, 'ref');
  const f = path.join(m.mnt, 'f');
  const both = async (cmd: (file: string) => string) => {
    await run(cmd(ref));
    await run(cmd(f));
  };
  // Sequential write-only (widened to read-write), then appends of odd sizes (kernel-side O_APPEND).
  await run(`head -c 3000000 /dev/urandom > ${q(ref)} && cp ${q(ref)} ${q(f)}`);
  await both((x) => `head -c 777 /dev/zero | tr '\\0' a >> ${q(x)}`);
  await both((x) => `printf tail >> ${q(x)}`);
  // Overwrite in the middle, crossing a page boundary, without truncating.
  await both((x) => `printf 'MIDDLE-OVERWRITE' | dd of=${q(x)} bs=1 seek=4090 conv=notrunc 2>/dev/null`);
  // Shrink, then grow past the end with a hole.
  await both((x) => `truncate -s 2500001 ${q(x)}`);
  await both((x) => `printf end | dd of=${q(x)} bs=1 seek=2600000 conv=notrunc 2>/dev/null`);
  // A write through a shared mapping (the kernel writes the dirty page back itself).
  await both((x) => `python3 -c "import mmap,sys; f=open(sys.argv[1],'r+b'); m=mmap.mmap(f.fileno(),0); m[100:104]=b'MMAP'; m.flush(); m.close(); f.close()" ${q(x)}`);
  t.equal((await run(`sha256sum < ${q(f)}`)).split(' ')[0], (await run(`sha256sum < ${q(ref)}`)).split(' ')[0], 'content through the mount');
  t.equal((await run(`stat -c %s ${q(f)}`)).trim(), '2600003', 'size through the mount');

  await run(`touch -d '2001-02-03 04:05:06.123456789 UTC' ${q(f)}`);
  t.equal((await run(`stat -c %y ${q(f)}`)).trim(), '2001-02-03 04:05:06.123456789 +0000', 'mtime set by touch -d');

  // What is stored, read by a fresh filesystem over the same bucket.
  await m.unmount();
  const fresh = await EncryptedFileSystem.create(m.engine, { spoolDir: m.dir });
  t.teardown(() => fresh.close());
  const st = await fresh.getattr('/f');
  t.equal(st.size, 2600003, 'stored size');
  t.equal(st.mtimeNs, 981173106123456789n, 'stored mtime');
  const fh = await fresh.open('/f', 0);
  const chunks: Buffer[] = [];
  for (let off = 0; off < st.size; off += 1 << 20) chunks.push(await fresh.read('/f', fh, 1 << 20, off));
  await fresh.release('/f', fh);
  t.equal(sha(Buffer.concat(chunks)), (await run(`sha256sum < ${q(ref)}`)).split(' ')[0], 'stored content');
});
