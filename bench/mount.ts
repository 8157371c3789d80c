/**
 * Mount benchmark: a real kernel mount (`s3cryptfs mount`, a child process) over an S3 endpoint,
 * side by side with `rclone mount` of a crypt remote over the same S3 endpoint (another bucket).
 * By default everything runs locally: an embedded s3rver (a child process), fresh buckets and keys.
 *
 *   npm run bench:mount -- [--size-mib 1024] [--big-mib 4096] [--ls-files 10000] [--rsync-files 5000]
 *                          [--fuse fuse3,fuse-native] [--rclone-cache off|writes] [--no-rclone] [--classic] [--warm-mib N] [--keep]
 *
 * --fuse takes a comma-separated list of bindings (each one is a column; "default" = the CLI's default).
 * rclone (/usr/bin/rclone, or $RCLONE) is configured only through RCLONE_CONFIG_* environment variables
 * and an empty temporary rclone.conf: an s3 remote (provider Other, path style) and a crypt remote over
 * it whose password is obscured with `rclone obscure`. `--rclone-cache` picks --vfs-cache-mode; with
 * "off" (the default) a failed cp retries once on a fresh mount with "writes" and the table says which.
 *
 * Workloads per mount (each from a child process; the daemon's CPU = utime+stime from /proc/PID/stat):
 *   write      cp of one random file (sequential)                         MB/s, daemon CPU s/GiB
 *   read       cat of that file after a remount (cold)                    MB/s, daemon CPU s/GiB
 *   rand 4k    fio randread bs=4k direct=1 psync, 10 s, on that file      IOPS, mean and p99 latency
 *   ls -l      of a directory of --ls-files 1-byte files, after a remount  seconds, and the backend
 *              requests it caused by kind (s3cryptfs: its Prometheus metrics; rclone: a counting
 *              proxy in front of the embedded s3rver, so not with --bucket)
 *   rsync      rsync -rt of --rsync-files small files (1..8 KiB) in 50 directories into the mount
 *   peak RSS   VmHWM of the daemon on a fresh mount after cp of a --big-mib file ("read": VmHWM
 *              of the mount that ran read, rand 4k, ls -l and rsync, at its end)
 *   ceiling    s3rver itself through the plain client, same run: one streaming GET, 4 MiB GETs x4,
 *              128 KiB GETs one at a time (what bounds read MB/s and rand 4k IOPS on this machine)
 *
 * Before each measured cp and cat (both mounts alike): `sync`, then --warm-mib of zeros written to and
 * removed from /dev/shm, immediately before the measurement. On this VM, the first touch of guest
 * memory the hypervisor has not backed yet costs ~1 CPU s/GiB of kernel time, charged to whichever
 * process copies into it: for a cold read, the daemon's write to /dev/fuse that fills the kernel's
 * page cache (perf: memcpy in fuse_copy_do 45% of the daemon's samples against 8% on warm memory).
 * --warm-mib 0 measures without it.
 *
 * The daemon runs dist/ when it is built and newer than the sources (`npm run build`), else tsx.
 *
 * --classic adds the older s3cryptfs-only workloads (small creates, find -ls cold/warm, 4 KiB rewrite, rm -rf).
 *
 * Against a real endpoint: set AWS_ENDPOINT_URL (or leave it unset for AWS), credentials as usual,
 * and pass --bucket NAME (an existing, empty bucket or a prefix: s3://NAME/PREFIX is initialised);
 * rclone is then skipped unless --rclone-bucket NAME names a second bucket.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { startEmbeddedS3 } from '../src/store/embedded-s3.js';
import { ObjectStore, type StoreOptions } from '../src/store/store.js';
import { launcherNodeFlags } from './launcher.js';
import { warmGuestMemory } from './warm-memory.js';

const { values: opts } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '1024' },
    'big-mib': { type: 'string', default: '4096' },
    'ls-files': { type: 'string', default: '10000' },
    'rsync-files': { type: 'string', default: '5000' },
    files: { type: 'string', default: '1000' },
    fuse: { type: 'string', default: 'default' },
    'rclone-cache': { type: 'string', default: 'off' },
    'no-rclone': { type: 'boolean', default: false },
    'warm-mib': { type: 'string' },
    'rclone-bucket': { type: 'string' },
    classic: { type: 'boolean', default: false },
    bucket: { type: 'string' },
    keep: { type: 'boolean', default: false },
  },
});
const SIZE_MIB = Number(opts['size-mib']);
const BIG_MIB = Number(opts['big-mib']);
const LS_FILES = Number(opts['ls-files']);
const RSYNC_FILES = Number(opts['rsync-files']);
const FILES = Number(opts.files);
const BINDINGS = opts.fuse!.split(',').map((s) => s.trim()).filter(Boolean);
const RCLONE = process.env.RCLONE ?? '/usr/bin/rclone';
const CLI = fileURLToPath(new URL('../bin/s3cryptfs.js', import.meta.url));
const q = JSON.stringify;
const GiB = 2 ** 30;
const WARM_MIB = Number(opts['warm-mib'] ?? 2 * SIZE_MIB);

function sh(cmd: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('/bin/bash', ['-c', cmd], { env: { ...process.env, ...env }, maxBuffer: 1 << 28 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd}: ${stderr || err.message}`));
      else resolve(stdout);
    });
  });
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** utime+stime of a process in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(await sh('getconf CLK_TCK'));
  return (Number(fields[11]) + Number(fields[12])) / ticks; // fields 14 and 15 of stat(5)
}

async function vmHWM(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const m = /VmHWM:\s+(\d+) kB/.exec(status);
  return m ? Number(m[1]) * 1024 : NaN;
}

async function isMounted(dir: string): Promise<boolean> {
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  return mounts.split('\n').some((l) => l.split(' ')[1] === dir);
}

/**
 * The backend's own ceiling, measured with the plain client (no FUSE, no decryption) on the
 * --size-mib object: one streaming GET of it (how rclone reads a file), 4 MiB ranged GETs 4 at a
 * time (how our readahead reads), and 128 KiB ranged GETs one at a time for 3 s (one chunk per
 * request: the floor under fio's O_DIRECT 4k reads, which each need one chunk).
 */
async function rawGets(storeOpts: StoreOptions, bucket: string): Promise<string> {
  const store = new ObjectStore(storeOpts);
  try {
    const objects: { key: string; size: number }[] = [];
    let token: string | undefined;
    do {
      const page = await store.list(bucket, { continuationToken: token });
      objects.push(...page.objects);
      token = page.nextContinuationToken;
    } while (token);
    const want = SIZE_MIB * 2 ** 20;
    const obj = objects.find((o) => o.size >= want && o.size < want * 1.01 + 4096);
    if (!obj) return `no ${SIZE_MIB} MiB object found`;
    const measure = async (fn: () => Promise<void>) => {
      const c0 = process.cpuUsage();
      const s = await timed(fn);
      const c = process.cpuUsage(c0);
      return { s, cpuPerGiB: (c.user + c.system) / 1e6 / (obj.size / GiB) };
    };
    const one = await measure(async () => { const { stream } = await store.getStream(bucket, obj.key); for await (const _ of stream) { /* drain */ } });
    let next = 0;
    const par = await measure(() => Promise.all(Array.from({ length: 4 }, async () => {
      while (next < obj.size) {
        const at = next;
        next += 4 * 2 ** 20;
        await store.getRange(bucket, obj.key, at, Math.min(obj.size, at + 4 * 2 ** 20));
      }
    })).then(() => {}));
    let n = 0;
    const deadline = Date.now() + 3000;
    const small = await timed(async () => {
      while (Date.now() < deadline) {
        const at = Math.floor(Math.random() * Math.floor((obj.size - 131_088) / 131_088)) * 131_088;
        await store.getRange(bucket, obj.key, at, at + 131_088);
        n++;
      }
    });
    const mbps = (x: { s: number }) => (obj.size / 1e6 / x.s).toFixed(1);
    return `one streaming GET ${mbps(one)} MB/s (client CPU ${one.cpuPerGiB.toFixed(2)} s/GiB); ` +
      `4 MiB ranged GETs x4 ${mbps(par)} MB/s (client CPU ${par.cpuPerGiB.toFixed(2)} s/GiB); ` +
      `128 KiB ranged GETs one at a time ${(n / small).toFixed(0)}/s`;
  } finally {
    store.destroy();
  }
}

/** True when dist/src/cli/main.js exists and no .ts under src/ or native-bindings/ is newer. */
async function distIsFresh(): Promise<boolean> {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const built = await stat(path.join(root, 'dist/src/cli/main.js')).catch(() => null);
  if (!built) return false;
  const newest = await sh(`find ${q(path.join(root, 'src'))} ${q(path.join(root, 'native-bindings'))} -name '*.ts' -newer ${q(path.join(root, 'dist/src/cli/main.js'))} -not -path '*/node_modules/*' | head -1`);
  return newest.trim() === '';
}

const work = await mkdtemp(path.join(tmpdir(), 's3cryptfs-bench-'));
const cleanups: (() => Promise<unknown>)[] = [async () => { if (!opts.keep) await rm(work, { recursive: true, force: true }); }];

/** One mounted filesystem under test. */
interface Target {
  name: string;
  mnt: string;
  mount(): Promise<void>;
  unmount(): Promise<void>;
  pid(): number;
  note?: string;
  /** Backend requests so far by S3 operation (undefined when not counted). */
  requests?(): Promise<Record<string, number>>;
}

function ourTarget(binding: string, env: NodeJS.ProcessEnv, location: string, mnt: string): Target {
  let child: ChildProcess | null = null;
  let admin = '';
  return {
    name: `s3cryptfs ${binding}`,
    mnt,
    pid: () => child!.pid!,
    requests: () => scrapeRequests(admin),
    async mount() {
      const port = await freePort();
      admin = `http://127.0.0.1:${port}`;
      const args = [CLI, 'mount', location, mnt, ...(binding === 'default' ? [] : ['--fuse', binding]), '--admin-listen', `127.0.0.1:${port}`];
      const c = spawn(process.execPath, [...launcherNodeFlags(), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
      child = c;
      await new Promise<void>((resolve, reject) => {
        let out = '';
        c.stdout!.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('mounted ')) resolve();
        });
        c.once('exit', (code) => reject(new Error(`mount exited with ${code}`)));
      });
    },
    async unmount() {
      const c = child;
      if (!c) return;
      child = null;
      if (c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    },
  };
}

function rcloneTarget(env: NodeJS.ProcessEnv, mnt: string, cacheMode: { mode: string }, counter?: CountingProxy): Target {
  let child: ChildProcess | null = null;
  const t: Target = {
    name: 'rclone crypt',
    mnt,
    pid: () => child!.pid!,
    requests: counter ? async () => ({ ...counter.counts }) : undefined,
    async mount() {
      // AWS_* (AWS_CA_BUNDLE in particular) would reach rclone's AWS SDK: its configuration is RCLONE_CONFIG_* only.
      const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AWS_')));
      const c = spawn(RCLONE, ['mount', 'crypt:', mnt, '--vfs-cache-mode', cacheMode.mode, '--cache-dir', path.join(path.dirname(mnt), 'rclone-cache')], {
        env: { ...base, ...env },
        stdio: ['ignore', 'inherit', 'inherit'],
      });
      child = c;
      let exited: number | null | undefined;
      c.once('exit', (code) => { exited = code; });
      const deadline = Date.now() + 30_000;
      while (!(await isMounted(mnt))) {
        if (exited !== undefined) throw new Error(`rclone mount exited with ${exited}`);
        if (Date.now() > deadline) throw new Error('rclone mount did not come up within 30 s');
        await sleep(100);
      }
      t.note = `--vfs-cache-mode ${cacheMode.mode}`;
    },
    async unmount() {
      const c = child;
      child = null;
      if (await isMounted(mnt)) await sh(`fusermount -u ${q(mnt)} || fusermount -uz ${q(mnt)}`).catch((e) => console.error(String(e)));
      if (c && c.exitCode === null && c.signalCode === null) {
        const exited = new Promise((r) => c.once('exit', r));
        const timer = setTimeout(() => c.kill('SIGKILL'), 10_000);
        c.kill('SIGTERM');
        await exited;
        clearTimeout(timer);
      }
    },
  };
  return t;
}

/** A port free right now (the daemon serves its metrics there). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = http.createServer().listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** The daemon's backend requests by operation, from its Prometheus metrics. */
async function scrapeRequests(admin: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${admin}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^s3cryptfs_mount_store_requests_total\{operation="(\w+)"\} ([0-9.e+-]+)$/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

interface CountingProxy { endpoint: string; counts: Record<string, number>; close(): Promise<void> }

/** A loopback HTTP proxy in front of s3rver counting requests by S3 operation (for rclone's). */
async function countingProxy(target: string): Promise<CountingProxy> {
  const to = new URL(target);
  const counts: Record<string, number> = {};
  const kind = (req: http.IncomingMessage): string => {
    const u = new URL(req.url ?? '/', 'http://x');
    const hasKey = u.pathname.split('/').filter(Boolean).length > 1;
    if (req.method === 'HEAD') return hasKey ? 'HeadObject' : 'HeadBucket';
    if (req.method === 'GET') return !hasKey ? (u.searchParams.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects') : 'GetObject';
    if (req.method === 'PUT') return req.headers['x-amz-copy-source'] ? 'CopyObject' : u.searchParams.has('uploadId') ? 'UploadPart' : 'PutObject';
    if (req.method === 'DELETE') return 'DeleteObject';
    return `${req.method}`;
  };
  const server = http.createServer((req, res) => {
    const k = kind(req);
    counts[k] = (counts[k] ?? 0) + 1;
    const up = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { endpoint: `http://127.0.0.1:${port}`, counts, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

const requestDelta = (a: Record<string, number>, b: Record<string, number>): Record<string, number> =>
  Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - (a[k] ?? 0)] as const).filter(([, v]) => v > 0));

interface Result {
  lsReq?: Record<string, number>;
  writeMBps?: number; writeCpu?: number;
  readMBps?: number; readCpu?: number;
  iops?: number; latMeanUs?: number; latP99Us?: number; fioNote?: string;
  lsSec?: number; rsyncSec?: number; rssBytes?: number; rssReadBytes?: number;
  errors: string[];
}

/** Flushes dirty pages, then lets the hypervisor back guest memory right before a measurement (see the header). */
async function settle(): Promise<void> {
  await sh('sync'); // first: a long sync lets the warmed memory go cold again (see warm-memory.ts)
  await warmGuestMemory(WARM_MIB * 2 ** 20);
}

async function measureStream(t: Target, cmd: string): Promise<{ mbps: number; cpuPerGiB: number }> {
  await settle();
  const pid = t.pid();
  const c0 = await cpuSeconds(pid);
  const s = await timed(() => sh(cmd));
  const c1 = await cpuSeconds(pid);
  return { mbps: (SIZE_MIB * 2 ** 20) / 1e6 / s, cpuPerGiB: (c1 - c0) / ((SIZE_MIB * 2 ** 20) / GiB) };
}

async function fio(file: string, direct: boolean): Promise<{ iops: number; mean: number; p99: number }> {
  const out = await sh(`fio --name=rand4k --filename=${q(file)} --rw=randread --bs=4k --direct=${direct ? 1 : 0} --time_based --runtime=10 --ioengine=psync --size=${SIZE_MIB}M --output-format=json`);
  const job = JSON.parse(out.slice(out.indexOf('{'))).jobs[0].read;
  if (job.io_bytes === 0) throw new Error('fio read nothing');
  const pct = job.clat_ns.percentile ?? {};
  return { iops: job.iops, mean: job.clat_ns.mean / 1000, p99: (pct['99.000000'] ?? NaN) / 1000 };
}

async function runSuite(t: Target, src: string, smallSrc: string, rcloneCache?: { mode: string }): Promise<Result> {
  const r: Result = { errors: [] };
  const big = path.join(t.mnt, 'big.bin');
  const step = async (name: string, fn: () => Promise<void>) => {
    try { await fn(); } catch (e) { r.errors.push(`${name}: ${(e as Error).message.split('\n').slice(0, 3).join(' | ')}`); }
  };
  await t.mount();
  try {
    await step('write', async () => {
      try {
        const m = await measureStream(t, `cp ${q(src)} ${q(big)}`);
        r.writeMBps = m.mbps; r.writeCpu = m.cpuPerGiB;
      } catch (e) {
        if (!rcloneCache || rcloneCache.mode !== 'off') throw e;
        r.errors.push(`write with --vfs-cache-mode off failed (${(e as Error).message.split('\n')[0]}); retrying with writes`);
        await t.unmount();
        rcloneCache.mode = 'writes';
        await t.mount();
        await sh(`rm -f ${q(big)}`).catch(() => {});
        const m = await measureStream(t, `cp ${q(src)} ${q(big)}`);
        r.writeMBps = m.mbps; r.writeCpu = m.cpuPerGiB;
      }
    });
    await step('mkdir ls', () => sh(`mkdir -p ${q(path.join(t.mnt, 'ls'))} && cd ${q(path.join(t.mnt, 'ls'))} && for i in $(seq -f '%05g' 1 ${LS_FILES}); do printf x > f$i; done && n=$(ls | wc -l) && [ $n = ${LS_FILES} ] || { echo "created $n of ${LS_FILES}" >&2; exit 1; }`).then(() => {}));
    await t.unmount();
    await t.mount();
    await step('read', async () => {
      const m = await measureStream(t, `cat ${q(big)} > /dev/null`);
      r.readMBps = m.mbps; r.readCpu = m.cpuPerGiB;
    });
    await step('rand 4k', async () => {
      let res;
      try { res = await fio(big, true); } catch (e) {
        r.fioNote = `direct=1 failed (${(e as Error).message.split('\n')[0].slice(-120)}), direct=0`;
        res = await fio(big, false);
      }
      r.iops = res.iops; r.latMeanUs = res.mean; r.latP99Us = res.p99;
    });
    await step('ls -l', async () => {
      let lines = 0;
      const before = await t.requests?.();
      r.lsSec = await timed(async () => { lines = (await sh(`ls -l ${q(path.join(t.mnt, 'ls'))}`)).split('\n').length - 2; });
      if (before) r.lsReq = requestDelta(before, (await t.requests!())!);
      if (lines !== LS_FILES) throw new Error(`ls -l listed ${lines} entries, expected ${LS_FILES}`);
    });
    await step('rsync', async () => {
      r.rsyncSec = await timed(() => sh(`rsync -rt ${q(smallSrc + '/')} ${q(path.join(t.mnt, 'rs') + '/')}`));
    });
    await step('peak RSS (read)', async () => { r.rssReadBytes = await vmHWM(t.pid()); });
    await t.unmount();
    await t.mount();
    await step('peak RSS', async () => {
      await sh(`head -c ${BIG_MIB}M /dev/zero > ${q(path.join(t.mnt, 'huge.bin'))}`);
      r.rssBytes = await vmHWM(t.pid());
    });
  } finally {
    await t.unmount();
  }
  return r;
}

async function classicSuite(t: Target, src: string): Promise<[string, string][]> {
  const rows: [string, string][] = [];
  const mnt = t.mnt;
  const mbps = (bytes: number, s: number) => `${(bytes / 1e6 / s).toFixed(1)} MB/s (${s.toFixed(2)} s)`;
  const rate = (n: number, s: number, what: string) => `${(n / s).toFixed(0)} ${what}/s (${s.toFixed(2)} s)`;
  await t.mount();
  try {
    rows.push(['write', mbps(SIZE_MIB * 2 ** 20, await timed(() => sh(`cp ${q(src)} ${q(path.join(mnt, 'big.bin'))}`)))]);
    const dirs = 10;
    rows.push(['small', rate(FILES, await timed(() => sh(`cd ${q(mnt)} && for d in $(seq 1 ${dirs}); do mkdir -p s/d$d; for f in $(seq 1 ${Math.ceil(FILES / dirs)}); do head -c 4096 /dev/urandom > s/d$d/f$f; done; done`)), 'files')]);
    await t.unmount();
    await t.mount();
    rows.push(['read (cold)', mbps(SIZE_MIB * 2 ** 20, await timed(() => sh(`cat ${q(path.join(mnt, 'big.bin'))} > /dev/null`)))]);
    rows.push(['stat-cold', rate(FILES, await timed(() => sh(`find ${q(path.join(mnt, 's'))} -ls > /dev/null`)), 'entries')]);
    rows.push(['stat-warm', rate(FILES, await timed(() => sh(`find ${q(path.join(mnt, 's'))} -ls > /dev/null`)), 'entries')]);
    rows.push(['rewrite 4 KiB', `${(await timed(() => sh(`dd if=/dev/urandom of=${q(path.join(mnt, 'big.bin'))} bs=4096 count=1 seek=1000 conv=notrunc status=none`))).toFixed(2)} s (whole ${SIZE_MIB} MiB object re-uploaded)`]);
    rows.push(['rm -rf', rate(FILES, await timed(() => sh(`rm -rf ${q(path.join(mnt, 's'))}`)), 'files')]);
  } finally {
    await t.unmount();
  }
  return rows;
}

const targets: Target[] = [];
try {
  // The daemon runs the compiled CLI (dist/, as installed) when it is built and newer than every
  // source file: tsx's transpiling would count in its CPU and RSS. Otherwise it runs the sources.
  const runsDist = await distIsFresh();
  let env: NodeJS.ProcessEnv = { S3CRYPTFS_FROM_SOURCE: runsDist ? '0' : '1', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
  if (!runsDist) console.error('[bench] dist/ is missing or older than the sources: the daemon runs through tsx (run `npm run build` for fair CPU/RSS figures)');
  let location: string;
  let rcloneEnv: NodeJS.ProcessEnv | null = null;
  let rcloneCounter: CountingProxy | undefined;
  let rawStore: StoreOptions | undefined;
  const rcloneBucket = opts['rclone-bucket'] ?? (opts.bucket ? undefined : 'rclone');
  if (opts.bucket) {
    location = `s3://${opts.bucket}`;
  } else {
    const s3 = await startEmbeddedS3({ dir: path.join(work, 's3'), buckets: ['bench', 'rclone'] });
    cleanups.unshift(() => s3.stop());
    env = { ...env, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey, AWS_ENDPOINT_URL: s3.endpoint, AWS_REGION: 'us-east-1' };
    location = 's3://bench';
    rawStore = { endpoint: s3.endpoint, region: 'us-east-1', credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } };
    rcloneCounter = await countingProxy(s3.endpoint);
    cleanups.unshift(() => rcloneCounter!.close());
  }
  if (!opts['no-rclone'] && rcloneBucket) {
    const conf = path.join(work, 'rclone.conf');
    await writeFile(conf, '');
    const password = (await sh(`${q(RCLONE)} obscure ${randomBytes(24).toString('hex')}`, { RCLONE_CONFIG: conf })).trim();
    const password2 = (await sh(`${q(RCLONE)} obscure ${randomBytes(24).toString('hex')}`, { RCLONE_CONFIG: conf })).trim();
    rcloneEnv = {
      RCLONE_CONFIG: conf,
      RCLONE_CONFIG_BENCHS3_TYPE: 's3',
      RCLONE_CONFIG_BENCHS3_PROVIDER: 'Other',
      RCLONE_CONFIG_BENCHS3_ENDPOINT: rcloneCounter?.endpoint ?? env.AWS_ENDPOINT_URL ?? process.env.AWS_ENDPOINT_URL ?? '',
      RCLONE_CONFIG_BENCHS3_ACCESS_KEY_ID: env.AWS_ACCESS_KEY_ID ?? process.env.AWS_ACCESS_KEY_ID ?? '',
      RCLONE_CONFIG_BENCHS3_SECRET_ACCESS_KEY: env.AWS_SECRET_ACCESS_KEY ?? process.env.AWS_SECRET_ACCESS_KEY ?? '',
      RCLONE_CONFIG_BENCHS3_REGION: env.AWS_REGION ?? process.env.AWS_REGION ?? 'us-east-1',
      RCLONE_CONFIG_BENCHS3_FORCE_PATH_STYLE: 'true',
      RCLONE_CONFIG_CRYPT_TYPE: 'crypt',
      RCLONE_CONFIG_CRYPT_REMOTE: `benchs3:${rcloneBucket}`,
      RCLONE_CONFIG_CRYPT_PASSWORD: password,
      RCLONE_CONFIG_CRYPT_PASSWORD2: password2,
    };
  }
  const keyFile = path.join(work, 'bench.key');
  await writeFile(keyFile, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
  env.S3CRYPTFS_KEY_FILE = keyFile;
  const src = path.join(work, 'src.bin');
  await sh(`head -c ${SIZE_MIB}M /dev/urandom > ${q(src)}`);
  const smallSrc = path.join(work, 'small');
  await sh(`mkdir -p ${q(smallSrc)} && cd ${q(smallSrc)} && for d in $(seq 1 50); do mkdir d$d; done && ` +
    `for i in $(seq 1 ${RSYNC_FILES}); do head -c $(( (RANDOM % 8 + 1) * 1024 )) /dev/urandom > d$(( i % 50 + 1 ))/f$i; done`);

  // Each s3cryptfs binding gets its own prefix so runs do not see each other's files.
  for (const b of BINDINGS) {
    const mnt = path.join(work, `mnt-${b}`);
    await mkdir(mnt);
    const loc = `${location}/${b}`;
    await sh(`node ${q(CLI)} init ${loc}`, env);
    targets.push(ourTarget(b, env, loc, mnt));
  }
  const rcloneCache = { mode: opts['rclone-cache']! };
  if (rcloneEnv) {
    const mnt = path.join(work, 'mnt-rclone');
    await mkdir(mnt);
    targets.push(rcloneTarget(rcloneEnv, mnt, rcloneCache, rcloneCounter));
  }

  const results: Result[] = [];
  for (const t of targets) {
    console.error(`[bench] ${t.name} ...`);
    try {
      results.push(await runSuite(t, src, smallSrc, t.name.startsWith('rclone') ? rcloneCache : undefined));
    } catch (e) {
      results.push({ errors: [`mount: ${(e as Error).message.split('\n')[0]}`] });
    }
  }

  const version = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')).version as string;
  console.log(`s3cryptfs ${version} vs rclone mount benchmark (${opts.bucket ? location : 'embedded s3rver'}, ${SIZE_MIB} MiB file, ` +
    `${BIG_MIB} MiB RSS file, ls -l of ${LS_FILES}, rsync of ${RSYNC_FILES}${rcloneEnv ? `; rclone ${targets.at(-1)!.note ?? ''}` : ''}; ` +
    `daemon runs ${runsDist ? 'dist/ (compiled)' : 'sources via tsx'})`);
  const rc = rcloneEnv ? results.at(-1)! : null;
  const f = (v: number | undefined, d = 1) => (v === undefined || Number.isNaN(v) ? 'n/a' : v.toFixed(d));
  type Metric = { label: string; get: (r: Result) => number | undefined; d: number; goal?: string; higher?: boolean; check?: (ratio: number, v: number) => boolean };
  const metrics: Metric[] = [
    { label: 'write MB/s', get: (r) => r.writeMBps, d: 1, goal: '>= 1.0x', check: (x) => x >= 1.0 },
    { label: 'write CPU s/GiB', get: (r) => r.writeCpu, d: 2, goal: '<= 0.5x', check: (x) => x <= 0.5 },
    { label: 'read MB/s (cold)', get: (r) => r.readMBps, d: 1, goal: '>= 1.2x', check: (x) => x >= 1.2 },
    { label: 'read CPU s/GiB', get: (r) => r.readCpu, d: 2, goal: '<= 0.5x', check: (x) => x <= 0.5 },
    { label: 'rand 4k IOPS', get: (r) => r.iops, d: 0, goal: '>= 3x', check: (x) => x >= 3 },
    { label: 'rand 4k mean us', get: (r) => r.latMeanUs, d: 0 },
    { label: 'rand 4k p99 us', get: (r) => r.latP99Us, d: 0 },
    { label: `ls -l ${LS_FILES} s`, get: (r) => r.lsSec, d: 2 },
    { label: `rsync ${RSYNC_FILES} s`, get: (r) => r.rsyncSec, d: 2 },
    { label: `peak RSS MiB`, get: (r) => (r.rssBytes === undefined ? undefined : r.rssBytes / 2 ** 20), d: 0, goal: '<= 200 MiB (ours)' },
    { label: `peak RSS read MiB`, get: (r) => (r.rssReadBytes === undefined ? undefined : r.rssReadBytes / 2 ** 20), d: 0, goal: '<= 200 MiB (ours)' },
  ];
  const ours = targets.map((t, i) => ({ t, r: results[i] })).filter(({ t }) => !t.name.startsWith('rclone'));
  const ratioNames = rc ? ours.map(({ t }) => `${t.name.replace('s3cryptfs ', '')}/rclone`) : [];
  // Wide enough for every column title (a fixed 18 let "s3cryptfs fuse-native" push the header out of line).
  const W = Math.max(18, ...targets.map((t) => t.name.length + 2), ...ratioNames.map((n) => n.length + 2));
  const header = ['metric'.padEnd(20), ...targets.map((t) => t.name.padStart(W)), ...ratioNames.map((n) => n.padStart(W)), '  goal'];
  console.log(header.join(''));
  for (const m of metrics) {
    const cells = [m.label.padEnd(20), ...results.map((r) => f(m.get(r), m.d).padStart(W))];
    if (rc) {
      for (const { r } of ours) {
        const a = m.get(r); const b = m.get(rc);
        const ratio = a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
        let cell = ratio === undefined || Number.isNaN(ratio) ? 'n/a' : `${ratio.toFixed(2)}x`;
        if (ratio !== undefined && m.check) cell += m.check(ratio, a!) ? ' ok' : ' MISS';
        // The RSS goal is absolute (ours <= 200 MiB), not a ratio: say so in the cell.
        if (m.label.startsWith('peak RSS') && a !== undefined) cell += a <= 200 ? ' (ours ok)' : ' (ours MISS)';
        cells.push(cell.padStart(W));
      }
    }
    cells.push(m.goal ? `  ${m.goal}` : '');
    console.log(cells.join(''));
  }
  targets.forEach((t, i) => {
    const r = results[i];
    if (r.fioNote) console.log(`  ${t.name}: fio ${r.fioNote}`);
    for (const e of r.errors) console.log(`  ${t.name}: ERROR ${e}`);
  });
  const fmtReq = (q?: Record<string, number>) => !q ? 'not counted' :
    `${Object.entries(q).sort().map(([k, v]) => `${k} ${v}`).join(', ') || 'none'} (total ${Object.values(q).reduce((a, b) => a + b, 0)})`;
  targets.forEach((t, i) => console.log(`  ls -l backend requests, ${t.name}: ${fmtReq(results[i].lsReq)}`));
  if (rawStore) {
    const raw = await rawGets(rawStore, 'bench').catch((e: Error) => `failed: ${e.message.split('\n')[0]}`);
    console.log(`  s3rver ceiling (plain client, ${SIZE_MIB} MiB ciphertext object, same run): ${raw}`);
  }

  if (opts.classic) {
    const b = BINDINGS[0];
    const mnt = path.join(work, 'mnt-classic');
    await mkdir(mnt);
    const loc = `${location}/classic`;
    await sh(`node ${q(CLI)} init ${loc}`, env);
    const rows = await classicSuite(ourTarget(b, env, loc, mnt), src);
    console.log(`classic s3cryptfs workloads (--fuse ${b}, ${SIZE_MIB} MiB file, ${FILES} small files)`);
    for (const [k, v] of rows) console.log(`  ${k.padEnd(14)} ${v}`);
  }
} finally {
  for (const t of targets) await t.unmount().catch(() => {});
  for (const fn of cleanups) await fn().catch(() => {});
}
