// ls -l of a directory of 2,500 files after a remount: the directory attribute index answers every
// entry, so the daemon sends ceil(N/1000) LISTs and one GET and no HEAD (counted on its Prometheus
// metrics), and every mode, mtime and size is exact. Then a file changed behind the index (through
// another mount without indexes) is looked up and shows its new attributes.
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';

import { CLI, mount, run, setupStore, type Mounted } from './fixtures/mount.js';

const N = 2500;
const q = JSON.stringify;

/** Runs a Python script in a child process. */
async function py(dir: string, script: string): Promise<string> {
  const file = path.join(dir, 'script.py');
  await writeFile(file, script);
  return run(`python3 ${q(file)}`, { timeoutMs: 900_000 });
}

/** A port free right now (the daemon does not print its admin address). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function scrape(m: Mounted & { admin: string }): Promise<Record<string, number>> {
  const text = await (await fetch(`${m.admin}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const r = /^s3cryptfs_mount_store_requests_total\{operation="(\w+)"\} ([0-9.e+-]+)$/.exec(line);
    if (r) out[r[1]] = Number(r[2]);
  }
  return out;
}

function delta(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [op, n] of Object.entries(b)) if (n - (a[op] ?? 0) > 0) out[op] = n - (a[op] ?? 0);
  return out;
}

// Distinct modes and nanosecond mtimes per file, set through the mount by one child process.
const MAKE = (dir: string) => `
import os
d = ${q(dir)}
os.mkdir(d, 0o750)
for i in range(${N}):
    p = os.path.join(d, 'f%05d' % i)
    with open(p, 'wb') as f:
        f.write(b'x' * (i % 97))
    os.chmod(p, 0o400 | (i % 0o400))
    t = 1_500_000_000_000_000_000 + i * 1_000_000_007
    os.utime(p, ns=(t, t))
`;
const LIST = (dir: string) => `
import os
d = ${q(dir)}
for n in sorted(os.listdir(d)):
    st = os.lstat(os.path.join(d, n))
    print(n, oct(st.st_mode), st.st_mtime_ns, st.st_size)
`;
const expected = Array.from({ length: N }, (_, i) => {
  const t = 1_500_000_000_000_000_000n + BigInt(i) * 1_000_000_007n;
  return `f${String(i).padStart(5, '0')} ${'0o' + (0o100000 | 0o400 | (i % 0o400)).toString(8)} ${t} ${i % 97}`;
});

t.test(`ls -l of ${N} files after a remount: no HEAD, exact attributes`, async (t) => {
  const store = await setupStore(t);
  const withAdmin = async () => {
    const port = await freePort();
    return { ...(await mount(t, store, ['--admin-listen', `127.0.0.1:${port}`])), admin: `http://127.0.0.1:${port}` };
  };
  const first = await mount(t, store);
  const dir = path.join(first.mnt, 'many');
  await py(store.dir, MAKE(dir));
  t.equal(await first.stop(), 0, 'unmounted cleanly (indexes stored)');

  const m = await withAdmin();
  const mdir = path.join(m.mnt, 'many');
  await run(`stat ${q(mdir)}`); // the directory's own lookup
  const before = await scrape(m);
  const lines = (await run(`ls -l ${q(mdir)}`)).trim().split('\n');
  const ls = delta(before, await scrape(m));
  t.equal(lines.length, N + 1, 'ls -l lists every file (plus the total line)');
  t.equal(ls.HeadObject ?? 0, 0, 'no HEAD');
  t.ok((ls.ListObjectsV2 ?? 0) <= Math.ceil(N / 1000) + 1, `LISTs: ${ls.ListObjectsV2} (ceil(N/1000) = ${Math.ceil(N / 1000)})`);
  t.ok((ls.GetObject ?? 0) <= 1, 'the index: one GET');
  t.ok(Object.values(ls).reduce((a, b) => a + b, 0) <= Math.ceil(N / 1000) + 3, `requests in all: ${JSON.stringify(ls)}`);
  const listed = (await py(store.dir, LIST(mdir))).trim().split('\n');
  t.same(listed, expected, 'every mode, mtime (ns) and size exact');
  t.same(delta(before, await scrape(m)).HeadObject ?? 0, 0, 'stat of every file: still no HEAD');
  t.same(await run(`stat -c '%a' ${q(mdir)}`), '750\n', 'directory mode persisted');
  t.equal(await m.stop(), 0);

  // f00007 replaced by another tool (the CLI's put keeps no index): the next mount looks that one file up.
  await run(`head -c 12345 /dev/urandom > ${q(path.join(store.dir, 'new'))}`);
  await run(`node ${q(CLI)} put ${q(path.join(store.dir, 'new'))} s3://${store.bucket}/many/f00007`, { env: store.env });
  const again = await withAdmin();
  const adir = path.join(again.mnt, 'many');
  await run(`stat ${q(adir)}`);
  const b2 = await scrape(again);
  await run(`ls -l ${q(adir)} > /dev/null`);
  const listedAgain = (await py(store.dir, LIST(adir))).trim().split('\n');
  const d2 = delta(b2, await scrape(again));
  t.match(listedAgain[7], /^f00007 0o100644 \d+ 12345$/, 'the replaced file: its own (default) mode and new size');
  t.same(listedAgain.filter((_, i) => i !== 7), expected.filter((_, i) => i !== 7), 'the others unchanged');
  t.ok((d2.HeadObject ?? 0) <= 1, `HEADs: ${d2.HeadObject ?? 0} (at most the changed file)`);
});
