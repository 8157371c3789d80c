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
import { ChunkFetcher } from './fetcher.js';
import { mapReadError } from './read-errors.js';

export interface ReadStreamOptions {
  /** First plaintext byte (default 0). */
  start?: number;
  /** End of the range, exclusive (default: end of object). */
  end?: number;
}

export function openReadStream(ctx: EngineContext, path: string, key: string, opts: ReadStreamOptions = {}): Readable {
  const ranged = (opts.start ?? 0) > 0 || opts.end !== undefined;
  const cancel = new AbortController();
  const out = new Transform({
    transform(chunk: Buffer, _enc, cb) { cb(null, chunk); },
  });
  out.once('close', () => cancel.abort());
  const run = ranged ? streamRange(ctx, path, key, opts, out, cancel.signal) : streamWhole(ctx, path, key, out, cancel.signal);
  run.catch((err: unknown) => out.destroy(err as Error));
  return out;
}

async function streamWhole(ctx: EngineContext, path: string, key: string, out: Transform, signal: AbortSignal): Promise<void> {
  const { stream, info } = await getStream(ctx, path, key, { signal });
  const size = checkedSize(ctx, path, info.size);
  const decoder = new ChunkDecoder(ctx, path, null, 0, chunkCount(size, ctx.config.chunkSize) - 1, size, 0, size, true);
  await pipeline(stream, decoder, out);
}

async function streamRange(
  ctx: EngineContext, path: string, key: string, opts: ReadStreamOptions, out: Transform, signal: AbortSignal,
): Promise<void> {
  const info = await ctx.store.head(ctx.bucket, key);
  if (!info) throw new EngineError('NOT_FOUND', `no such file: "${path}"`);
  const size = checkedSize(ctx, path, info.size);
  const start = Math.max(0, opts.start ?? 0);
  const end = Math.min(size, opts.end ?? size);
  const span = chunksForRange(start, end, size, ctx.config.chunkSize);
  if (!span) {
    out.end();
    return;
  }
  const fetcher = new ChunkFetcher(ctx, path, key, info.etag, size);
  const cipher = await fetcher.cipher();
  const range = ciphertextRangeOfChunks(span, size, ctx.config.chunkSize);
  const { stream } = await getStream(ctx, path, key, { start: range.start, endExclusive: range.endExclusive, ifMatch: info.etag, signal });
  await pipeline(stream, new ChunkDecoder(ctx, path, cipher, span.first, span.last, size, start, end, false), out);
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

/** Ciphertext in, plaintext of [start, end) out; every chunk authenticated at its index. */
class ChunkDecoder extends Transform {
  private readonly queue = new ByteQueue();
  private index: number;
  private readonly chunkTotal: number;
  private readonly chunkSize: number;

  constructor(
    private readonly ctx: EngineContext,
    private readonly path: string,
    private cipher: ObjectCipher | null,
    first: number,
    private readonly last: number,
    private readonly size: number,
    private readonly rangeStart: number,
    private readonly rangeEnd: number,
    private readonly headerInStream: boolean,
  ) {
    super();
    this.index = first;
    this.chunkSize = ctx.config.chunkSize;
    this.chunkTotal = chunkCount(size, this.chunkSize);
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
      while (this.index <= this.last) {
        const sealedLen = chunkPlainLength(this.index, this.size, this.chunkSize) + TAG_SIZE;
        if (this.queue.length < sealedLen) break;
        const plain = this.cipher.openChunk(this.index, this.chunkTotal, this.queue.take(sealedLen));
        this.ctx.stats.bytesDecrypted += plain.length;
        const chunkStart = this.index * this.chunkSize;
        const from = Math.max(this.rangeStart, chunkStart) - chunkStart;
        const to = Math.min(this.rangeEnd, chunkStart + plain.length) - chunkStart;
        if (to > from) this.push(from === 0 && to === plain.length ? plain : plain.subarray(from, to));
        this.index++;
      }
      if (this.index > this.last && this.queue.length > 0) throw new IntegrityError('EXTENDED', `"${this.path}" has data after its last chunk`);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.index <= this.last || (this.headerInStream && !this.cipher)) {
      cb(new IntegrityError('TRUNCATED', `"${this.path}" ended early (stream stopped before chunk ${this.index})`, this.index));
      return;
    }
    cb();
  }
}

/** FIFO of buffers; take() copies only when a request spans pieces. */
class ByteQueue {
  private pieces: Buffer[] = [];
  private head = 0;
  length = 0;

  push(b: Buffer): void {
    if (b.length === 0) return;
    this.pieces.push(b);
    this.length += b.length;
  }

  take(n: number): Buffer {
    const first = this.pieces[this.head];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.head++;
      else this.pieces[this.head] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const piece = this.pieces[this.head];
        const use = Math.min(piece.length, n - filled);
        piece.copy(out, filled, 0, use);
        filled += use;
        if (use === piece.length) this.head++;
        else this.pieces[this.head] = piece.subarray(use);
      }
    }
    this.length -= n;
    if (this.head > 64) {
      this.pieces = this.pieces.slice(this.head);
      this.head = 0;
    }
    return out;
  }
}
