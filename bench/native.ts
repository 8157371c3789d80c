/**
 * The FUSE bindings compared on a real kernel mount: our libfuse3 addon (fuse3) and fuse-native.
 * The filesystem (EncryptedFileSystem + engine) runs in this process; the workload runs in child
 * processes (dd, perl, ls), as users would.
 *
 *   npm run bench:native -- [--size MiB] [--s3-size MiB] [--entries N] [--clients N] [--stats N]
 *                           [--bindings fuse3,fuse-native] [--backends memory,s3] [--writeback] [--rounds N]
 *
 * Per binding and backend (memory = bench/memory-store.ts, no network or disk; s3 = s3rver in a child
 * process on loopback):
 *  - sequential write: dd bs=1M of a random file into the mount, including the upload at close;
 *    MB/s and CPU seconds of this process (the daemon) per GiB;
 *  - sequential read of that file after dropping the kernel's page cache (root), same figures;
 *  - getattr/s: N clients (perl) stat() one file in a loop, kernel attribute caching off;
 *  - ls -l of a directory with --entries files (memory backend): time, FUSE lookups/getattrs that
 *    reached the filesystem, HEAD requests to the store.
 * Also the engine's own write throughput (encrypt + store into the memory store, no FUSE) in the same
 * run: the goal for fuse3 is >= 0.8x of it and >= 2x fuse-native on the memory backend.
 * With several rounds, the best round per figure is reported (the machine may be shared).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';

import { loadBinding, type FsOperations, type MountHandle } from '../native-bindings/index.js';
import type { Fuse3MountHandle } from '../native-bindings/fuse3/index.js';
import { Engine } from '../src/engine/index.js';
import { deriveKeys, newBucketConfig } from '../src/format/index.js';
import { EncryptedFileSystem } from '../src/fs/filesystem.js';
import { startEmbeddedS3, type EmbeddedS3 } from '../src/store/embedded-s3.js';
import { ObjectStore } from '../src/store/store.js';
import { MemoryStore } from './memory-store.js';

const execFileP = promisify(execFile);
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '512' },
    's3-size': { type: 'string', default: '256' },
    entries: { type: 'string', default: '10000' },
    clients: { type: 'string', default: '8' },
    stats: { type: 'string', default: '20000' },
    bindings: { type: 'string', default: 'fuse3,fuse-native' },
    backends: { type: 'string', default: 'memory,s3' },
    writeback: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '1' },
  },
});
const SIZE = Math.round(Number(values.size) * MiB);
const S3_SIZE = Math.round(Number(values['s3-size']) * MiB);
const ENTRIES = Number(values.entries);
const CLIENTS = Number(values.clients);
const STATS = Number(values.stats);
const BINDINGS = values.bindings!.split(',').filter(Boolean);
const BACKENDS = values.backends!.split(',').filter(Boolean) as ('memory' | 's3')[];
const ROUNDS = Math.max(1, Number(values.rounds));

async function sh(cmd: string): Promise<string> {
  const { stdout } = await execFileP('bash', ['-c', cmd], { maxBuffer: 256 * MiB });
  return stdout;
}

const q = JSON.stringify;

interface Backend {
  name: 'memory' | 's3';
  engine(prefix: string): Promise<Engine>;
  heads(): number;
  stop(): Promise<void>;
}

async function memoryBackend(): Promise<Backend> {
  const store = new MemoryStore({ hashEtags: false });
  store.createBucket('bench');
  return {
    name: 'memory',
    engine: (prefix) => openEngine(store, prefix),
    heads: () => store.requests.HeadObject ?? 0,
    stop: async () => {},
  };
}

async function s3Backend(dir: string): Promise<Backend> {
  const server: EmbeddedS3 = await startEmbeddedS3({ dir: path.join(dir, 's3'), buckets: ['bench'] });
  const store = new ObjectStore({ endpoint: server.endpoint, region: 'us-east-1', credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
  return {
    name: 's3',
    engine: (prefix) => openEngine(store, prefix),
    heads: () => store.stats.requests.HeadObject ?? 0,
    stop: async () => {
      store.destroy();
      await server.stop();
    },
  };
}

async function openEngine(store: MemoryStore | ObjectStore, prefix: string): Promise<Engine> {
  const keys = deriveKeys(randomBytes(32));
  const config = newBucketConfig(keys, { cipher: 'chacha20-poly1305', chunkSize: 64 * 1024, names: 'aes-siv' });
  await Engine.init(store, 'bench', prefix, config);
  return Engine.open({ store, bucket: 'bench', prefix, keys, config });
}

interface Mounted {
  mnt: string;
  fs: EncryptedFileSystem;
  handle: MountHandle;
  getattrCalls: () => number;
  close(): Promise<void>;
}

let mounts = 0;
async function mountWith(dir: string, binding: string, engine: Engine, opts: { attrTimeout?: number } = {}): Promise<Mounted> {
  const mnt = path.join(dir, `mnt${mounts++}`);
  await mkdir(mnt);
  const fs = await EncryptedFileSystem.create(engine, { spoolDir: dir });
  let getattrs = 0;
  const counted: FsOperations = Object.create(fs) as FsOperations;
  counted.getattr = (p: string) => {
    getattrs++;
    return fs.getattr(p);
  };
  const b = await loadBinding(binding);
  const handle = await b.mount(mnt, counted, {
    fsName: 'bench',
    kernelAttrTimeoutSec: opts.attrTimeout,
    ...(binding === 'fuse3' ? { writeback: values.writeback } : {}),
  });
  return {
    mnt,
    fs,
    handle,
    getattrCalls: () => getattrs,
    async close() {
      await fs.flushAll();
      await handle.unmount().catch(() => handle.unmount({ lazy: true }));
      await fs.close();
      await rm(mnt, { recursive: true, force: true }).catch(() => {});
    },
  };
}

function cpuSeconds(since: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1e6;
}

interface Rate {
  mbps: number;
  cpuPerGiB: number;
}

async function timed(bytes: number, fn: () => Promise<unknown>): Promise<Rate> {
  const cpu = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mbps: bytes / 1e6 / s, cpuPerGiB: cpuSeconds(cpu) / (bytes / GiB) };
}

async function dropCaches(): Promise<boolean> {
  try {
    await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
    return true;
  } catch {
    return false;
  }
}

/** The engine alone: encrypt and store `size` bytes from `src` in 1 MiB writes (no FUSE). */
async function engineWrite(engine: Engine, src: string, size: number): Promise<Rate> {
  const fh = await open(src, 'r');
  const buf = Buffer.alloc(MiB);
  try {
    return await timed(size, async () => {
      const w = engine.createWriter('engine-baseline.bin');
      for (let off = 0; off < size; off += MiB) {
        const { bytesRead } = await fh.read(buf, 0, Math.min(MiB, size - off), off);
        await w.write(Buffer.from(buf.subarray(0, bytesRead)));
      }
      await w.close();
    });
  } finally {
    await fh.close();
  }
}

async function getattrRate(mnt: string): Promise<number> {
  const f = path.join(mnt, 'statme');
  await sh(`echo x > ${q(f)}`);
  const t0 = process.hrtime.bigint();
  await sh(`for i in $(seq 1 ${CLIENTS}); do perl -e '$f = shift; $n = shift; stat($f) or die "$!" for 1..$n' ${q(f)} ${STATS} & done; wait`);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return (CLIENTS * STATS) / s;
}

interface Result {
  backend: string;
  binding: string;
  write?: Rate;
  read?: Rate;
  getattrPerSec?: number;
  /** Cold: a freshly mounted directory; warm: again once the kernel's caches expired (src/fs's are warm). */
  ls?: LsResult;
  lsWarm?: LsResult;
}

interface LsResult {
  ms: number;
  lines: number;
  fsGetattrs: number;
  fuseLookups?: number;
  heads: number;
}

const best = <T>(a: T | undefined, b: T, better: (x: T, y: T) => boolean): T => (a === undefined || better(b, a) ? b : a);

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-bench-native-'));
  const results = new Map<string, Result>();
  const engineRates: Rate[] = [];
  let prefixN = 0;
  try {
    const maxSize = Math.max(SIZE, BACKENDS.includes('s3') ? S3_SIZE : 0);
    const src = path.join(dir, 'src.bin');
    await sh(`head -c ${maxSize} /dev/urandom > ${q(src)}`);
    const canDrop = await dropCaches();
    if (!canDrop) console.error('note: cannot drop the page cache (not root): reads are remounted instead');

    for (const backendName of BACKENDS) {
      const backend = backendName === 'memory' ? await memoryBackend() : await s3Backend(dir);
      const size = backendName === 'memory' ? SIZE : S3_SIZE;
      try {
        for (let round = 0; round < ROUNDS; round++) {
          if (backendName === 'memory') {
            const e = await backend.engine(`p${prefixN++}`);
            engineRates.push(await engineWrite(e, src, size));
          }
          for (const binding of BINDINGS) {
            const key = `${backendName}/${binding}`;
            const r: Result = results.get(key) ?? { backend: backendName, binding };
            results.set(key, r);
            const engine = await backend.engine(`p${prefixN++}`);
            let m = await mountWith(dir, binding, engine);
            const target = path.join(m.mnt, 'seq.bin');
            r.write = best(r.write, await timed(size, () => sh(`dd if=${q(src)} of=${q(target)} bs=1M count=${size / MiB} 2>/dev/null`)), (x, y) => x.mbps > y.mbps);
            if (!canDrop) {
              await m.close();
              m = await mountWith(dir, binding, engine);
            } else {
              await dropCaches();
            }
            const readTarget = path.join(m.mnt, 'seq.bin');
            r.read = best(r.read, await timed(size, () => sh(`dd if=${q(readTarget)} of=/dev/null bs=1M 2>/dev/null`)), (x, y) => x.mbps > y.mbps);
            await m.close();

            if (backendName === 'memory') {
              const g = await mountWith(dir, binding, engine, { attrTimeout: 0 });
              r.getattrPerSec = best(r.getattrPerSec, await getattrRate(g.mnt), (x, y) => x > y);
              await g.close();
            }
            console.error(`${key} round ${round + 1}: write ${r.write.mbps.toFixed(0)} MB/s, read ${r.read.mbps.toFixed(0)} MB/s${r.getattrPerSec ? `, getattr ${r.getattrPerSec.toFixed(0)}/s` : ''}`);
          }
        }

        if (backendName === 'memory' && ENTRIES > 0) {
          const engine = await backend.engine(`p${prefixN++}`);
          for (let i = 0; i < ENTRIES; i += 500) {
            await Promise.all(Array.from({ length: Math.min(500, ENTRIES - i) }, (_, k) =>
              engine.putBuffer(`many/file-${String(i + k).padStart(6, '0')}`, Buffer.from(`entry ${i + k}\n`))));
          }
          for (const binding of BINDINGS) {
            const r = results.get(`${backendName}/${binding}`)!;
            const m = await mountWith(dir, binding, engine);
            await sh(`stat ${q(path.join(m.mnt, 'many'))} > /dev/null`);
            const once = async () => {
              const heads0 = backend.heads();
              const getattrs0 = m.getattrCalls();
              const lookups0 = binding === 'fuse3' ? (m.handle as Fuse3MountHandle).stats().requests.lookup : undefined;
              const t0 = Date.now();
              const lines = Number((await sh(`ls -l ${q(path.join(m.mnt, 'many'))} | wc -l`)).trim());
              return {
                ms: Date.now() - t0,
                lines,
                fsGetattrs: m.getattrCalls() - getattrs0,
                fuseLookups: lookups0 === undefined ? undefined : (m.handle as Fuse3MountHandle).stats().requests.lookup - lookups0,
                heads: backend.heads() - heads0,
              };
            };
            r.ls = await once();
            await new Promise((res) => setTimeout(res, 1500)); // the kernel's 1 s entry/attribute caches expire
            r.lsWarm = await once();
            await m.close();
          }
        }
      } finally {
        await backend.stop();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const engineBest = engineRates.reduce<Rate | undefined>((a, b) => best(a, b, (x, y) => x.mbps > y.mbps), undefined);
  const out: string[] = [];
  out.push(`bench:native  size ${SIZE / MiB} MiB (memory), ${S3_SIZE / MiB} MiB (s3rver), ${ROUNDS} round(s)${values.writeback ? ', fuse3 writeback cache on' : ''}`);
  if (engineBest) out.push(`engine alone (encrypt + memory store, 1 MiB writes): ${engineBest.mbps.toFixed(0)} MB/s, ${engineBest.cpuPerGiB.toFixed(2)} CPU s/GiB`);
  out.push('backend  binding      write MB/s  CPU s/GiB   read MB/s  CPU s/GiB   getattr/s   ls -l (ms, fs getattrs, FUSE lookups, HEADs)');
  for (const r of results.values()) {
    const f = (x: number | undefined, d = 0) => (x === undefined ? '-' : x.toFixed(d));
    out.push(
      `${r.backend.padEnd(8)} ${r.binding.padEnd(12)} ${f(r.write?.mbps).padStart(10)} ${f(r.write?.cpuPerGiB, 2).padStart(10)} ${f(r.read?.mbps).padStart(11)} ${f(r.read?.cpuPerGiB, 2).padStart(10)} ${f(r.getattrPerSec).padStart(11)}   ` +
        (r.ls ? `${r.ls.lines - 1} entries: cold ${r.ls.ms} ms, ${r.ls.fsGetattrs}, ${r.ls.fuseLookups ?? '-'}, ${r.ls.heads}` : '-') +
        (r.lsWarm ? `; warm ${r.lsWarm.ms} ms, ${r.lsWarm.fsGetattrs}, ${r.lsWarm.fuseLookups ?? '-'}, ${r.lsWarm.heads}` : ''),
    );
  }
  const f3 = results.get('memory/fuse3');
  const fn = results.get('memory/fuse-native');
  if (f3?.write && fn?.write) out.push(`memory backend write: fuse3 / fuse-native = ${(f3.write.mbps / fn.write.mbps).toFixed(2)}x (goal >= 2x)`);
  if (f3?.write && engineBest) out.push(`memory backend write: fuse3 / engine alone = ${(f3.write.mbps / engineBest.mbps).toFixed(2)}x (goal >= 0.8x)`);
  console.log(out.join('\n'));
  console.log(JSON.stringify({ engine: engineBest, results: [...results.values()] }));
}

await main();
