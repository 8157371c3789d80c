// fuse3 write-behind: writes are answered when queued (up to writeBehindBytes per mount) and applied
// in order; other requests on the file wait for them; a failed queued write is reported by the next
// write, fsync or close of the file (exactly once), never lost.
import path from 'node:path';
import t from 'tap';

import { fuseSkipReason, mountMemory, q, run, sh, wrapFs } from './helpers/harness.js';

const skip = await fuseSkipReason('fuse3');
if (skip) {
  t.plan(0, `libfuse3 binding unavailable: ${skip}`);
  process.exit(0);
}

const MiB = 1024 * 1024;

t.test('queued writes: answered early, applied in order, stat and read see them all', async (t) => {
  let inFlight = 0;
  let maxInFlight = 0;
  let answeredAhead = 0;
  const m = await mountMemory(t, {
    fsWrap: (fs) => wrapFs(fs, {
      write: async (p: string, fh: number, data: Buffer, off: number) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        // Slow writes: the kernel's next request arrives while this one is being applied.
        await new Promise((r) => setTimeout(r, 20));
        inFlight--;
        return fs.write(p, fh, data, off);
      },
      getattr: async (p: string) => {
        if (inFlight > 0) answeredAhead++;
        return fs.getattr(p);
      },
    }),
  });
  const f = path.join(m.mnt, 'f');
  const ref = path.join(m.dir, 'ref');
  await run(`head -c ${12 * MiB + 12345} /dev/urandom > ${q(ref)}`);
  const out = await run(`python3 -c "
import os, sys
src = open(sys.argv[1], 'rb').read()
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
for i in range(0, len(src), 1 << 20): os.write(fd, src[i:i + (1 << 20)])
print(os.fstat(fd).st_size)
os.close(fd)
" ${q(ref)} ${q(f)}`);
  t.equal(out.trim(), String(12 * MiB + 12345), 'fstat right after the writes sees every byte');
  t.equal(answeredAhead, 0, 'no getattr was answered while writes were still being applied');
  t.equal(maxInFlight, 1, 'writes of one file are applied one at a time, in order');
  t.equal((await run(`cmp ${q(ref)} ${q(f)} && echo same`)).trim(), 'same', 'content');
});

t.test('a failed queued write is reported by a later write or close, once', async (t) => {
  let writes = 0;
  const m = await mountMemory(t, {
    fsWrap: (fs) => wrapFs(fs, {
      write: async (p: string, fh: number, data: Buffer, off: number) => {
        writes++;
        await new Promise((r) => setTimeout(r, 20));
        if (writes === 2) throw Object.assign(new Error('backend down'), { errno: 5 });
        return fs.write(p, fh, data, off);
      },
    }),
  });
  const f = path.join(m.mnt, 'f');
  const r = await sh(`python3 -c "
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
errors = []
for i in range(4):
    try: os.write(fd, b'x' * (1 << 20))
    except OSError as e: errors.append('write:' + str(e.errno))
try: os.close(fd)
except OSError as e: errors.append('close:' + str(e.errno))
print(' '.join(errors))
" ${q(f)}`);
  t.equal(r.code, 0, r.stderr);
  const errors = r.stdout.trim().split(' ').filter(Boolean);
  t.equal(errors.length, 1, `exactly one error reported (${r.stdout.trim()})`);
  t.match(errors[0], /^(write|close):5$/, 'EIO, at a later write or at close');
  t.ok(writes <= 2 || errors[0].startsWith('write'), `writes queued behind the failed one are not applied (${writes} applied)`);
  // The mount keeps serving.
  await run(`echo ok > ${q(path.join(m.mnt, 'g'))}`);
  t.equal((await run(`cat ${q(path.join(m.mnt, 'g'))}`)).trim(), 'ok');
});
