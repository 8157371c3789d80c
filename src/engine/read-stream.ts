/**
 * Verified streaming reads (get, cat, verify): one streaming GET, chunks opened as they arrive and
 * emitted in order, so memory stays at about two chunks whatever the object size. A whole-object
 * stream carries its own header; a range stream gets the header from the shared header cache.
 */
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  chunkCount, chunkPlainLength, chunksForRange, ciphertextRangeOfChunks, HEADER_SIZE, IntegrityError,
  openObjectHeader, plaintextSize, TAG_SIZE, type ObjectCipher,
} from '../format/index.js';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import { ChunkFetcher, openFromQueue } from './fetcher.js';
import { ByteQueue } from './byte-queue.js';
import { mapReadError } from './read-errors.js';
import type { StoreObjectInfo } from './store-port.js';

export interface ReadStreamOptions {
  /** First plaintext byte (default 0). */
  start?: number;
  /** End of the range, exclusive (default: end of object). */
  end?: number;
  /** Whole-object streams: receives the object's info from the GET's response (callers skip a HEAD). */
  onInfo?: (info: StoreObjectInfo) => void;
  /** Range streams: the version (plaintext size, backend ETag) the caller already stat'ed; skips the HEAD. */
  known?: { size: number; etag: string };
}

/** Buffered on each side of the decoder, so the network and decryption overlap. */
const STREAM_BUFFER = 256 * 1024;

export function openReadStream(ctx: EngineContext, path: string, key: string, opts: ReadStreamOptions = {}): Readable {
  const ranged = (opts.start ?? 0) > 0 || opts.end !== undefined;
  const cancel = new AbortController();
  const decoder = new ChunkDecoder(ctx, path);
  decoder.once('close', () => cancel.abort());
  const run = ranged ? streamRange(ctx, path, key, opts, decoder, cancel.signal) : streamWhole(ctx, path, key, decoder, cancel.signal, opts.onInfo);
  run.catch((err: unknown) => decoder.destroy(err as Error));
  return decoder;
}

async function streamWhole(
  ctx: EngineContext, path: string, key: string, decoder: ChunkDecoder, signal: AbortSignal, onInfo?: (info: StoreObjectInfo) => void,
): Promise<void> {
  const { stream, info } = await getStream(ctx, path, key, { signal });
  let size: number;
  try {
    size = checkedSize(ctx, path, info.size);
    onInfo?.(info);
  } catch (err) {
    stream.destroy();
    throw err;
  }
  decoder.begin({ cipher: null, first: 0, last: chunkCount(size, ctx.config.chunkSize) - 1, size, start: 0, end: size });
  await pipeline(stream, decoder);
}

async function streamRange(
  ctx: EngineContext, path: string, key: string, opts: ReadStreamOptions, decoder: ChunkDecoder, signal: AbortSignal,
): Promise<void> {
  let known = opts.known;
  if (!known) {
    const info = await ctx.store.head(ctx.bucket, key);
    if (!info) throw new EngineError('NOT_FOUND', `no such file: "${path}"`);
    known = { size: checkedSize(ctx, path, info.size), etag: info.etag };
  }
  const { size, etag } = known;
  const start = Math.max(0, opts.start ?? 0);
  const end = Math.min(size, opts.end ?? size);
  const span = chunksForRange(start, end, size, ctx.config.chunkSize);
  if (!span) {
    decoder.end();
    return;
  }
  const range = ciphertextRangeOfChunks(span, size, ctx.config.chunkSize);
  if (span.first === 0) {
    // The range starts in the first chunk: one GET from byte 0 carries the header too.
    const { stream } = await getStream(ctx, path, key, { start: 0, endExclusive: range.endExclusive, ifMatch: etag, signal });
    decoder.begin({ cipher: null, first: 0, last: span.last, size, start, end });
    await pipeline(stream, decoder);
    return;
  }
  // The header (usually cached by version) and the range GET in parallel, not one after the other.
  const cipherP = new ChunkFetcher(ctx, path, key, etag, size).cipher();
  cipherP.catch(() => {});
  const { stream } = await getStream(ctx, path, key, { start: range.start, endExclusive: range.endExclusive, ifMatch: etag, signal });
  let cipher: ObjectCipher;
  try {
    cipher = await cipherP;
  } catch (err) {
    stream.destroy();
    throw err;
  }
  decoder.begin({ cipher, first: span.first, last: span.last, size, start, end });
  await pipeline(stream, decoder);
}

async function getStream(ctx: EngineContext, path: string, key: string, opts: Parameters<EngineContext['store']['getStream']>[2]) {
  try {
    return await ctx.store.getStream(ctx.bucket, key, opts);
  } catch (err) {
    throw mapReadError(err, path);
  }
}

function checkedSize(ctx: EngineContext, path: string, cipherSize: number): number {
  const size = plaintextSize(cipherSize, ctx.config.chunkSize);
  if (size === null) throw new IntegrityError('INVALID_SIZE', `"${path}" is ${cipherSize} bytes long, which no object can be`);
  return size;
}

interface DecodePlan {
  /** null: the stream starts with the object header. */
  cipher: ObjectCipher | null;
  first: number;
  last: number;
  /** Plaintext size of the object. */
  size: number;
  /** Plaintext range to emit, end exclusive. */
  start: number;
  end: number;
}

/** Ciphertext in, plaintext of [start, end) out; every chunk authenticated at its index. */
class ChunkDecoder extends Transform {
  private readonly queue = new ByteQueue();
  private plan: DecodePlan = { cipher: null, first: 0, last: -1, size: 0, start: 0, end: 0 };
  private cipher: ObjectCipher | null = null;
  private headerInStream = false;
  private index = 0;
  private chunkTotal = 0;
  private scratch: Buffer | null = null;
  private readonly chunkSize: number;

  constructor(private readonly ctx: EngineContext, private readonly path: string) {
    super({ readableHighWaterMark: STREAM_BUFFER, writableHighWaterMark: STREAM_BUFFER });
    this.chunkSize = ctx.config.chunkSize;
  }

  /** Sets what the coming ciphertext is; called once, before any data is written. */
  begin(plan: DecodePlan): void {
    this.plan = plan;
    this.cipher = plan.cipher;
    this.headerInStream = plan.cipher === null;
    this.index = plan.first;
    this.chunkTotal = chunkCount(plan.size, this.chunkSize);
  }

  override _transform(data: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.ctx.stats.bytesFetched += data.length;
      this.queue.push(data);
      if (!this.cipher) {
        if (this.queue.length < HEADER_SIZE) return cb();
        this.cipher = openObjectHeader(this.ctx.ring, this.queue.take(HEADER_SIZE));
        if (this.cipher.chunkSize !== this.chunkSize) {
          throw new IntegrityError('BAD_CHUNK_SIZE', `"${this.path}" has chunk size ${this.cipher.chunkSize}, the bucket uses ${this.chunkSize}`);
        }
      }
      const { last, size, start, end } = this.plan;
      while (this.index <= last) {
        const sealedLen = chunkPlainLength(this.index, size, this.chunkSize) + TAG_SIZE;
        if (this.queue.length < sealedLen) break;
        // With the AEAD addon: opened from the pieces into unzeroed memory (node:crypto zero-fills its
        // output and needs the pieces joined first); without it, joined in one scratch buffer.
        this.scratch ??= Buffer.allocUnsafe(this.chunkSize + TAG_SIZE);
        const plain = openFromQueue(this.cipher, this.index, this.chunkTotal, this.queue, sealedLen, this.scratch);
        this.ctx.stats.bytesDecrypted += plain.length;
        const chunkStart = this.index * this.chunkSize;
        const from = Math.max(start, chunkStart) - chunkStart;
        const to = Math.min(end, chunkStart + plain.length) - chunkStart;
        if (to > from) this.push(from === 0 && to === plain.length ? plain : plain.subarray(from, to));
        this.index++;
      }
      if (this.index > last && this.queue.length > 0) throw new IntegrityError('EXTENDED', `"${this.path}" has data after its last chunk`);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.index <= this.plan.last || (this.headerInStream && !this.cipher)) {
      cb(new IntegrityError('TRUNCATED', `"${this.path}" ended early (stream stopped before chunk ${this.index})`, this.index));
      return;
    }
    cb();
  }
}
