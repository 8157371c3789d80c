// fuse3 write path: requests are read into pooled blocks; a large write's data is handed over as a
// view of its block, which comes back only once the filesystem is done with it; write-only
// descriptors that start a file afresh bypass the page cache, and readers holding the file open
// still see every write.
import { createHash } from 'node:crypto';
import path from 'node:path';
import t from 'tap';

import { WriteBuffers } from '../../native-bindings/fuse3/write-buffers.js';
import { fuseSkipReason, mountMemory, q, run, wrapFs } from './helpers/harness.js';

const MiB = 1024 * 1024;

t.test('WriteBuffers: exact-size views of reused blocks, each given back once', async (t) => {
  const pool = new WriteBuffers(MiB, 2);
  const a = pool.take(MiB);
  const b = pool.take(200_000);
  t.equal(a.length, MiB);
  t.equal(b.length, 200_000);
  t.not(a.buffer, b.buffer, 'blocks in use are distinct');
  pool.give(b);
  pool.give(b);
  t.equal(pool.pooled, 1, 'a second give of the same buffer is ignored');
  const c = pool.take(70_000);
  t.equal(c.buffer, b.buffer, 'a given-back block is reused');
  pool.give(Buffer.alloc(MiB));
  t.equal(pool.pooled, 0, 'buffers the pool did not hand out are ignored');
  const big = pool.take(2 * MiB);
  t.equal(big.length, 2 * MiB, 'larger than a block: a plain allocation');
  pool.give(big);
  t.equal(pool.pooled, 0);
  const d = pool.take(MiB);
  for (const x of [a, c, d]) pool.give(x);
  t.equal(pool.pooled, 2, 'no more than maxFree blocks are kept');
});

const skip = await fuseSkipReason('fuse3');
if (skip) {
  t.test('fuse3 mount', async (t) => t.pass(`libfuse3 binding unavailable: ${skip}`));
} else {
  t.test('pooled write data: every byte applied exactly, blocks reused only after the filesystem is done', async (t) => {
    const blocks = new Set<ArrayBufferLike>();
    let largeWrites = 0;
    let notViews = 0;
    const mismatches: string[] = [];
    const m = await mountMemory(t, {
      fsWrap: (fs) => wrapFs(fs, {
        write: async (p: string, fh: number, data: Buffer, off: number) => {
          if (data.length >= 64 * 1024) {
            largeWrites++;
            blocks.add(data.buffer);
            // A view of the block the request was read into (max_write 1 MiB + the headers' room).
            if (data.buffer.byteLength !== MiB + 4096 || data.byteOffset === 0) notViews++;
          }
          // Slow writes keep the write-behind queue full; the data must not change meanwhile.
          const before = createHash('sha256').update(data).digest('hex');
          await new Promise((r) => setTimeout(r, 3));
          const n = await fs.write(p, fh, data, off);
          if (createHash('sha256').update(data).digest('hex') !== before) mismatches.push(`${p}@${off}`);
          return n;
        },
      }),
    });
    const ref = path.join(m.dir, 'ref');
    await run(`head -c ${40 * MiB + 777} /dev/urandom > ${q(ref)}`);
    await run(`dd if=${q(ref)} of=${q(path.join(m.mnt, 'a'))} bs=1M 2>/dev/null & cp ${q(ref)} ${q(path.join(m.mnt, 'b'))} & wait`);
    t.same(mismatches, [], 'no write data changed while its write was being applied');
    for (const name of ['a', 'b']) {
      t.equal((await run(`cmp ${q(ref)} ${q(path.join(m.mnt, name))} && echo same`)).trim(), 'same', `${name}: content`);
    }
    t.ok(blocks.size > 0 && blocks.size < largeWrites, `blocks are reused (${blocks.size} blocks for ${largeWrites} large writes)`);
    t.equal(notViews, 0, 'large write data stays in the receive block it was read into (no copy)');
  });

  t.test('readers holding the file open see writes through write-only descriptors', async (t) => {
    const m = await mountMemory(t);
    const out = await run(`python3 -c "
import os, sys
d = sys.argv[1]
# Rewritten in place (no O_TRUNC): buffered, the reader's cached pages are updated.
p = os.path.join(d, 'inplace')
open(p, 'wb').write(b'A' * 8192)
r = os.open(p, os.O_RDONLY); os.pread(r, 8192, 0)
w = os.open(p, os.O_WRONLY); os.pwrite(w, b'B' * 4096, 0)
print(os.pread(r, 4, 0).decode(), os.pread(r, 4, 4096).decode())
os.close(w); os.close(r)
# Written afresh (O_TRUNC, direct): appends and a rewrite are seen by an open reader.
p = os.path.join(d, 'fresh')
w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC); os.write(w, b'C' * 100)
r = os.open(p, os.O_RDONLY); os.pread(r, 4096, 0)
os.write(w, b'D' * 100)
print(os.pread(r, 8, 96).decode(), len(os.pread(r, 4096, 0)))
os.close(w); os.close(r)
" ${q(m.mnt)}`);
    t.same(out.trim().split('\n'), ['BBBB AAAA', 'CCCCDDDD 200']);
  });
}
