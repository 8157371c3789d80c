/**
 * Fetches and decrypts chunks of one object version with ranged GETs. Every GET carries If-Match
 * with the version's ETag, so a replaced object is noticed instead of mixing versions. Chunks land
 * in the shared cache; chunks already in flight are joined rather than fetched again.
 */
import {
  chunkCount, chunkPlainLength, ciphertextRangeOfChunks, HEADER_SIZE, IntegrityError, openObjectHeader,
  TAG_SIZE, type ObjectCipher,
} from '../format/index.js';
import type { Readable } from 'node:stream';
import { versionId } from './chunk-cache.js';
import type { EngineContext } from './context.js';
import { mapReadError } from './read-errors.js';
import { ByteQueue } from './byte-queue.js';
import { streamPieces } from './stream-pieces.js';
import { nativeChunkRunPort } from '../../native-bindings/aead/index.js';

/**
 * Takes sealed chunk i (len bytes) off the queue and opens it: with the AEAD addon straight from the
 * pieces into a fresh buffer (no joined copy, no zero-filled output); else joined in `scratch` and
 * opened by node:crypto (openChunk keeps no reference to its input, so one scratch buffer will do).
 */
export function openFromQueue(cipher: ObjectCipher, i: number, chunkTotal: number, queue: ByteQueue, len: number, scratch: Buffer): Buffer {
  const port = nativeChunkRunPort();
  return port ? cipher.openChunkPieces(port, i, chunkTotal, queue.takeViews(len), len) : cipher.openChunk(i, chunkTotal, queue.take(len, scratch));
}

/** Prefetch runs at least this long are streamed rather than buffered whole. */
const STREAM_MIN_CHUNKS = 8;

interface Deferred<T> {
  promise: Promise<T>;
  resolve(v: T): void;
  reject(e: unknown): void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  promise.catch(() => {}); // a fetch nobody waits for any more must not be an unhandled rejection
  return { promise, resolve, reject };
}

export class ChunkFetcher {
  readonly version: string;
  readonly chunkTotal: number;

  constructor(
    private readonly ctx: EngineContext,
    readonly path: string,
    readonly key: string,
    readonly etag: string,
    /** Plaintext size. */
    readonly size: number,
  ) {
    this.version = versionId(key, etag);
    this.chunkTotal = chunkCount(size, ctx.config.chunkSize);
  }

  /** True when the chunk is neither cached nor being fetched. */
  isMissing(index: number): boolean {
    return !this.ctx.cache.has(this.version, index) && !this.ctx.cache.pending(this.version, index);
  }

  /**
   * Promises of chunks first..last in order. Cached chunks resolve at once, chunks in flight are
   * joined, missing ones are fetched in contiguous runs (one GET each). Fetches start synchronously.
   */
  demand(first: number, last: number): Promise<Buffer>[] {
    const { cache, stats } = this.ctx;
    const out: Promise<Buffer>[] = [];
    let runStart = -1;
    const flush = (end: number) => {
      if (runStart < 0) return;
      out.push(...this.fetchRun(runStart, end));
      runStart = -1;
    };
    for (let i = first; i <= last; i++) {
      const hit = cache.get(this.version, i);
      if (hit) {
        flush(i - 1);
        stats.cacheHits++;
        out.push(Promise.resolve(hit));
        continue;
      }
      stats.cacheMisses++;
      const pending = cache.pending(this.version, i);
      if (pending) {
        flush(i - 1);
        stats.inflightJoins++;
        out.push(pending);
        continue;
      }
      if (runStart < 0) runStart = i;
    }
    flush(last);
    return out;
  }

  /**
   * Fetches whichever of first..last are missing (for readahead); resolves when they are cached.
   * Runs of at least STREAM_MIN_CHUNKS are streamed: each chunk is opened and becomes readable as
   * soon as its bytes arrive, so one large GET serves a reader from its first chunk on.
   */
  async prefetch(first: number, last: number): Promise<void> {
    const runs: Promise<Buffer>[] = [];
    let runStart = -1;
    for (let i = first; i <= last + 1; i++) {
      if (i <= last && this.isMissing(i)) {
        if (runStart < 0) runStart = i;
        continue;
      }
      if (runStart >= 0) {
        this.ctx.stats.chunksPrefetched += i - runStart;
        const stream = i - runStart >= STREAM_MIN_CHUNKS && (runStart > 0 || !!this.ctx.cache.header(this.version));
        runs.push(...(stream ? this.streamRun(runStart, i - 1) : this.fetchRun(runStart, i - 1)));
        runStart = -1;
      }
    }
    await Promise.allSettled(runs);
  }

  /** The opened header of this version, fetched alone if no GET from offset 0 is under way. */
  cipher(): Promise<ObjectCipher> {
    const cached = this.ctx.cache.header(this.version);
    if (cached) return cached;
    const d = deferred<ObjectCipher>();
    this.ctx.cache.setHeader(this.version, d.promise);
    // openHeader throws on a bad header: that must reject d (not escape as an unhandled rejection
    // and leave every reader of this version waiting forever).
    this.getRange(0, HEADER_SIZE).then((body) => this.openHeader(body)).then(d.resolve, d.reject);
    return d.promise;
  }

  /** Promises for chunks a..b, registered in the cache so concurrent readers wait on them. */
  private trackChunks(a: number, b: number): Deferred<Buffer>[] {
    const waiting: Deferred<Buffer>[] = [];
    for (let i = a; i <= b; i++) {
      const d = deferred<Buffer>();
      this.ctx.cache.track(this.version, i, d.promise);
      waiting.push(d);
    }
    return waiting;
  }

  /** Starts one GET for chunks a..b; includes the header when it is not known yet and a == 0. */
  private fetchRun(a: number, b: number): Promise<Buffer>[] {
    const { cache } = this.ctx;
    const chunkSize = this.ctx.config.chunkSize;
    const waiting = this.trackChunks(a, b);
    let header: Deferred<ObjectCipher> | null = null;
    if (a === 0 && !cache.header(this.version)) {
      header = deferred<ObjectCipher>();
      cache.setHeader(this.version, header.promise);
    }
    const range = ciphertextRangeOfChunks({ first: a, last: b }, this.size, chunkSize);
    const start = header ? 0 : range.start;
    const run = async () => {
      const body = await this.getRange(start, range.endExclusive);
      let cipher: ObjectCipher;
      if (header) {
        cipher = this.openHeader(body.subarray(0, HEADER_SIZE));
        header.resolve(cipher);
      } else {
        cipher = await this.cipher();
      }
      this.openSealed(cipher, a, b, body, range.start - start, (i, plain) => {
        this.ctx.stats.bytesDecrypted += plain.length;
        cache.set(this.version, i, plain);
        waiting[i - a].resolve(plain);
      });
    };
    run().catch((err: unknown) => {
      header?.reject(err);
      for (const d of waiting) d.reject(err);
    });
    return waiting.map((d) => d.promise);
  }

  /**
   * One streaming GET for chunks a..b (a > 0 or header known). Chunks resolve in order as they
   * arrive. If the body breaks off, the chunks not received yet are fetched again with a buffered
   * (resuming, retrying) GET; an integrity failure rejects them all.
   */
  private streamRun(a: number, b: number): Promise<Buffer>[] {
    const { cache, stats } = this.ctx;
    const chunkSize = this.ctx.config.chunkSize;
    const waiting = this.trackChunks(a, b);
    let next = a;
    const deliver = (i: number, plain: Buffer) => {
      stats.bytesDecrypted += plain.length;
      cache.set(this.version, i, plain);
      waiting[i - a].resolve(plain);
    };
    const run = async () => {
      const cipher = await this.cipher();
      const stream = await this.openSealedStream(a, b);
      const queue = new ByteQueue();
      const scratch = Buffer.allocUnsafe(chunkSize + TAG_SIZE);
      try {
        for await (const piece of streamPieces(stream)) {
          stats.bytesFetched += piece.length;
          queue.push(piece);
          while (next <= b) {
            const len = chunkPlainLength(next, this.size, chunkSize) + TAG_SIZE;
            if (queue.length < len) break;
            deliver(next, openFromQueue(cipher, next, this.chunkTotal, queue, len, scratch));
            next++;
          }
        }
      } catch (err) {
        if (err instanceof IntegrityError) throw err;
        stream.destroy();
      }
      if (next > b) return;
      // Broken off (or short): the rest with the buffered GET, which resumes and retries.
      const body = await this.fetchSealed(next, b);
      this.openSealed(cipher, next, b, body, 0, (i, plain) => {
        deliver(i, plain);
        next = i + 1;
      });
    };
    run().catch((err: unknown) => {
      for (let i = next; i <= b; i++) waiting[i - a].reject(err);
    });
    return waiting.map((d) => d.promise);
  }

  /**
   * A sequential reader's stream: one GET for chunks a..last, decoded in order but never past the
   * chunks it was asked for (`until`, exclusive; see SequentialStream.extend), so it holds at most
   * one chunk of undecoded bytes and the socket does the rest of the buffering (backpressure).
   */
  openStream(a: number, last: number, until: number): SequentialStream {
    return new SequentialStream(this, this.ctx, a, Math.min(last, this.chunkTotal - 1), until);
  }

  /** @internal for SequentialStream: a tracked promise for chunk i. */
  track(i: number): Deferred<Buffer> {
    return this.trackChunks(i, i)[0];
  }

  /** Buffered GET of chunks a..b's ciphertext (resumes and retries). */
  fetchSealed(a: number, b: number): Promise<Buffer> {
    const range = ciphertextRangeOfChunks({ first: a, last: b }, this.size, this.ctx.config.chunkSize);
    return this.getRange(range.start, range.endExclusive);
  }

  /** Streaming GET of chunks a..b's ciphertext (counted, errors mapped like getRange's). */
  async openSealedStream(a: number, b: number): Promise<Readable> {
    const range = ciphertextRangeOfChunks({ first: a, last: b }, this.size, this.ctx.config.chunkSize);
    this.ctx.stats.rangeRequests++;
    try {
      return (await this.ctx.store.getStream(this.ctx.bucket, this.key, { start: range.start, endExclusive: range.endExclusive, ifMatch: this.etag })).stream;
    } catch (err) {
      throw mapReadError(err, this.path);
    }
  }

  /**
   * Authenticates and decrypts chunks a..b, sealed back to back in `body` from `offset`, handing
   * each to `each` in order; chunks `wanted` refuses are skipped undecrypted.
   */
  openSealed(
    cipher: ObjectCipher, a: number, b: number, body: Buffer, offset: number,
    each: (i: number, plain: Buffer) => void, wanted: (i: number) => boolean = () => true,
  ): void {
    const chunkSize = this.ctx.config.chunkSize;
    let pos = offset;
    for (let i = a; i <= b; i++) {
      const len = chunkPlainLength(i, this.size, chunkSize) + TAG_SIZE;
      if (wanted(i)) {
        const port = nativeChunkRunPort();
        const sealed = body.subarray(pos, pos + len);
        each(i, port ? cipher.openChunkPieces(port, i, this.chunkTotal, [sealed], len) : cipher.openChunk(i, this.chunkTotal, sealed));
      }
      pos += len;
    }
  }

  private async getRange(start: number, endExclusive: number): Promise<Buffer> {
    const { store, bucket, stats } = this.ctx;
    stats.rangeRequests++;
    let body: Buffer;
    try {
      body = await store.getRange(bucket, this.key, start, endExclusive, { ifMatch: this.etag });
    } catch (err) {
      throw mapReadError(err, this.path);
    }
    stats.bytesFetched += body.length;
    if (body.length !== endExclusive - start) {
      throw new IntegrityError('INVALID_SIZE', `short read of "${this.path}": asked for ${endExclusive - start} bytes at ${start}, got ${body.length}`);
    }
    return body;
  }

  private openHeader(bytes: Buffer): ObjectCipher {
    const cipher = openObjectHeader(this.ctx.ring, bytes);
    if (cipher.chunkSize !== this.ctx.config.chunkSize) {
      throw new IntegrityError('BAD_CHUNK_SIZE', `object "${this.path}" has chunk size ${cipher.chunkSize}, the bucket uses ${this.ctx.config.chunkSize}`);
    }
    return cipher;
  }
}

/**
 * One streaming GET serving a sequential reader. Chunks [next, until) are registered in the cache
 * as in flight, so the reader's reads (and other readers) join them instead of fetching again; the
 * stream decodes up to `until` and then waits for extend(), which the readahead calls as the reader
 * moves on. cancel() (a seek, a close) lets it finish the chunks already promised and stop. A body
 * that breaks off is finished with a buffered, retrying GET; an integrity failure rejects the
 * chunks promised and ends the stream.
 */
export class SequentialStream {
  /** Next chunk to decode. */
  private next: number;
  private _until: number;
  private done = false;
  private cancelled = false;
  private wake: (() => void) | null = null;
  private readonly promised = new Map<number, Deferred<Buffer>>();

  constructor(
    private readonly fetcher: ChunkFetcher,
    private readonly ctx: EngineContext,
    readonly first: number,
    /** Last chunk of the GET's range. */
    readonly last: number,
    until: number,
  ) {
    this.next = first;
    this._until = first;
    this.extend(until);
    this.run().catch((err: unknown) => this.fail(err));
  }

  /** Chunks below this are promised (exclusive). */
  get until(): number {
    return this._until;
  }

  /** True while extend() can still promise more chunks. */
  get open(): boolean {
    return !this.done && !this.cancelled && this._until <= this.last;
  }

  /** Promises chunks up to `to` (exclusive, capped at the range's end); returns where it now stops. */
  extend(to: number): number {
    if (this.done || this.cancelled) return this._until;
    const end = Math.min(to, this.last + 1);
    for (let i = this._until; i < end; i++) {
      // Chunks already cached or fetched by someone else are passed over, not decoded twice.
      if (this.fetcher.isMissing(i)) this.promised.set(i, this.fetcher.track(i));
    }
    if (end > this._until) {
      this.ctx.stats.chunksPrefetched += end - this._until;
      this._until = end;
    }
    this.wake?.();
    return this._until;
  }

  /** Stops after the chunks already promised. */
  cancel(): void {
    this.cancelled = true;
    this.wake?.();
  }

  private async run(): Promise<void> {
    const { ctx, fetcher } = this;
    const chunkSize = ctx.config.chunkSize;
    const cipher = await fetcher.cipher();
    const stream = await fetcher.openSealedStream(this.first, this.last);
    const queue = new ByteQueue();
    const scratch = Buffer.allocUnsafe(chunkSize + TAG_SIZE);
    try {
      outer: for await (const piece of streamPieces(stream)) {
        ctx.stats.bytesFetched += piece.length;
        queue.push(piece);
        for (;;) {
          if (this.next > this.last) break outer;
          while (this.next >= this._until) {
            if (this.cancelled) break outer;
            await new Promise<void>((resolve) => { this.wake = resolve; });
            this.wake = null;
          }
          const len = chunkPlainLength(this.next, fetcher.size, chunkSize) + TAG_SIZE;
          if (queue.length < len) break;
          const d = this.promised.get(this.next);
          if (d) this.deliver(this.next, d, openFromQueue(cipher, this.next, fetcher.chunkTotal, queue, len, scratch));
          else queue.takeViews(len); // cached or fetched by someone else meanwhile: skipped
          this.next++;
        }
      }
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      // Broken off: finished below.
    } finally {
      stream.destroy();
    }
    // From here on nothing new is promised; what was promised and not received comes by a buffered GET.
    this.done = true;
    const from = this.next;
    const to = this._until - 1;
    if (from > to || this.promised.size === 0) return;
    const body = await fetcher.fetchSealed(from, to);
    fetcher.openSealed(cipher, from, to, body, 0, (i, plain) => this.deliver(i, this.promised.get(i)!, plain), (i) => this.promised.has(i));
  }

  private deliver(i: number, d: Deferred<Buffer>, plain: Buffer): void {
    this.ctx.stats.bytesDecrypted += plain.length;
    this.ctx.cache.set(this.fetcher.version, i, plain);
    this.promised.delete(i);
    d.resolve(plain);
  }

  private fail(err: unknown): void {
    this.done = true;
    for (const d of this.promised.values()) d.reject(err);
    this.promised.clear();
  }
}
