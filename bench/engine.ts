/**
 * Engine throughput against plain S3: PUT and GET of one large object through the engine
 * (encrypt + multipart, verified streaming decrypt) and the same transfer with @aws-sdk/client-s3
 * alone (multipart with the same part size and concurrency, plain GetObject stream), against s3rver
 * in a child process, and the same through the AWS S3 Encryption Client format (V2 AES/GCM, "aws-gcm").
 * "store get" / "store range" read the plain object through ObjectStore alone (getStream whole,
 * getRange in part-sized pieces at the given concurrency): the store's own GET cost, on the lean
 * node:http path by default or the SDK path with S3CRYPTFS_STORE_SDK=1 (compare with "plain get").
 * Reports MB/s, CPU seconds of this process per GiB and peak RSS per phase.
 *
 *   npm run bench:engine -- [--size MiB] [--part MiB] [--concurrency N] [--rounds N]
 *                           [--cipher chacha20-poly1305|aes-256-gcm] [--chunk KiB]
 * With several rounds the best round per phase is reported (the machine may be shared).
 */
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { parseArgs } from 'node:util';

import {
  CompleteMultipartUploadCommand, CreateMultipartUploadCommand, GetObjectCommand, S3Client, UploadPartCommand,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

import { nativeChunkRunPort } from '../native-bindings/aead/index.js';
import { Engine } from '../src/engine/index.js';
import { deriveKeys, newBucketConfig, type BucketConfig, type CipherName } from '../src/format/index.js';
import { startEmbeddedS3 } from '../src/store/embedded-s3.js';
import { ObjectStore } from '../src/store/store.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const PIECE = MiB;

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: '1024' },
    part: { type: 'string', default: '8' },
    concurrency: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '1' },
    cipher: { type: 'string', default: 'chacha20-poly1305' },
    chunk: { type: 'string', default: '64' },
  },
});
const SIZE = Math.round(Number(values.size) * MiB);
const PART = Math.round(Number(values.part) * MiB);
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const CIPHER = values.cipher as CipherName;
const CHUNK = Math.round(Number(values.chunk) * 1024);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

interface Result {
  name: string;
  seconds: number;
  cpuSeconds: number;
  peakRss: number;
}

/** Runs one phase: wall time, CPU of this process, peak RSS sampled every 100 ms. */
async function measure(name: string, work: () => Promise<void>): Promise<Result> {
  gc();
  await new Promise((r) => setTimeout(r, 200));
  let peak = process.memoryUsage().rss;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 100);
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  try {
    await work();
  } finally {
    clearInterval(sampler);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  peak = Math.max(peak, process.memoryUsage().rss);
  const r = { name, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, peakRss: peak };
  process.stderr.write(`  ${name}: ${(SIZE / MiB / seconds).toFixed(1)} MiB/s\n`);
  return r;
}

/** `size` bytes in 1 MiB pieces; the pieces are one reused random block (consumers copy or encrypt at once). */
function* source(size: number): Generator<Buffer> {
  const block = randomBytes(PIECE);
  for (let pos = 0; pos < size; pos += PIECE) yield pos + PIECE <= size ? block : block.subarray(0, size - pos);
}

async function drain(stream: Readable): Promise<number> {
  let n = 0;
  for await (const chunk of stream) n += (chunk as Buffer).length;
  return n;
}

async function plainPut(client: S3Client, bucket: string, key: string): Promise<void> {
  const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
  const parts: { PartNumber: number; ETag: string }[] = [];
  const inflight = new Set<Promise<void>>();
  let partNumber = 0;
  const send = async (body: Buffer) => {
    while (inflight.size >= CONCURRENCY) await Promise.race(inflight);
    const n = ++partNumber;
    const p = client.send(new UploadPartCommand({ Bucket: bucket, Key: key, UploadId, PartNumber: n, Body: body, ContentLength: body.length }))
      .then((out) => { parts.push({ PartNumber: n, ETag: out.ETag! }); });
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };
  let part = Buffer.allocUnsafe(PART);
  let filled = 0;
  for (const piece of source(SIZE)) {
    let pos = 0;
    while (pos < piece.length) {
      const n = piece.copy(part, filled, pos);
      filled += n;
      pos += n;
      if (filled === PART) {
        await send(part);
        part = Buffer.allocUnsafe(PART);
        filled = 0;
      }
    }
  }
  if (filled > 0) await send(part.subarray(0, filled));
  await Promise.all(inflight);
  parts.sort((a, b) => a.PartNumber - b.PartNumber);
  await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }));
}

async function plainGet(client: S3Client, bucket: string, key: string): Promise<void> {
  const out = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const n = await drain(out.Body as Readable);
  if (n !== SIZE) throw new Error(`plain GET returned ${n} bytes`);
}

async function storeRanges(store: ObjectStore, bucket: string, key: string): Promise<void> {
  let next = 0;
  let total = 0;
  const worker = async () => {
    while (next < SIZE) {
      const start = next;
      next = Math.min(SIZE, next + PART);
      const got = await store.getRange(bucket, key, start, next);
      total += got.length;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (total !== SIZE) throw new Error(`store ranges returned ${total} bytes`);
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 's3cryptfs-bench-'));
  const server = await startEmbeddedS3({ dir, buckets: ['bench'] });
  const credentials = { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey };
  const store = new ObjectStore({ endpoint: server.endpoint, region: 'us-east-1', credentials });
  const client = new S3Client({
    endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials,
    requestHandler: new NodeHttpHandler({ httpAgent: new http.Agent({ keepAlive: true, maxSockets: 64 }) }),
    requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED',
  });
  try {
    const keys = deriveKeys(randomBytes(32));
    const config: BucketConfig = newBucketConfig(keys, { cipher: CIPHER, chunkSize: CHUNK, names: 'aes-siv' });
    await Engine.init(store, 'bench', 'enc', config);
    const engine = await Engine.open({ store, bucket: 'bench', prefix: 'enc', keys, config, partSize: PART, uploadConcurrency: CONCURRENCY });
    // The AWS S3 Encryption Client format (V2, AES/GCM content, AES/GCM-wrapped data key) in a plain-name store.
    const cseConfig: BucketConfig = newBucketConfig(keys, { cipher: CIPHER, chunkSize: CHUNK, names: 'plain' });
    await Engine.init(store, 'bench', 'cse', cseConfig);
    const gcmEngine = await Engine.open({
      store, bucket: 'bench', prefix: 'cse', keys, config: cseConfig, partSize: PART, uploadConcurrency: CONCURRENCY,
      awsCse: { aesKey: randomBytes(32), writeFormat: 'aws-cse-v2' },
    });
    gc();
    dataPath = store.dataPath;
    baselineRss = process.memoryUsage().rss;
    process.stderr.write(`s3cryptfs engine bench: ${SIZE / MiB} MiB, part ${PART / MiB} MiB, concurrency ${CONCURRENCY}, ${config.cipher}, chunk ${CHUNK / 1024} KiB, store data path ${store.dataPath}, node ${process.version}\n`);

    const results: Result[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      results.push(await measure('plain put', () => plainPut(client, 'bench', 'plain.bin')));
      results.push(await measure('engine put', async () => {
        const w = engine.createWriter('data.bin');
        for (const piece of source(SIZE)) await w.write(piece);
        await w.close();
      }));
      results.push(await measure('plain get', () => plainGet(client, 'bench', 'plain.bin')));
      results.push(await measure('store get', async () => {
        const n = await drain((await store.getStream('bench', 'plain.bin')).stream);
        if (n !== SIZE) throw new Error(`store GET returned ${n} bytes`);
      }));
      results.push(await measure('store range', () => storeRanges(store, 'bench', 'plain.bin')));
      results.push(await measure('engine get', async () => {
        const n = await drain(engine.readStream('data.bin'));
        if (n !== SIZE) throw new Error(`engine GET returned ${n} bytes`);
      }));
      results.push(await measure('aws-gcm put', async () => {
        const w = gcmEngine.createWriter('data.bin');
        for (const piece of source(SIZE)) await w.write(piece);
        await w.close();
      }));
      results.push(await measure('aws-gcm get', async () => {
        const n = await drain(gcmEngine.readStream('data.bin'));
        if (n !== SIZE) throw new Error(`aws-gcm GET returned ${n} bytes`);
      }));
    }
    report(results);
  } finally {
    client.destroy();
    store.destroy();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

let baselineRss = 0;
let dataPath = '';

function report(results: Result[]): void {
  // Best round per phase: the machine is shared and noisy.
  const best = new Map<string, Result>();
  for (const r of results) {
    const b = best.get(r.name);
    if (!b || r.seconds < b.seconds) best.set(r.name, r);
  }
  const row = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(12) : c.padStart(12))).join(' ');
  console.log(row(['phase', 'MB/s', 'CPU s/GiB', 'peak RSS MiB']));
  for (const r of best.values()) {
    console.log(row([r.name, (SIZE / 1e6 / r.seconds).toFixed(1), (r.cpuSeconds / (SIZE / GiB)).toFixed(2), (r.peakRss / MiB).toFixed(0)]));
  }
  console.log(`RSS before the first phase (modules loaded, server started): ${(baselineRss / MiB).toFixed(0)} MiB`);
  console.log(`engine put seals ${nativeChunkRunPort() ? 'with the native AEAD addon, off the event loop' : 'with node:crypto on the event loop (addon not built, or S3CRYPTFS_NATIVE_AEAD=0)'}`);
  const g = (name: string) => best.get(name)!;
  for (const op of ['put', 'get']) {
    const e = g(`engine ${op}`);
    const p = g(`plain ${op}`);
    const ratio = p.seconds / e.seconds;
    console.log(
      `${op}: engine/plain throughput ${ratio.toFixed(2)} (goal >= 0.90: ${ratio >= 0.9 ? 'met' : 'NOT met'}), ` +
      `CPU ${(e.cpuSeconds / p.cpuSeconds).toFixed(2)}x, peak RSS ${(e.peakRss / MiB).toFixed(0)} MiB ` +
      `(goal <= 200: ${e.peakRss <= 200 * MiB ? 'met' : 'NOT met'})`,
    );
  }
  const plainGet = g('plain get');
  for (const name of ['store get', 'store range']) {
    const r = g(name);
    console.log(`${name} (${dataPath}): CPU ${(r.cpuSeconds / plainGet.cpuSeconds).toFixed(2)}x of plain SDK get, throughput ${(plainGet.seconds / r.seconds).toFixed(2)}x`);
  }
  for (const op of ['put', 'get']) {
    const a = g(`aws-gcm ${op}`);
    const e = g(`engine ${op}`);
    console.log(`${op}: aws-gcm/engine throughput ${(e.seconds / a.seconds).toFixed(2)}, CPU ${(a.cpuSeconds / e.cpuSeconds).toFixed(2)}x (AWS S3EC V2 AES/GCM vs native ${CIPHER})`);
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
