/**
 * The FUSE bindings compared on a real kernel mount: our libfuse3 addon (fuse3, also with the kernel's
 * writeback cache: fuse3-wb), fuse-native, and rclone mount of a crypt remote. Our filesystem
 * (EncryptedFileSystem + engine) runs in this process; rclone is a child process; the workload runs in
 * child processes (dd, perl, ls), as users would. Build first and run the compiled file so the
 * filesystem runs from dist/, not through tsx: `npm run bench:native` does both, with the node flags of
 * the launcher's shebang (bin/s3cryptfs.js), as the daemon runs.
 *
 *   npm run bench:native -- [--size MiB] [--s3-size MiB] [--entries N] [--clients N] [--stats N]
 *                           [--bindings fuse3,fuse3-wb,fuse3-noop,fuse-native,rclone] [--backends null,memory,s3] [--rounds N] [--no-warm]
 *
 * Per target and backend (null = bench/memory-store.ts keeping no bytes, the issue's "null backend":
 * writes only, ours only; memory = bench/memory-store.ts keeping the bytes in a pre-touched arena, and
 * rclone's own `memory` backend for rclone: no network or disk; s3 = s3rver in a child process on
 * loopback, a bucket each):
 *  - sequential write: dd bs=1M of a random file into the mount, including the upload at close;
 *    MB/s and CPU seconds of the daemon (this process, or rclone) per GiB;
 *  - sequential read of that file after dropping the kernel's page cache (root), same figures;
 *  - getattr/s: N clients (perl) stat() one file in a loop, kernel attribute caching off;
 *  - ls -l of a directory with --entries files (memory backend): time, FUSE lookups/getattrs that
 *    reached the filesystem, HEAD requests to the store; cold (fresh mount; rclone: after vfs/forget)
 *    and warm (the kernel's 1 s caches expired, the daemon's caches warm).
 * fuse3-noop (null backend only, when listed): fuse3 over a filesystem whose write() does nothing, the
 * ceiling that dd and the kernel's FUSE path alone leave for fuse3 / engine alone on this machine.
 * Also the engine's own write throughput (encrypt + store, no FUSE) in the same run, through the same
 * EngineWriter (with the native AEAD addon both seal off the event loop; S3CRYPTFS_NATIVE_AEAD=0 runs
 * both on node:crypto): the goal for fuse3 is >= 0.8x of it and >= 2x fuse-native on the null backend.
 * rclone runs with --vfs-cache-mode off (streaming, like ours) and its default chunk/buffer settings.
 * With several rounds, the best round per figure is reported (the machine may be shared).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';

import { nativeChunkRunPort } from '../native-bindings/aead/index.js';
import { loadBinding, type FsOperations, type MountHandle } from '../native-bindings/index.js';
import type { Fuse3MountHandle } from '../native-bindings/fuse3/index.js';
import { Engine, hostPreferredCipher } from '../src/engine/index.js';
import { deriveKeys, newBucketConfig, type CipherName } from '../src/format/index.js';
import { EncryptedFileSystem } from '../src/fs/filesystem.js';
import { startEmbeddedS3, type EmbeddedS3 } from '../src/store/embedded-s3.js';
import { ObjectStore } from '../src/store/store.js';
import { MemoryStore } from './memory-store.js';
import { warmGuestMemory } from './warm-memory.js';

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
    bindings: { type: 'string', default: 'fuse3,fuse3-wb,fuse-native,rclone' },
    backends: { type: 'string', default: 'null,memory,s3' },
    rounds: { type: 'string', default: '1' },
    'no-warm': { type: 'boolean', default: false },
    // What `init` picks on this host by default (AES-256-GCM with AES instructions).
    cipher: { type: 'string', default: hostPreferredCipher() },
  },
});
if (values.cipher !== 'aes-256-gcm' && values.cipher !== 'chacha20-poly1305') throw new Error(`--cipher: aes-256-gcm or chacha20-poly1305, not ${values.cipher}`);
const CIPHER = values.cipher as CipherName;
const SIZE = Math.round(Number(values.size) * MiB);
const S3_SIZE = Math.round(Number(values['s3-size']) * MiB);
const ENTRIES = Number(values.entries);
const CLIENTS = Number(values.clients);
const STATS = Number(values.stats);
const TARGETS = values.bindings!.split(',').filter(Boolean);
const BACKENDS = values.backends!.split(',').filter(Boolean) as ('null' | 'memory' | 's3')[];
const ROUNDS = Math.max(1, Number(values.rounds));
const WARM = !values['no-warm'];
const RCLONE = process.env.RCLONE ?? 'rclone';

async function sh(cmd: string, env?: NodeJS.ProcessEnv): Promise<string> {
  const { stdout } = await execFileP('bash', ['-c', cmd], { maxBuffer: 256 * MiB, env: env ? { ...process.env, ...env } : process.env });
  return stdout;
}

const q = JSON.stringify;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Backend {
  name: 'null' | 'memory' | 's3';
  engine(prefix: string): Promise<Engine>;
  heads(): number;
  /** rclone's configuration (RCLONE_CONFIG_* variables) of a crypt remote "crypt:" over this backend. */
  rcloneEnv: NodeJS.ProcessEnv;
  stop(): Promise<void>;
}

async function rcloneCryptEnv(dir: string, base: NodeJS.ProcessEnv): Promise<NodeJS.ProcessEnv> {
  const conf = path.join(dir, 'rclone.conf');
  await writeFile(conf, '');
  const obscure = async () => (await sh(`${RCLONE} obscure ${randomBytes(24).toString('hex')}`, { RCLONE_CONFIG: conf })).trim();
  return { RCLONE_CONFIG: conf, ...base, RCLONE_CONFIG_CRYPT_TYPE: 'crypt', RCLONE_CONFIG_CRYPT_PASSWORD: await obscure(), RCLONE_CONFIG_CRYPT_PASSWORD2: await obscure() };
}

async function memoryBackend(dir: string, discard = false): Promise<Backend> {
  // Room for every file the rounds write (engine alone + each of our targets), touched up front.
  const files = ROUNDS * (1 + TARGETS.filter((t) => t !== 'rclone').length);
  const store = discard
    ? new MemoryStore({ hashEtags: false, discard: true })
    : new MemoryStore({ hashEtags: false, arenaBytes: Math.ceil(files * SIZE * 1.01) + 64 * MiB });
  store.createBucket('bench');
  return {
    name: discard ? 'null' : 'memory',
    engine: (prefix) => openEngine(store, prefix),
    heads: () => store.requests.HeadObject ?? 0,
    rcloneEnv: await rcloneCryptEnv(dir, { RCLONE_CONFIG_BENCHMEM_TYPE: 'memory', RCLONE_CONFIG_CRYPT_REMOTE: 'benchmem:bench' }),
    stop: async () => {},
  };
}

async function s3Backend(dir: string): Promise<Backend> {
  const server: EmbeddedS3 = await startEmbeddedS3({ dir: path.join(dir, 's3'), buckets: ['bench', 'rclone'] });
  const store = new ObjectStore({ endpoint: server.endpoint, region: 'us-east-1', credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey } });
  return {
    name: 's3',
    engine: (prefix) => openEngine(store, prefix),
    heads: () => store.stats.requests.HeadObject ?? 0,
    rcloneEnv: await rcloneCryptEnv(dir, {
      RCLONE_CONFIG_BENCHS3_TYPE: 's3',
      RCLONE_CONFIG_BENCHS3_PROVIDER: 'Other',
      RCLONE_CONFIG_BENCHS3_ENDPOINT: server.endpoint,
      RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID: server.accessKeyId,
      RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY: server.secretAccessKey,
      RCLONE_CONFIG_BENCHS3_REGION: 'us-east-1',
      RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE: 'true',
      RCLONE_CONFIG_CRYPT_REMOTE: 'benchs3:rclone',
    }),
    stop: async () => {
      store.destroy();
      await server.stop();
    },
  };
}

async function openEngine(store: MemoryStore | ObjectStore, prefix: string): Promise<Engine> {
  const keys = deriveKeys(randomBytes(32));
  const config = newBucketConfig(keys, { cipher: CIPHER, names: 'aes-siv' }); // default chunk size, as `init` makes it
  await Engine.init(store, 'bench', prefix, config);
  return Engine.open({ store, bucket: 'bench', prefix, keys, config });
}

/** A mounted target: one of our bindings (in this process) or rclone (a child process). */
interface Mounted {
  mnt: string;
  /** CPU seconds (user + system) the daemon used so far. */
  cpu(): Promise<number>;
  /** getattr calls that reached the filesystem, FUSE lookups (fuse3), requests to the store. */
  counters(): { getattrs?: number; lookups?: number; heads?: number };
  /** Make the daemon's own listing/attribute caches cold (rclone; ours: a fresh mount is cold). */
  forget?(): Promise<void>;
  close(): Promise<void>;
}

let mounts = 0;
async function newMountpoint(dir: string): Promise<string> {
  const mnt = path.join(dir, `mnt${mounts++}`);
  await mkdir(mnt);
  return mnt;
}

const processCpu = async () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

async function mountOurs(dir: string, target: string, engine: Engine, backend: Backend, opts: { attrTimeout?: number } = {}): Promise<Mounted> {
  const mnt = await newMountpoint(dir);
  const fs = await EncryptedFileSystem.create(engine, { spoolDir: dir });
  let getattrs = 0;
  const counted: FsOperations = Object.create(fs) as FsOperations;
  counted.getattr = (p: string) => {
    getattrs++;
    return fs.getattr(p);
  };
  if (target === 'fuse3-noop') counted.write = async (_p: string, _fh: number, data: Uint8Array) => data.length;
  const binding = target === 'fuse3-wb' || target === 'fuse3-noop' ? 'fuse3' : target;
  const b = await loadBinding(binding);
  const handle: MountHandle = await b.mount(mnt, counted, {
    fsName: 'bench',
    kernelAttrTimeoutSec: opts.attrTimeout,
    ...(binding === 'fuse3' ? { writeback: target === 'fuse3-wb' } : {}),
  });
  return {
    mnt,
    cpu: processCpu,
    counters: () => ({
      getattrs,
      lookups: binding === 'fuse3' ? (handle as Fuse3MountHandle).stats().requests.lookup : undefined,
      heads: backend.heads(),
    }),
    async close() {
      await fs.flushAll();
      await handle.unmount().catch(() => handle.unmount({ lazy: true }));
      await fs.close();
      await rm(mnt, { recursive: true, force: true }).catch(() => {});
    },
  };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function isMounted(mnt: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((l) => l.split(' ')[4] === mnt);
}

/** `rclone mount crypt:` over the backend; --rc on a loopback port so that vfs/forget can empty its caches. */
async function mountRclone(dir: string, backend: Backend, opts: { attrTimeout?: number } = {}): Promise<Mounted> {
  const mnt = await newMountpoint(dir);
  const port = await freePort();
  const rc = `127.0.0.1:${port}`;
  // AWS_* variables would reach rclone's AWS SDK: its configuration is RCLONE_CONFIG_* only.
  const env = { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_'))), ...backend.rcloneEnv };
  const args = ['mount', 'crypt:', mnt, '--vfs-cache-mode', 'off', '--rc', '--rc-no-auth', '--rc-addr', rc, '--log-level', 'ERROR'];
  if (opts.attrTimeout !== undefined) args.push('--attr-timeout', `${opts.attrTimeout}s`);
  const child: ChildProcess = spawn(RCLONE, args, { env, stdio: ['ignore', 'ignore', 'inherit'] });
  let exited: number | null | undefined;
  const exit = new Promise<void>((r) => child.once('exit', (code) => { exited = code; r(); }));
  const deadline = Date.now() + 30_000;
  try {
    while (!(await isMounted(mnt))) {
      if (exited !== undefined) throw new Error(`rclone mount exited with ${exited}`);
      if (Date.now() > deadline) throw new Error('rclone mount did not come up within 30 s');
      await sleep(100);
    }
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  const cpu = async () => {
    const f = (await readFile(`/proc/${child.pid}/stat`, 'utf8')).split(') ')[1].split(' ');
    return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (100/s on Linux)
  };
  return {
    mnt,
    cpu,
    counters: () => ({}),
    forget: async () => void (await sh(`${RCLONE} rc vfs/forget --url http://${rc}/`, backend.rcloneEnv)),
    async close() {
      if (await isMounted(mnt)) await sh(`fusermount3 -u ${q(mnt)} || fusermount3 -uz ${q(mnt)}`).catch((e) => console.error(String(e)));
      if (exited === undefined) {
        const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
        child.kill('SIGTERM');
        await exit;
        clearTimeout(timer);
      }
      await rm(mnt, { recursive: true, force: true }).catch(() => {});
    },
  };
}

interface Rate {
  mbps: number;
  cpuPerGiB: number;
}

async function timed(bytes: number, cpu: () => Promise<number>, fn: () => Promise<unknown>): Promise<Rate> {
  const c0 = await cpu();
  const t0 = process.hrtime.bigint();
  await fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  return { mbps: bytes / 1e6 / s, cpuPerGiB: ((await cpu()) - c0) / (bytes / GiB) };
}

async function dropCaches(): Promise<boolean> {
  try {
    await sh('sync; echo 3 > /proc/sys/vm/drop_caches');
    return true;
  } catch {
    return false;
  }
}

/** Every write reads its source from the page cache (a cache drop before a read also drops it). */
async function warmSource(src: string): Promise<void> {
  await sh(`cat ${q(src)} > /dev/null`);
}

/** Before every target's write and read alike: 2x the file (bench/warm-memory.ts says why). */
async function warmMemory(size: number): Promise<void> {
  if (WARM) await warmGuestMemory(2 * size);
}

/**
 * The engine alone: encrypt and store `size` bytes in 1 MiB writes (no FUSE), fed from memory (the
 * source is read before timing), so this is the engine's own ceiling.
 */
async function engineWrite(engine: Engine, src: string, size: number): Promise<Rate> {
  const data = (await readFile(src)).subarray(0, size);
  return await timed(size, processCpu, async () => {
    const w = engine.createWriter('engine-baseline.bin');
    for (let off = 0; off < size; off += MiB) await w.write(data.subarray(off, Math.min(size, off + MiB)));
    await w.close();
  });
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
  target: string;
  write?: Rate;
  read?: Rate;
  getattrPerSec?: number;
  /** Cold: a freshly mounted directory (rclone: after vfs/forget); warm: again once the kernel's caches expired. */
  ls?: LsResult;
  lsWarm?: LsResult;
}

interface LsResult {
  ms: number;
  lines: number;
  fsGetattrs?: number;
  fuseLookups?: number;
  heads?: number;
}

const best = <T>(a: T | undefined, b: T, better: (x: T, y: T) => boolean): T => (a === undefined || better(b, a) ? b : a);

async function lsOnce(m: Mounted, dir: string): Promise<LsResult> {
  const c0 = m.counters();
  const t0 = Date.now();
  const lines = Number((await sh(`ls -l ${q(dir)} | wc -l`)).trim());
  const ms = Date.now() - t0;
  const c1 = m.counters();
  const d = (k: 'getattrs' | 'lookups' | 'heads') => (c0[k] === undefined || c1[k] === undefined ? undefined : c1[k]! - c0[k]!);
  return { ms, lines, fsGetattrs: d('getattrs'), fuseLookups: d('lookups'), heads: d('heads') };
}

async function main(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-bench-native-'));
  const results = new Map<string, Result>();
  const engineRates = new Map<string, Rate>();
  let prefixN = 0;
  try {
    const maxSize = Math.max(SIZE, BACKENDS.includes('s3') ? S3_SIZE : 0);
    const src = path.join(dir, 'src.bin');
    await sh(`head -c ${maxSize} /dev/urandom > ${q(src)}`);
    const canDrop = await dropCaches();
    if (!canDrop) console.error('note: cannot drop the page cache (not root): reads are remounted instead');

    for (const backendName of BACKENDS) {
      const backend = backendName === 's3' ? await s3Backend(dir) : await memoryBackend(dir, backendName === 'null');
      const size = backendName === 's3' ? S3_SIZE : SIZE;
      // The null store keeps no bytes: it measures writes only (rclone has no such backend).
      const targets = backendName === 'null' ? TARGETS.filter((t) => t !== 'rclone') : TARGETS.filter((t) => t !== 'fuse3-noop');
      const mountTarget = async (target: string, engine: Engine | null, opts: { attrTimeout?: number } = {}) =>
        target === 'rclone' ? mountRclone(dir, backend, opts) : mountOurs(dir, target, engine!, backend, opts);
      try {
        for (let round = 0; round < ROUNDS; round++) {
          if (backendName !== 's3') {
            const e = await backend.engine(`p${prefixN++}`);
            await warmSource(src);
            await warmMemory(size);
            const rate = await engineWrite(e, src, size);
            engineRates.set(backendName, best(engineRates.get(backendName), rate, (x, y) => x.mbps > y.mbps));
            console.error(`${backendName}: engine alone round ${round + 1}: ${rate.mbps.toFixed(0)} MB/s`);
          }
          for (const target of targets) {
            const key = `${backendName}/${target}`;
            const r: Result = results.get(key) ?? { backend: backendName, target };
            results.set(key, r);
            const engine = target === 'rclone' ? null : await backend.engine(`p${prefixN++}`);
            let m = await mountTarget(target, engine);
            try {
              const file = `seq${round}.bin`;
              await warmSource(src);
              await warmMemory(size);
              r.write = best(r.write, await timed(size, m.cpu, () => sh(`dd if=${q(src)} of=${q(path.join(m.mnt, file))} bs=1M count=${size / MiB} 2>/dev/null`)), (x, y) => x.mbps > y.mbps);
              if (backendName === 'null') {
                console.error(`${key} round ${round + 1}: write ${r.write.mbps.toFixed(0)} MB/s`);
                continue;
              }
              if (!canDrop && target !== 'rclone') {
                await m.close();
                m = await mountTarget(target, engine);
              } else {
                await dropCaches();
              }
              await warmMemory(size);
              const mm = m;
              r.read = best(r.read, await timed(size, mm.cpu, () => sh(`dd if=${q(path.join(mm.mnt, file))} of=/dev/null bs=1M 2>/dev/null`)), (x, y) => x.mbps > y.mbps);
            } finally {
              await m.close();
            }
            // getattr/s: the binding's cost per request; the kernel writeback cache plays no part.
            if (backendName === 'memory' && target !== 'fuse3-wb') {
              const g = await mountTarget(target, engine, { attrTimeout: 0 });
              try {
                r.getattrPerSec = best(r.getattrPerSec, await getattrRate(g.mnt), (x, y) => x > y);
              } finally {
                await g.close();
              }
            }
            console.error(`${key} round ${round + 1}: write ${r.write.mbps.toFixed(0)} MB/s, read ${r.read!.mbps.toFixed(0)} MB/s${r.getattrPerSec ? `, getattr ${r.getattrPerSec.toFixed(0)}/s` : ''}`);
          }
        }

        if (backendName === 'memory' && ENTRIES > 0) {
          const engine = await backend.engine(`p${prefixN++}`);
          for (let i = 0; i < ENTRIES; i += 500) {
            await Promise.all(Array.from({ length: Math.min(500, ENTRIES - i) }, (_, k) =>
              engine.putBuffer(`many/file-${String(i + k).padStart(6, '0')}`, Buffer.from(`entry ${i + k}\n`))));
          }
          for (const target of TARGETS) {
            if (target === 'fuse3-wb' || target === 'fuse3-noop') continue;
            const r = results.get(`${backendName}/${target}`)!;
            const m = await mountTarget(target, engine);
            try {
              const many = path.join(m.mnt, 'many');
              if (target === 'rclone') {
                // rclone's memory remote lives in its process: fill it through the mount, then forget.
                await sh(`mkdir ${q(many)} && cd ${q(many)} && for i in $(seq -w 0 ${ENTRIES - 1}); do echo "entry $i" > file-$i; done`);
                await m.forget!();
              }
              await sh(`stat ${q(many)} > /dev/null`);
              r.ls = await lsOnce(m, many);
              await sleep(1500); // the kernel's 1 s entry/attribute caches expire
              r.lsWarm = await lsOnce(m, many);
            } finally {
              await m.close();
            }
          }
        }
      } finally {
        await backend.stop();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const out: string[] = [];
  out.push(`bench:native  size ${SIZE / MiB} MiB (null, memory), ${S3_SIZE / MiB} MiB (s3rver), ${ROUNDS} round(s); null = in-memory store that keeps no bytes (writes only); fuse3-wb = fuse3 with the kernel writeback cache; rclone --vfs-cache-mode off`);
  // The engine alone and our mounts use the same EngineWriter, so the same sealing path.
  out.push(`cipher: ${CIPHER} (--cipher)`);
  out.push(`sealing: ${nativeChunkRunPort() ? 'native AEAD addon, off the event loop' : 'node:crypto on the event loop (addon not built, or S3CRYPTFS_NATIVE_AEAD=0)'}`);
  for (const [be, e] of engineRates) out.push(`engine alone (encrypt + ${be} store, 1 MiB writes from memory): ${e.mbps.toFixed(0)} MB/s, ${e.cpuPerGiB.toFixed(2)} CPU s/GiB`);
  out.push('backend  target       write MB/s  CPU s/GiB   read MB/s  CPU s/GiB   getattr/s   ls -l (ms, fs getattrs, FUSE lookups, HEADs)');
  const f = (x: number | undefined, d = 0) => (x === undefined ? '-' : x.toFixed(d));
  const ls = (l: LsResult) => `${l.ms} ms, ${f(l.fsGetattrs)}, ${f(l.fuseLookups)}, ${f(l.heads)}`;
  for (const r of results.values()) {
    out.push(
      `${r.backend.padEnd(8)} ${r.target.padEnd(12)} ${f(r.write?.mbps).padStart(10)} ${f(r.write?.cpuPerGiB, 2).padStart(10)} ${f(r.read?.mbps).padStart(11)} ${f(r.read?.cpuPerGiB, 2).padStart(10)} ${f(r.getattrPerSec).padStart(11)}   ` +
        (r.ls ? `${r.ls.lines - 1} entries: cold ${ls(r.ls)}` : '-') + (r.lsWarm ? `; warm ${ls(r.lsWarm)}` : ''),
    );
  }
  const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}x` : '-');
  for (const be of BACKENDS) {
    const f3 = results.get(`${be}/fuse3`);
    const wb = results.get(`${be}/fuse3-wb`);
    const fn = results.get(`${be}/fuse-native`);
    const rc = results.get(`${be}/rclone`);
    if (be === 'null') {
      out.push(`null: fuse3 / fuse-native write ${ratio(f3?.write?.mbps, fn?.write?.mbps)} (goal >= 2x); fuse3-wb / fuse3 write ${ratio(wb?.write?.mbps, f3?.write?.mbps)}`);
      out.push(`null: fuse3 write / engine alone = ${ratio(f3?.write?.mbps, engineRates.get('null')?.mbps)} (goal >= 0.8x)`);
      const noop = results.get('null/fuse3-noop');
      if (noop?.write) out.push(`null: fuse3-noop (dd + FUSE, a write() that does nothing) / engine alone = ${ratio(noop.write.mbps, engineRates.get('null')?.mbps)}: the ceiling of fuse3 / engine alone on this machine`);
      continue;
    }
    out.push(`${be}: fuse3 / fuse-native write ${ratio(f3?.write?.mbps, fn?.write?.mbps)}, read ${ratio(f3?.read?.mbps, fn?.read?.mbps)}` +
      (be === 'memory' ? `, getattr/s ${ratio(f3?.getattrPerSec, fn?.getattrPerSec)}` : '') +
      `; fuse3 / rclone write ${ratio(f3?.write?.mbps, rc?.write?.mbps)}, read ${ratio(f3?.read?.mbps, rc?.read?.mbps)}; fuse3-wb / fuse3 write ${ratio(wb?.write?.mbps, f3?.write?.mbps)}`);
    if (be === 'memory') out.push(`memory: fuse3 write / engine alone = ${ratio(f3?.write?.mbps, engineRates.get('memory')?.mbps)}`);
  }
  console.log(out.join('\n'));
  console.log(JSON.stringify({ engine: Object.fromEntries(engineRates), results: [...results.values()] }));
}

await main();
