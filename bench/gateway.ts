/**
 * S3 gateway throughput: PUT and GET of 4 MiB objects at concurrency 1 and 16, through
 * `s3cryptfs serve-s3` (a child process, so its CPU and memory are measured alone) and, in the same
 * run with the same client, straight to the backend (s3rver in a child process). Reports MiB/s,
 * the gateway/direct ratio (goal >= 0.8), p50/p99 latency, gateway CPU seconds per GiB and the
 * gateway's peak RSS.
 *
 *   npm run bench:gateway -- [--size MiB] [--count N] [--rounds N] [--names plain|aes-siv]
 * With several rounds the best round per phase is reported (the machine may be shared).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

import { Engine } from '../src/engine/index.js';
import { newBucketConfig } from '../src/format/index.js';
import { KeyFileSource, loadKeys } from '../src/keys/index.js';
import { startEmbeddedS3 } from '../src/store/embedded-s3.js';
import { ObjectStore } from '../src/store/store.js';

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
  },
});
const SIZE = Number(values.size) * MiB;
const COUNT = Number(values.count);
const ROUNDS = Number(values.rounds);
const CLK_TCK = 100;

interface Phase {
  target: 'gateway' | 'direct';
  op: 'PUT' | 'GET';
  concurrency: number;
  mibps: number;
  p50: number;
  p99: number;
  cpuPerGiB?: number;
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
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED', maxAttempts: 1,
  });
}

async function runPhase(c: S3Client, bucket: string, op: 'PUT' | 'GET', concurrency: number, body: Buffer, prefix: string): Promise<{ seconds: number; latencies: number[] }> {
  const latencies: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  const worker = async () => {
    while (next < COUNT) {
      const i = next++;
      const key = `${prefix}/obj-${i % Math.max(COUNT, 1)}`;
      const t0 = process.hrtime.bigint();
      if (op === 'PUT') {
        await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentLength: body.length }));
      } else {
        const out = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        let n = 0;
        for await (const piece of out.Body as AsyncIterable<Buffer>) n += piece.length;
        if (n !== body.length) throw new Error(`GET ${key}: ${n} bytes, expected ${body.length}`);
      }
      latencies.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, latencies: latencies.sort((a, b) => a - b) };
}

async function startGatewayProcess(env: NodeJS.ProcessEnv): Promise<{ child: ChildProcess; endpoint: string }> {
  const nodeArgs = (process.env.GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean); // e.g. --cpu-prof
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
    await Engine.init(store, 'bench-gw', '', newBucketConfig(keys, { names: values.names === 'aes-siv' ? 'aes-siv' : 'plain' }));
    store.destroy();
    const { NODE_OPTIONS: _n, ...parentEnv } = process.env;
    const started = await startGatewayProcess({
      ...parentEnv,
      // The sources (through tsx): a dist/ from an older build may predate serve-s3.
      S3CRYPTFS_FROM_SOURCE: process.env.S3CRYPTFS_FROM_SOURCE ?? '1',
      AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1', AWS_ENDPOINT_URL: s3.endpoint,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      S3CRYPTFS_KEY_FILE: keyFile, S3CRYPTFS_GATEWAY_BUCKETS: 'bench-gw',
      S3CRYPTFS_GATEWAY_ACCESS_KEY_ID: 'BENCHCLIENT', S3CRYPTFS_GATEWAY_SECRET_ACCESS_KEY: 'bench-client-secret',
    });
    gw = started.child;
    const direct = client(s3.endpoint, 'S3RVER', 'S3RVER');
    const viaGw = client(started.endpoint, 'BENCHCLIENT', 'bench-client-secret');
    const body = randomBytes(SIZE);
    // Warm-up: connections, JIT, the store config.
    await runPhase(viaGw, 'bench-gw', 'PUT', 2, body, 'warm');
    await runPhase(direct, 'bench-direct', 'PUT', 2, body, 'warm');

    const best = new Map<string, Phase>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const concurrency of [1, 16]) {
        for (const op of ['PUT', 'GET'] as const) {
          for (const target of ['direct', 'gateway'] as const) {
            const c = target === 'gateway' ? viaGw : direct;
            const bucket = target === 'gateway' ? 'bench-gw' : 'bench-direct';
            const cpu0 = target === 'gateway' ? procCpuSeconds(gw.pid!) : 0;
            const r = await runPhase(c, bucket, op, concurrency, body, `c${concurrency}`);
            const phase: Phase = {
              target, op, concurrency,
              mibps: (COUNT * SIZE) / MiB / r.seconds,
              p50: quantile(r.latencies, 0.5), p99: quantile(r.latencies, 0.99),
            };
            if (target === 'gateway') phase.cpuPerGiB = (procCpuSeconds(gw.pid!) - cpu0) / ((COUNT * SIZE) / GiB);
            const id = `${target} ${op} ${concurrency}`;
            const prev = best.get(id);
            if (!prev || phase.mibps > prev.mibps) best.set(id, phase);
          }
        }
      }
    }
    const peak = procPeakRss(gw.pid!);
    const rows: string[][] = [['op', 'conc', 'direct MiB/s', 'gateway MiB/s', 'ratio', 'direct p50/p99 ms', 'gateway p50/p99 ms', 'gw CPU s/GiB']];
    let worst = Infinity;
    for (const concurrency of [1, 16]) {
      for (const op of ['PUT', 'GET'] as const) {
        const d = best.get(`direct ${op} ${concurrency}`)!;
        const g = best.get(`gateway ${op} ${concurrency}`)!;
        const ratio = g.mibps / d.mibps;
        worst = Math.min(worst, ratio);
        rows.push([op, String(concurrency), d.mibps.toFixed(1), g.mibps.toFixed(1), ratio.toFixed(2),
          `${d.p50.toFixed(1)}/${d.p99.toFixed(1)}`, `${g.p50.toFixed(1)}/${g.p99.toFixed(1)}`, g.cpuPerGiB!.toFixed(2)]);
      }
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    console.log(`gateway bench: ${COUNT} x ${SIZE / MiB} MiB objects per phase, best of ${ROUNDS} round(s), names ${values.names}, backend s3rver (child process)`);
    for (const r of rows) console.log(r.map((c, i) => c.padStart(widths[i])).join('  '));
    console.log(`gateway peak RSS: ${(peak / MiB).toFixed(0)} MiB; lowest gateway/direct ratio: ${worst.toFixed(2)} (goal >= 0.80)`);
    direct.destroy();
    viaGw.destroy();
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
