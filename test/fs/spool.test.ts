import { randomBytes } from 'node:crypto';
import { readdir, readFile, readlink } from 'node:fs/promises';
import t from 'tap';
import { SpoolDir, SPOOL_BLOCK, type SpoolBase } from '../../src/fs/spool.js';

function memBase(buf: Buffer, log?: number[][]): SpoolBase {
  return {
    async read(offset, length) {
      log?.push([offset, length]);
      return buf.subarray(offset, offset + length);
    },
  };
}

t.test('random writes, reads and truncates match a plain buffer', async (t) => {
  const dir = await SpoolDir.create();
  t.teardown(() => dir.close());
  for (const baseLen of [0, 1, SPOOL_BLOCK, 3 * SPOOL_BLOCK + 17, 100_000]) {
    const baseData = randomBytes(baseLen);
    const spool = await dir.open(baseLen ? memBase(baseData) : null, baseLen);
    let ref = Buffer.from(baseData);
    for (let step = 0; step < 300; step++) {
      const r = Math.random();
      if (r < 0.5) {
        const off = Math.floor(Math.random() * (ref.length + 3 * SPOOL_BLOCK));
        const data = randomBytes(Math.floor(Math.random() * 3 * SPOOL_BLOCK) + 1);
        await spool.write(off, data);
        const grown = Buffer.alloc(Math.max(ref.length, off + data.length));
        ref.copy(grown);
        data.copy(grown, off);
        ref = grown;
      } else if (r < 0.6) {
        const n = Math.floor(Math.random() * (ref.length + 2 * SPOOL_BLOCK));
        await spool.truncate(n);
        const next = Buffer.alloc(n);
        ref.copy(next, 0, 0, Math.min(n, ref.length));
        ref = next;
      } else {
        const off = Math.floor(Math.random() * (ref.length + 10));
        const len = Math.floor(Math.random() * 4 * SPOOL_BLOCK);
        const got = await spool.read(off, len);
        const want = ref.subarray(off, off + len);
        if (!got.equals(want)) t.fail(`read ${off}+${len} differs (base ${baseLen}, step ${step})`);
      }
      if (spool.size !== ref.length) t.fail(`size ${spool.size} != ${ref.length}`);
    }
    const all: Buffer[] = [];
    for await (const piece of spool.pieces(10_000)) all.push(piece);
    t.ok(Buffer.concat(all).equals(ref), `full content matches (base ${baseLen})`);
    await spool.close();
  }
  t.equal(dir.openSpools, 0);
});

t.test('appending to a large base fetches only the touched block', async (t) => {
  const dir = await SpoolDir.create();
  t.teardown(() => dir.close());
  const base = randomBytes(10 * SPOOL_BLOCK + 100);
  const log: number[][] = [];
  const spool = await dir.open(memBase(base, log), base.length);
  await spool.write(base.length, Buffer.from('tail'));
  t.same(log, [[10 * SPOOL_BLOCK, 100]]);
  t.equal(spool.size, base.length + 4);
  t.equal((await spool.read(base.length - 2, 10)).toString('hex'), Buffer.concat([base.subarray(-2), Buffer.from('tail')]).toString('hex'));
});

t.test('no plaintext reaches the spool directory', async (t) => {
  const dir = await SpoolDir.create();
  t.teardown(() => dir.close());
  const spool = await dir.open();
  const marker = Buffer.from('PLAINTEXT-MARKER-'.repeat(1000));
  await spool.write(0, marker);
  await spool.write(5, marker);
  // The file is unlinked at once; look at it through /proc.
  const fdDir = `/proc/self/fd`;
  let seen = 0;
  for (const fd of await readdir(fdDir)) {
    const target = await readlink(`${fdDir}/${fd}`).catch(() => '');
    if (!target.startsWith(dir.dir)) continue;
    seen++;
    const bytes = await readFile(`${fdDir}/${fd}`);
    t.ok(bytes.length >= marker.length, 'spool holds the data');
    t.equal(bytes.indexOf(Buffer.from('PLAINTEXT-MARKER')), -1, 'no plaintext on disk');
  }
  t.equal(seen, 1, 'found the spool file');
  t.same(await readdir(dir.dir), [], 'no names left in the spool directory');
  t.equal((await spool.read(0, 10)).toString(), 'PLAINPLAIN', 'reads back');
});
