/**
 * A client's PutObject stored as one backend PutObject, encrypted as the body arrives.
 *
 * When the object's attributes are known before the body (Content-MD5 sent, or no MD5 ETag wanted),
 * the ciphertext is streamed to the backend while the client is still sending, with a known
 * Content-Length (the ciphertext size follows from the plaintext length). The final sealed chunk
 * is produced only after the payload passed every check (x-amz-content-sha256, Content-MD5,
 * checksums, length), so a body that fails one leaves the backend request short of its
 * Content-Length; it is then cut, and S3 stores nothing (docs/gateway.md, "Streamed PUTs").
 *
 * When the attributes depend on the body (the MD5 ETag of a body sent without Content-MD5; S3
 * metadata travels in the request head), the body is encrypted as it arrives and sent once whole.
 *
 * Either way the ciphertext is also kept in one buffer: a streamed PUT that fails on the network
 * or with a 5xx after the whole body was verified is retried from it (put() retries again).
 */
import type { Engine } from '../engine/index.js';
import { sharedPartPool } from '../engine/writer.js';
import { nativeChunkRunPort } from '../../native-bindings/aead/index.js';
import { ciphertextSize, sealedRunLength, type ChunkRunPort } from '../format/index.js';
import { StoreError } from '../store/errors.js';
import type { ObjectStore } from '../store/store.js';
import { Errors } from './errors.js';
import type { Payload } from './payload.js';

const MiB = 1024 * 1024;
const CONTENT_TYPE = 'application/octet-stream';
/** Runs with less plaintext are sealed on the event loop: the thread hop would cost more (as the engine writer does). */
const SYNC_RUN_BELOW = 64 * 1024;
/** Plaintext gathered before a run is sealed (and sent): fewer thread hops, still streaming. */
const RUN_BYTES = 512 * 1024;
/** Source buffers per run: the addon's limit is 32. */
const MAX_RUN_PIECES = 30;

export interface SinglePutOptions {
  engine: Engine;
  store: ObjectStore;
  /** Backend bucket. */
  bucket: string;
  path: string;
  payload: Payload;
  /** Known before the body, or computed from the verified payload (its MD5 when wantMd5 was set). */
  attributes: Record<string, string> | (() => Record<string, string>);
  ifNoneMatch?: '*';
}

export interface SinglePutResult {
  /** Backend ETag. */
  etag: string;
  /** Plaintext bytes. */
  size: number;
  streamed: boolean;
}

/** Null when the engine writes another format (AWS CSE): the caller uses the engine's writer. */
export async function singlePut(o: SinglePutOptions): Promise<SinglePutResult | null> {
  const up = o.engine.singlePutUpload(o.path);
  if (!up) return null;
  const length = o.payload.length!;
  const total = ciphertextSize(length, o.engine.config.chunkSize);
  // Whole MiB from the shared pool (ciphertext only), so objects of similar sizes reuse buffers.
  const pooled = total >= MiB ? Math.ceil(total / MiB) * MiB : 0;
  const backing = pooled ? (sharedPartPool.take(pooled) ?? Buffer.allocUnsafe(pooled)) : Buffer.allocUnsafe(total);
  const buf = backing.subarray(0, total);
  let filled = 0;
  const keep = (pieces: Buffer[]): Buffer => {
    const start = filled;
    for (const p of pieces) {
      if (filled + p.length > total) throw Errors.internal('ciphertext longer than its computed size');
      filled += p.copy(buf, filled);
    }
    return buf.subarray(start, filled);
  };
  const { sealer } = up;
  const payload = o.payload;
  const port = nativeChunkRunPort();
  let verified = false;
  async function* sealedInline(): AsyncGenerator<Buffer> {
    for await (const piece of payload) {
      const out = sealer.push(piece);
      if (out.length > 0) yield keep(out);
    }
    // The payload's iteration ends only after its last check passed: now the final chunk may go.
    const last = keep(sealer.finish());
    if (filled !== total) throw Errors.incompleteBody();
    verified = true;
    yield last;
  }
  /**
   * With the AEAD addon: runs of whole chunks sealed on the libuv threadpool straight into buf (no
   * per-chunk allocation, no copy), while the event loop receives and hashes the next pieces. The
   * body's pieces are held as they arrived (views, never copied) until a run of at least RUN_BYTES
   * can go: fewer thread hops, each of which waits for a thread to be scheduled. One run in flight;
   * the last chunk is always held back (it may be the final one).
   */
  async function* sealedRuns(port: ChunkRunPort): AsyncGenerator<Buffer> {
    const cipher = sealer.objectCipher;
    const size = cipher.chunkSize;
    let held: Buffer[] = [];
    let heldLen = 0;
    let index = 0;
    // `src` is held here too, so the run's plaintext stays referenced until it settles.
    let inflight: { done: Promise<void>; out: Buffer; src: Buffer[] } | null = null;
    const run = (plain: number, final: boolean): { done: Promise<void>; out: Buffer; src: Buffer[] } => {
      // The first `plain` held bytes are the run's source; the rest stays held.
      const src: Buffer[] = [];
      let need = plain;
      while (need > 0) {
        const p = held[0];
        if (p.length <= need) {
          src.push(p);
          held.shift();
          need -= p.length;
        } else {
          src.push(p.subarray(0, need));
          held[0] = p.subarray(need);
          need = 0;
        }
      }
      heldLen -= plain;
      // The addon takes at most 32 source buffers; many tiny pieces are joined (a copy, rare).
      if (src.length > MAX_RUN_PIECES) src.splice(0, src.length, Buffer.concat(src));
      const length = sealedRunLength(plain, size, final);
      if (filled + length > total) throw Errors.internal('ciphertext longer than its computed size');
      const out = buf.subarray(filled, filled + length);
      filled += length;
      const first = index;
      index += final ? Math.max(1, Math.ceil(plain / size)) : plain / size;
      if (plain < SYNC_RUN_BELOW) {
        cipher.sealRunSync(port, first, final, src, [out]);
        return { done: Promise.resolve(), out, src };
      }
      return { done: cipher.sealRun(port, first, final, src, [out]), out, src };
    };
    try {
      buf.set(cipher.header, 0);
      filled = cipher.header.length;
      yield buf.subarray(0, filled);
      for await (const piece of payload) {
        if (piece.length === 0) continue;
        held.push(piece);
        heldLen += piece.length;
        // Enough bytes, or enough pieces (TLS hands a body over in 16 KiB records).
        if (heldLen <= RUN_BYTES && held.length < MAX_RUN_PIECES / 2) continue;
        // Whole chunks, all but the last (it may turn out to be the final one).
        const chunks = Math.floor((heldLen - 1) / size);
        if (chunks === 0) continue;
        if (inflight) {
          await inflight.done;
          yield inflight.out;
        }
        inflight = run(chunks * size, false);
      }
      if (inflight) {
        await inflight.done;
        yield inflight.out;
        inflight = null;
      }
      // The payload passed its last check: now the rest, final chunk included, may go.
      const last = run(heldLen, true);
      await last.done;
      if (filled !== total) throw Errors.incompleteBody();
      verified = true;
      yield last.out;
    } finally {
      // A run still in flight reads its source: let it settle before returning.
      await inflight?.done.catch(() => {});
      held = [];
    }
  }
  const sealed = port ? () => sealedRuns(port) : sealedInline;
  const stats = o.engine.stats;
  const opts = { contentType: CONTENT_TYPE, ifNoneMatch: o.ifNoneMatch };
  try {
    let etag: string;
    let streamed = false;
    if (typeof o.attributes !== 'function' && o.store.streamsPuts) {
      const metadata = up.metadata(o.attributes);
      streamed = true;
      try {
        ({ etag } = await o.store.putStreaming(o.bucket, up.key, total, sealed(), { ...opts, metadata }));
      } catch (err) {
        if (!verified || !retryable(err)) throw err;
        ({ etag } = await o.store.put(o.bucket, up.key, buf, { ...opts, metadata }));
      }
    } else {
      for await (const _ of sealed()) {
        // encrypted into buf as it arrives
      }
      const attributes = typeof o.attributes === 'function' ? o.attributes() : o.attributes;
      ({ etag } = await o.store.put(o.bucket, up.key, buf, { ...opts, metadata: up.metadata(attributes) }));
    }
    stats.bytesEncrypted += length;
    stats.singlePutUploads++;
    stats.bytesUploaded += total;
    return { etag, size: length, streamed };
  } finally {
    // Every request that read buf has settled (a cut one was destroyed).
    if (pooled) sharedPartPool.give(backing);
  }
}

/** Failures a second attempt may cure: no answer, or a server-side one. A 4xx (412 included) is final. */
function retryable(err: unknown): boolean {
  if (!(err instanceof StoreError)) return false;
  const s = err.status;
  return s === undefined || s >= 500 || s === 408 || s === 429;
}
