// A real kernel mount over a faulty backend (test/faults/fixtures/fault-proxy.ts between the mount
// daemon and s3rver): 500/503 SlowDown, resets before and mid body, stalls, truncated and corrupted
// bodies. Reads through the mount give the exact bytes or EIO, never other bytes; `cp` into the mount
// either exits 0 with exactly its bytes stored, or fails (close returns EIO) with the earlier version
// intact and nothing partial visible; retries are counted on the daemon's /metrics.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';

import { mount, sh, TEST_FUSE } from '../e2e/fixtures/mount.js';
import { setupMountStore } from './fixtures/mount-store.js';
import { prng, randomFault, startFaultProxy, type Fault } from './fixtures/fault-proxy.js';

const SEED = Number(process.env.FAULT_SEED ?? 90909);
const ROUNDS = Number(process.env.FAULT_ROUNDS ?? 12);
const BUDGET_MS = Number(process.env.FAULT_BUDGET_MS ?? 60_000);
const KiB = 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const forward: Fault = { kind: 'forward' };

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((resolve) => srv.close(resolve));
  return port;
}

/** A counter's value on /metrics, summed over its labels (undefined when it is not there). */
async function metric(admin: string, name: string): Promise<number | undefined> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const values = [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))].map((m) => Number(m[1]));
  return values.length ? values.reduce((a, b) => a + b, 0) : undefined;
}

const { s, uploadsStore, direct } = await setupMountStore(t);
const proxy = await startFaultProxy(s.server.endpoint);
t.teardown(() => proxy.stop());
const port = await freePort();
const admin = `http://127.0.0.1:${port}`;
// Attribute and listing caches off: every check asks the (faulty) backend again.
const m = await mount(t, { ...s, env: { ...s.env, AWS_ENDPOINT_URL: proxy.endpoint } }, [
  '--admin-listen', `127.0.0.1:${port}`, '--attr-ttl', '0', '--dir-ttl', '0', '--negative-ttl', '0', '--cache-size', '0',
]);
const local = path.join(s.dir, 'local.bin');

t.test(`reads under random backend faults: exact bytes or EIO (seed ${SEED}, ${TEST_FUSE})`, async (t) => {
  const rand = prng(SEED);
  const files = new Map<string, Buffer>();
  for (let i = 0; i < ROUNDS; i++) files.set(`r/f${i}.bin`, randomBytes(Math.floor(rand() * 900 * KiB) + 1));
  for (const [p, data] of files) await direct.putBuffer(p, data);
  const tally = { exact: 0, eio: 0 };
  const started = Date.now();
  proxy.setDecide((r) => (r.method === 'GET' || r.method === 'HEAD' ? randomFault(rand, 0.35, 2_000) : forward));
  for (const [p, data] of files) {
    if (Date.now() - started > BUDGET_MS) break;
    const r = await sh(`sha256sum ${JSON.stringify(path.join(m.mnt, p))}`);
    if (r.code === 0) {
      tally.exact++;
      t.equal(r.stdout.split(' ')[0], sha(data), `${p}: a successful read is exact`);
    } else {
      tally.eio++;
      t.match(r.stderr, /Input\/output error|No such file/, `${p}: a failed read is an error (${r.stderr.trim().slice(-80)})`);
    }
  }
  proxy.setDecide(() => forward);
  t.comment(`reads ${JSON.stringify(tally)}; backend requests ${proxy.log.length}, faulted ${proxy.log.filter((l) => l.fault !== 'forward').length}`);
  t.ok(tally.exact > 0, 'some reads succeeded despite faults (retries)');
  for (const [p, data] of files) {
    const r = await sh(`sha256sum ${JSON.stringify(path.join(m.mnt, p))}`);
    t.equal(r.stdout.split(' ')[0], sha(data), `${p}: exact once the faults stop`);
  }
});

t.test(`writes under random backend faults: exact or failed with the earlier version (seed ${SEED})`, async (t) => {
  const rand = prng(SEED + 1);
  const current = new Map<string, Buffer>();
  const tally = { cp0: 0, cpFailed: 0 };
  const started = Date.now();
  await sh(`mkdir -p ${JSON.stringify(path.join(m.mnt, 'w'))}`);
  for (let round = 0; round < ROUNDS && Date.now() - started < BUDGET_MS; round++) {
    const p = `w/k${round % 3}.bin`;
    // Every fourth round is larger than the 4 MiB stream buffer: a multipart upload while writing.
    const size = round % 4 === 3 ? 9 * 1024 * KiB + Math.floor(rand() * 100 * KiB) : Math.floor(rand() * 600 * KiB);
    const data = randomBytes(size);
    await writeFile(local, data);
    const before = current.get(p);
    proxy.setDecide(() => randomFault(rand, 0.3, 2_000));
    const r = await sh(`cp ${JSON.stringify(local)} ${JSON.stringify(path.join(m.mnt, p))}`);
    proxy.setDecide(() => forward);
    const stored = await direct.getBuffer(p).then((b) => b, (err: Error & { code?: string }) => err);
    t.notOk(stored instanceof Error && stored.name === 'IntegrityError', `round ${round}: never a partial or corrupt object (${stored instanceof Error ? stored.message : 'ok'})`);
    if (r.code === 0) {
      tally.cp0++;
      t.ok(Buffer.isBuffer(stored) && stored.equals(data), `round ${round}: cp exit 0, exactly its ${size} bytes stored`);
      current.set(p, data);
    } else {
      tally.cpFailed++;
      t.match(r.stderr, /Input\/output error|No such file|Invalid argument|Remote I\/O/, `round ${round}: cp failed visibly (${r.stderr.trim().slice(-100)})`);
      if (!Buffer.isBuffer(stored)) t.equal(before, undefined, `round ${round}: only a never-written file may be missing`);
      else if (before && stored.equals(before)) t.pass(`round ${round}: earlier version intact`);
      else {
        // The backend may have applied the PUT whose answer was lost: then it is all of it.
        t.ok(stored.equals(data), `round ${round}: otherwise exactly the new bytes`);
        current.set(p, data);
      }
    }
  }
  t.comment(`writes ${JSON.stringify(tally)}; backend requests ${proxy.log.length}, faulted ${proxy.log.filter((l) => l.fault !== 'forward').length}`);
  t.ok(tally.cp0 > 0, 'some writes succeeded despite faults (retries)');
  const retries = await metric(admin, 's3cryptfs_mount_store_retries_total');
  t.ok(retries !== undefined && retries > 0, `retries counted on the daemon's /metrics (s3cryptfs_mount_store_retries_total ${retries})`);
  const shared = await metric(admin, 's3cryptfs_backend_retries_total');
  t.ok(shared !== undefined && shared > 0, `and as s3cryptfs_backend_retries_total (by operation, summed: ${shared})`);
});

t.test('a backend that keeps failing: cp fails at close, the earlier version stays, nothing partial', async (t) => {
  for (const size of [200 * KiB, 9 * 1024 * KiB]) {
    const p = `stay-${size}.bin`;
    const old = randomBytes(5000);
    await direct.putBuffer(p, old);
    await writeFile(local, randomBytes(size));
    // Every PUT (PutObject, UploadPart) fails; creating and aborting a multipart upload still work.
    proxy.setDecide((r) => (r.method === 'PUT' ? { kind: 'error', status: 503, code: 'SlowDown' } : forward));
    const r = await sh(`cp ${JSON.stringify(local)} ${JSON.stringify(path.join(m.mnt, p))}`);
    const uploadsLeft = await uploadsStore.listMultipartUploads(s.bucket);
    proxy.setDecide(() => forward);
    t.not(r.code, 0, `${size} B: cp exits non-zero`);
    t.match(r.stderr, /Input\/output error/, `${size} B: with EIO`);
    t.ok((await direct.getBuffer(p)).equals(old), `${size} B: earlier version intact`);
    t.equal(uploadsLeft.filter((u) => u.key === direct.objectKey(p)).length, 0, `${size} B: no multipart upload of it left behind (aborted)`);
  }
  // The mount keeps working once the backend does.
  const data = randomBytes(300 * KiB);
  await writeFile(local, data);
  const r = await sh(`cp ${JSON.stringify(local)} ${JSON.stringify(path.join(m.mnt, 'after.bin'))}`);
  t.equal(r.code, 0, `cp after the outage: ${r.stderr}`);
  t.ok((await direct.getBuffer('after.bin')).equals(data), 'stored exactly');
});

t.test('unmount after faults', async (t) => {
  proxy.setDecide(() => forward);
  const code = await m.stop();
  t.ok(code === 0 || code === 1, `daemon exited (${code}); output tail: ${m.output().slice(-300)}`);
});
