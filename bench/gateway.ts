/**
 * S3 gateway throughput: PUT and GET of 4 MiB objects at concurrency 1 and 16, through
 * `s3cryptfs serve-s3` (a child process, so its CPU and memory are measured alone) and, in the same
 * run with the same client, straight to the backend (s3rver in a child process). Reports MiB/s,
 * the gateway/direct ratio (goal >= 0.8), p50/p99 latency, gateway CPU seconds per GiB and the
 * gateway's peak RSS. Every phase also reports the CPU the client, the gateway and s3rver used and
 * how busy the whole machine was (/proc/stat), which shows when the ratio is set by a saturated CPU.
 *
 *   npm run bench:gateway -- [--size MiB] [--count N] [--rounds N] [--names plain|aes-siv] [--cipher aes-256-gcm|chacha20-poly1305]
 *     [--from dist|source] [--ops PUT,GET[,RANGE]] [--conc 1,16] [--profile] [--content-md5]
 * --content-md5: the client sends Content-MD5 with each PUT, as Proxmox Backup Server does (to both
 * targets; the digest is computed once). The gateway then knows the MD5 ETag before the body and
 * streams the PUT to the backend as it arrives; without it, it needs the body's MD5 first.
 * --cipher: the bench store's cipher; by default the one `s3cryptfs init` picks on this host.
 * RANGE: each object read as four quarter-size ranged GETs (every object visited once before any is
 * visited again), as download managers and the AWS CLI fetch large objects.
 * With several rounds the best round per phase is reported (the machine may be shared).
 * --from dist (default) measures the built gateway (dist/, rebuilt with tsc when older than the
 * sources); --from source runs it through tsx. --profile runs the gateway under --cpu-prof and
 * prints where its CPU time went (hashing, ciphers, GC, sockets, SDK, ...) per measured phase, in ms
 * per MiB: samples are split by time (V8 stamps them with CLOCK_MONOTONIC, as process.hrtime here),
 * so the warm-up, the uploads GET needs and the direct phases are counted apart ("outside").
 * The profiler samples the main thread's wall time: on a loaded machine a descheduled thread's wait
 * is charged to whatever it ran last, so compare against the /proc row (all threads, CPU only).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { copyFile, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

import { Engine, hostPreferredCipher } from '../src/engine/index.js';
import { newBucketConfig, type CipherName } from '../src/format/index.js';
import { KeyFileSource, loadKeys } from '../src/keys/index.js';
import { startEmbeddedS3 } from '../src/store/embedded-s3.js';
import { ObjectStore } from '../src/store/store.js';
import { launcherNodeFlags } from './launcher.js';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const ROOT = fileURLToPath(new URL('..', import.meta.url));

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '4' },
    count: { type: 'string', default: '48' },
    rounds: { type: 'string', default: '2' },
    names: { type: 'string', default: 'plain' },
    // As `s3cryptfs init` and the gateway's CreateBucket choose (AES-256-GCM where the CPU has AES instructions).
    cipher: { type: 'string', default: hostPreferredCipher() },
    from: { type: 'string', default: 'dist' },
    ops: { type: 'string', default: 'PUT,GET' },
    conc: { type: 'string', default: '1,16' },
    profile: { type: 'boolean', default: false },
    'content-md5': { type: 'boolean', default: false },
  },
});
type Op = 'PUT' | 'GET' | 'RANGE';
const OPS = values.ops!.split(',').map((s) => s.trim().toUpperCase()) as Op[];
/** Requests per phase: RANGE reads every object as four quarters. */
const requestsOf = (op: Op) => (op === 'RANGE' ? 4 * COUNT : COUNT);
const CONCS = values.conc!.split(',').map(Number);
const SIZE = Number(values.size) * MiB;
const COUNT = Number(values.count);
const ROUNDS = Number(values.rounds);
const CLK_TCK = 100;

interface Phase {
  target: 'gateway' | 'direct';
  op: Op;
  concurrency: number;
  mibps: number;
  p50: number;
  p99: number;
  cpuPerGiB?: number;
  /** CPU seconds per wall second: the bench client, the gateway (0 for direct), s3rver; the machine's busy cores. */
  cpu: { client: number; gateway: number; s3rver: number; machine: number };
  retries: number;
}

/** Busy and total jiffies of the whole machine (all cores), from /proc/stat. */
function machineJiffies(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - (f[4] ?? 0), total }; // minus idle and iowait
}

function procCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime + stime
}

function procPeakRss(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function client(endpoint: string, accessKeyId: string, secretAccessKey: string): S3Client {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  return new S3Client({
    endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId, secretAccessKey },
    requestHandler: new NodeHttpHandler({ httpAgent: agent }),
    // Retries as any S3 client does them (a reset under load); counted and reported.
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', maxAttempts: 3,
  });
}

async function runPhase(c: S3Client, bucket: string, op: Op, concurrency: number, body: Buffer, prefix: string): Promise<{ seconds: number; latencies: number[]; retries: number }> {
  const latencies: number[] = [];
  let retries = 0;
  let next = 0;
  const requests = requestsOf(op);
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < requests) {
      const i = next++;
      const key = `${prefix}/obj-${i % Math.max(COUNT, 1)}`;
      const t0 = process.hrtime.bigint();
      if (op === 'RANGE') {
        const quarter = Math.floor(body.length / 4);
        const start = Math.floor(i / COUNT) * quarter;
        const out = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${start + quarter - 1}` }));
        retries += (out.$metadata.attempts ?? 1) - 1;
        let n = 0;
        for await (const piece of out.Body as AsyncIterable<Buffer>) n += piece.length;
        if (n !== quarter) throw new Error(`GET ${key} range: ${n} bytes, expected ${quarter}`);
      } else if (op === 'PUT') {
        const out = await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length, ContentMD5: contentMd5(body) }));
        retries += (out.$metadata.attempts ?? 1) - 1;
      } else {
        const out = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        retries += (out.$metadata.attempts ?? 1) - 1;
        let n = 0;
        for await (const piece of out.Body as AsyncIterable<Buffer>) n += piece.length;
        if (n !== body.length) throw new Error(`GET ${key}: ${n} bytes, expected ${body.length}`);
      }
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies: latencies.sort((a, b) => a - b), retries };
}

const md5s = new WeakMap<Buffer, string>();
/** With --content-md5, the body's Content-MD5 (computed once per body, outside the timed work). */
function contentMd5(body: Buffer): string | undefined {
  if (!values['content-md5']) return undefined;
  let v = md5s.get(body);
  if (v === undefined) md5s.set(body, (v = createHash('md5').update(body).digest('base64')));
  return v;
}

/** Newest mtime (ms) of the .ts files below `dir`. */
function newestTs(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && e.name !== 'build') newest = Math.max(newest, newestTs(p));
    } else if (e.name.endsWith('.ts')) newest = Math.max(newest, statSync(p).mtimeMs);
  }
  return newest;
}

/** dist/ as the launcher runs it: rebuilt (tsc) when missing or older than the sources. */
function ensureBuilt(): string {
  const main = path.join(ROOT, 'dist', 'src', 'cli', 'main.js');
  const srcNewest = Math.max(newestTs(path.join(ROOT, 'src')), newestTs(path.join(ROOT, 'native-bindings')));
  if (existsSync(main) && statSync(main).mtimeMs >= srcNewest) return 'built dist/ (up to date)';
  console.log('building dist/ (tsc -p tsconfig.json): it is missing or older than src/');
  try {
    execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { stdio: 'inherit' });
  } catch {
    // tsc emits despite type errors (e.g. someone's work in progress); the launcher only needs the JS.
    if (!existsSync(main)) throw new Error('tsc did not produce dist/src/cli/main.js');
    console.log('(tsc reported errors; dist/ was emitted anyway)');
  }
  return 'built dist/ (just rebuilt)';
}

interface ProfileNode { id: number; callFrame: { functionName: string; url: string }; children?: number[] }

/** The kind of work a profile node's samples go to: the first matching rule from leaf to root. */
function classify(chain: ProfileNode['callFrame'][]): string | null {
  const leaf = chain[0];
  const fns = chain.map((f) => f.functionName);
  const urls = chain.map((f) => f.url);
  if (leaf.functionName === '(idle)') return null;
  if (leaf.functionName === '(garbage collector)') return 'garbage collection';
  if (leaf.functionName === '(program)') return 'native, unattributed';
  if (urls.some((u) => /^node:internal\/(modules|bootstrap|deps\/cjs-module-lexer|process\/pre_execution)/.test(u))) return 'module loading';
  if (leaf.functionName === 'update' && leaf.url.includes('hash')) {
    return fns.includes('getPayloadHash') ? 'SHA-256 of backend request bodies (SDK signing)' : urls.some((u) => u.endsWith('payload.ts') || u.endsWith('payload.js')) ? 'MD5 + SHA-256 of client bodies (verify, ETag)' : 'other hashing';
  }
  if (leaf.url.includes('cipher')) return 'encrypt/decrypt';
  if (['writev', 'writeLatin1String', 'writeBuffer', 'writeUtf8String'].includes(leaf.functionName)) return 'socket writes';
  if (urls.some((u) => u.includes('@smithy') || u.includes('@aws-sdk'))) return 'AWS SDK (backend client)';
  if (urls.slice(0, 4).some((u) => u.includes('_http_') || u === 'node:net')) return 'HTTP/sockets (node)';
  if (urls.some((u) => /\/src\/gateway\//.test(u))) return 'gateway code';
  if (urls.some((u) => /\/src\/(engine|format|store)\//.test(u))) return 'engine/format/store code';
  if (urls.some((u) => u.includes('streams'))) return 'node streams';
  return 'other';
}

/** A measured phase's time window (CLOCK_MONOTONIC microseconds, the clock V8 stamps profile samples with). */
interface Window { label: string; t0: number; t1: number; mib: number; cpu: number }

/**
 * Gateway CPU seconds by kind of work, per window (samples outside every window go to "outside"),
 * from a V8 .cpuprofile. Sample times are startTime plus the running sum of timeDeltas.
 */
function profileByWindow(profile: { nodes: ProfileNode[]; samples: number[]; timeDeltas: number[]; startTime: number }, windows: Window[]): Map<string, Map<string, number>> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const kinds = new Map<number, string | null>();
  const kindOf = (id: number): string | null => {
    let k = kinds.get(id);
    if (k === undefined) {
      const chain: ProfileNode['callFrame'][] = [];
      for (let x: number | undefined = id; x !== undefined; x = parent.get(x)) chain.push(byId.get(x)!.callFrame);
      kinds.set(id, (k = classify(chain)));
    }
    return k;
  };
  const out = new Map<string, Map<string, number>>();
  let t = profile.startTime;
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    // A sample's delta is the time since the previous one: it is charged to the sampled node.
    const kind = kindOf(id);
    if (kind === null) return;
    const label = windows.find((w) => t >= w.t0 && t < w.t1)?.label ?? 'outside';
    let m = out.get(label);
    if (!m) out.set(label, (m = new Map()));
    m.set(kind, (m.get(kind) ?? 0) + dt / 1e6);
  });
  return out;
}

const nowUs = () => Number(process.hrtime.bigint() / 1000n);

async function startGatewayProcess(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; endpoint: string }> {
  // The launcher's own node flags (as an executable launch applies them), then any extra ones.
  const nodeArgs = [...launcherNodeFlags(), ...(process.env.GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean)];
  if (values.profile) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${env.BENCH_PROFILE_DIR}`);
  const child = spawn(process.execPath, [...nodeArgs, path.join(ROOT, 'bin', 's3cryptfs.js'), 'serve-s3', '--http-listen', '127.0.0.1:0'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (b: Buffer) => (out += b));
  child.stderr!.on('data', (b: Buffer) => (err += b));
  for (let i = 0; i < 600; i++) {
    const m = /S3 endpoint \(HTTP, loopback\): (\S+)/.exec(out);
    if (m && /buckets:/.test(out)) return { child, endpoint: m[1] };
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`the gateway did not start: ${err || out}`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-bench-gw-'));
  const s3 = await startEmbeddedS3({ dir: path.join(dir, 's3'), buckets: ['bench-direct', 'bench-gw'] });
  let gw: ChildProcess | undefined;
  try {
    const keyFile = path.join(dir, 'k.key');
    await writeFile(keyFile, randomBytes(32).toString('base64'), { mode: 0o600 });
    const store = new ObjectStore({ endpoint: s3.endpoint, region: 'us-east-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
    const { keys } = await loadKeys(new KeyFileSource(keyFile));
    await Engine.init(store, 'bench-gw', '', newBucketConfig(keys, { names: values.names === 'aes-siv' ? 'aes-siv' : 'plain', cipher: values.cipher as CipherName }));
    store.destroy();
    const { NODE_OPTIONS: _n, ...parentEnv } = process.env;
    const build = values.from === 'source' ? 'sources through tsx' : ensureBuilt();
    const started = await startGatewayProcess({
      ...parentEnv,
      S3CRYPTFS_FROM_SOURCE: values.from === 'source' ? '1' : '0',
      BENCH_PROFILE_DIR: path.join(dir, 'profile'),
      AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: s3.endpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      S3CRYPTFS_KEY_FILE: keyFile, S3CRYPTFS_GATEWAY_BUCKETS: 'bench-gw',
      S3CRYPTFS_GATEWAY_ACCESS_KEY_ID: 'BENCHCLIENT', S3CRYPTFS_GATEWAY_SECRET_ACCESS_KEY: 'bench-client-secret',
    });
    gw = started.child;
    const direct = client(s3.endpoint, 'S3RVER', 'S3RVER');
    const viaGw = client(started.endpoint, 'BENCHCLIENT', 'bench-client-secret');
    const body = randomBytes(SIZE);
    contentMd5(body);
    // Warm-up: connections, JIT, the store config.
    await runPhase(viaGw, 'bench-gw', 'PUT', 2, body, 'warm');
    await runPhase(direct, 'bench-direct', 'PUT', 2, body, 'warm');

    const best = new Map<string, Phase>();
    const windows: Window[] = [];
    const load0 = loadavg()[0];
    if (!OPS.includes('PUT')) {
      // GET needs objects: written once, not measured.
      for (const concurrency of CONCS) {
        await runPhase(viaGw, 'bench-gw', 'PUT', 4, body, `c${concurrency}`);
        await runPhase(direct, 'bench-direct', 'PUT', 4, body, `c${concurrency}`);
      }
    }
    for (let round = 0; round < ROUNDS; round++) {
      for (const concurrency of CONCS) {
        for (const op of OPS) {
          for (const target of ['direct', 'gateway'] as const) {
            const c = target === 'gateway' ? viaGw : direct;
            const bucket = target === 'gateway' ? 'bench-gw' : 'bench-direct';
            const gw0 = procCpuSeconds(gw.pid!);
            const s30 = procCpuSeconds(s3.pid);
            const me0 = process.cpuUsage();
            const m0 = machineJiffies();
            const t0 = nowUs();
            const r = await runPhase(c, bucket, op, concurrency, body, `c${concurrency}`);
            const t1 = nowUs();
            const me = process.cpuUsage(me0);
            const m1 = machineJiffies();
            const gwCpu = procCpuSeconds(gw.pid!) - gw0;
            if (target === 'gateway') windows.push({ label: `${op} c${concurrency}`, t0, t1, mib: (requestsOf(op) * (op === 'RANGE' ? Math.floor(SIZE / 4) : SIZE)) / MiB, cpu: gwCpu });
            const phase: Phase = {
              target, op, concurrency,
              mibps: (op === 'RANGE' ? 4 * COUNT * Math.floor(SIZE / 4) : COUNT * SIZE) / MiB / r.seconds,
              p50: quantile(r.latencies, 0.5), p99: quantile(r.latencies, 0.99),
              cpu: {
                client: (me.user + me.system) / 1e6 / r.seconds,
                gateway: target === 'gateway' ? gwCpu / r.seconds : 0,
                s3rver: (procCpuSeconds(s3.pid) - s30) / r.seconds,
                machine: ((m1.busy - m0.busy) / (m1.total - m0.total)) * cpus().length,
              },
              retries: r.retries,
            };
            if (target === 'gateway') phase.cpuPerGiB = gwCpu / ((phase.mibps * r.seconds) / 1024);
            const id = `${target} ${op} ${concurrency}`;
            const prev = best.get(id);
            if (!prev || phase.mibps > prev.mibps) best.set(id, phase);
          }
        }
      }
    }
    const peak = procPeakRss(gw.pid!);
    const rows: string[][] = [['op', 'conc', 'direct MiB/s', 'gateway MiB/s', 'ratio', 'direct p50/p99 ms', 'gateway p50/p99 ms', 'gw CPU s/GiB']];
    const cpuRows: string[][] = [['op', 'conc', 'target', 'client', 'gateway', 's3rver', 'ours', 'machine busy', 'others', 'retries', 'CPU ms/MiB']];
    // With the CPU saturated, throughput is (CPU we get) / (CPU per MiB): the ratio cannot beat
    // (direct path CPU per MiB) / (gateway path CPU per MiB), whatever the gateway's latency.
    const ceilings: string[] = [];
    let worst = Infinity;
    for (const concurrency of CONCS) {
      for (const op of OPS) {
        for (const target of ['direct', 'gateway'] as const) {
          const p = best.get(`${target} ${op} ${concurrency}`)!;
          const ours = p.cpu.client + p.cpu.gateway + p.cpu.s3rver;
          cpuRows.push([op, String(concurrency), target, p.cpu.client.toFixed(2), p.cpu.gateway.toFixed(2), p.cpu.s3rver.toFixed(2), ours.toFixed(2),
            `${p.cpu.machine.toFixed(2)}/${cpus().length}`, Math.max(0, p.cpu.machine - ours).toFixed(2), String(p.retries), ((1000 * ours) / p.mibps).toFixed(1)]);
        }
        const perMiB = (t: 'direct' | 'gateway') => {
          const p = best.get(`${t} ${op} ${concurrency}`)!;
          return (p.cpu.client + p.cpu.gateway + p.cpu.s3rver) / p.mibps;
        };
        ceilings.push(`${op} ${concurrency}: ${(perMiB('direct') / perMiB('gateway')).toFixed(2)}`);
        const d = best.get(`direct ${op} ${concurrency}`)!;
        const g = best.get(`gateway ${op} ${concurrency}`)!;
        const ratio = g.mibps / d.mibps;
        worst = Math.min(worst, ratio);
        rows.push([op, String(concurrency), d.mibps.toFixed(1), g.mibps.toFixed(1), ratio.toFixed(2),
          `${d.p50.toFixed(1)}/${d.p99.toFixed(1)}`, `${g.p50.toFixed(1)}/${g.p99.toFixed(1)}`, g.cpuPerGiB!.toFixed(2)]);
      }
    }
    const table = (t: string[][]) => {
      const widths = t[0].map((_, i) => Math.max(...t.map((r) => r[i].length)));
      for (const r of t) console.log(r.map((c, i) => c.padStart(widths[i])).join('  '));
    };
    console.log(`gateway bench: ${COUNT} x ${SIZE / MiB} MiB objects per phase, best of ${ROUNDS} round(s), names ${values.names}, cipher ${values.cipher}, backend s3rver (child process)`);
    console.log(`gateway: ${build}${process.env.GATEWAY_NODE_ARGS ? `, node ${process.env.GATEWAY_NODE_ARGS}` : ''}; load average ${load0.toFixed(1)} at start, ${loadavg()[0].toFixed(1)} at end, ${cpus().length} cores`);
    table(rows);
    console.log(`gateway peak RSS: ${(peak / MiB).toFixed(0)} MiB; lowest gateway/direct ratio: ${worst.toFixed(2)} (goal >= 0.80)`);
    console.log('CPU seconds per wall second during each reported phase ("ours" = client + gateway + s3rver; "others" = the rest of the machine):');
    table(cpuRows);
    console.log(`CPU-bound ceiling of the ratio (direct CPU/MiB over gateway-path CPU/MiB): ${ceilings.join(', ')}`);
    // The budget the 0.80 goal leaves the gateway, from this run's own figures: with the CPU
    // saturated, gateway-path CPU per MiB may be at most direct CPU per MiB / 0.8; at low
    // concurrency, latency rules instead: the gateway may add at most a quarter of direct p50.
    const budget: string[][] = [['op', 'conc', 'direct client+s3rver', 'gw path client+s3rver', 'gateway', 'gateway allowed @0.8', 'ceiling', 'p50 direct', 'p50 gateway', 'p50 allowed @0.8']];
    for (const concurrency of CONCS) {
      for (const op of OPS) {
        const d = best.get(`direct ${op} ${concurrency}`)!;
        const g = best.get(`gateway ${op} ${concurrency}`)!;
        const per = (cpu: number, p: Phase) => (1000 * cpu) / p.mibps;
        const direct = per(d.cpu.client + d.cpu.s3rver, d);
        const others = per(g.cpu.client + g.cpu.s3rver, g);
        const gwMs = per(g.cpu.gateway, g);
        budget.push([op, String(concurrency), direct.toFixed(1), others.toFixed(1), gwMs.toFixed(1), (direct / 0.8 - others).toFixed(1),
          (direct / (others + gwMs)).toFixed(2), d.p50.toFixed(1), g.p50.toFixed(1), (d.p50 / 0.8).toFixed(1)]);
      }
    }
    console.log('Budget for the 0.80 goal (CPU in ms per MiB moved; latency in ms):');
    table(budget);
    direct.destroy();
    viaGw.destroy();
    if (values.profile) {
      gw.kill('SIGTERM');
      await new Promise((r) => gw!.once('close', r));
      const profDir = path.join(dir, 'profile');
      const files = (await readdir(profDir)).filter((f) => f.endsWith('.cpuprofile')).sort();
      // The first profile is the main thread (tsx adds a loader thread).
      const keep = path.join(tmpdir(), 's3cryptfs-bench-gateway.cpuprofile');
      await copyFile(path.join(profDir, files[0]), keep);
      await writeFile(keep.replace(/\.cpuprofile$/, '.windows.json'), JSON.stringify(windows));
      const byWindow = profileByWindow(JSON.parse(await readFile(keep, 'utf8')), windows);
      // Per measured gateway phase (all rounds), in ms of gateway CPU per MiB moved: the warm-up,
      // the GET objects' upload and the direct phases fall outside and are shown apart, in seconds.
      const labels = [...new Set(windows.map((w) => w.label))];
      const mibOf = (label: string) => windows.filter((w) => w.label === label).reduce((a, w) => a + w.mib, 0);
      const kinds = new Map<string, number>();
      for (const m of byWindow.values()) for (const [k, v] of m) kinds.set(k, (kinds.get(k) ?? 0) + v);
      const order = [...kinds].sort((a, b) => b[1] - a[1]).map(([k]) => k);
      const cell = (label: string, kind: string) => ((1000 * (byWindow.get(label)?.get(kind) ?? 0)) / mibOf(label)).toFixed(2);
      const sum = (label: string) => [...(byWindow.get(label)?.values() ?? [])].reduce((a, b) => a + b, 0);
      const t: string[][] = [['kind of work', ...labels.map((l) => `${l} ms/MiB`), 'outside s']];
      for (const kind of order) t.push([kind, ...labels.map((l) => cell(l, kind)), (byWindow.get('outside')?.get(kind) ?? 0).toFixed(2)]);
      t.push(['total, main thread (sampled)', ...labels.map((l) => ((1000 * sum(l)) / mibOf(l)).toFixed(2)), sum('outside').toFixed(2)]);
      // The profiler samples the main thread only: threadpool work (AEAD runs, zlib) and GC helper threads show here.
      t.push(['process, all threads (/proc)', ...labels.map((l) => ((1000 * windows.filter((w) => w.label === l).reduce((a, w) => a + w.cpu, 0)) / mibOf(l)).toFixed(2)), '']);
      console.log(`gateway CPU by kind of work, per measured phase (all rounds; "outside" = warm-up, uploads for GET, direct phases; profile kept in ${keep}):`);
      const widths = t[0].map((_, i) => Math.max(...t.map((r) => r[i].length)));
      for (const r of t) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  '));
    }
  } finally {
    if (gw && gw.exitCode === null) {
      gw.kill('SIGTERM');
      await new Promise((r) => gw!.once('close', r));
    }
    await s3.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
