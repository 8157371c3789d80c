/** Random-access reader of one object version: chunk span -> cached or fetched chunks -> bytes. */
import { chunksForRange } from '../format/index.js';
import type { ChunkCache } from './chunk-cache.js';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import { ChunkFetcher } from './fetcher.js';
import { Readahead } from './readahead.js';
import type { ObjectReader, ReadOptions } from './types.js';

export class EngineReader implements ObjectReader {
  private readonly fetcher: ChunkFetcher;
  private readonly readahead: Readahead;
  private readonly chunkSize: number;
  private readonly cache: ChunkCache;
  private closed = false;

  constructor(ctx: EngineContext, path: string, key: string, readonly etag: string, readonly size: number) {
    this.fetcher = new ChunkFetcher(ctx, path, key, etag, size);
    // Prefetched chunks wait in the cache; a window larger than half of it would evict itself.
    const maxBytes = Math.min(ctx.readaheadMaxBytes, Math.floor(ctx.cache.maxBytes / 2));
    this.readahead = new Readahead(this.fetcher, { chunkSize: ctx.config.chunkSize, maxBytes });
    this.chunkSize = ctx.config.chunkSize;
    this.cache = ctx.cache;
  }

  /** Readahead window in chunks (for tests and metrics). */
  get readaheadWindow(): number {
    return this.readahead.window;
  }

  async read(offset: number, length: number, opts?: ReadOptions): Promise<Buffer> {
    const parts = await this.readParts(offset, length, opts);
    // Within one chunk (a kernel read of a whole aligned chunk, a small random read): a view of
    // the cached plaintext, no copy. Cached chunks are never written to, so sharing is safe.
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  async readParts(offset: number, length: number, opts?: ReadOptions): Promise<Buffer[]> {
    if (this.closed) throw new EngineError('CLOSED', 'reader is closed');
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new RangeError(`invalid read of ${length} bytes at ${offset}`);
    }
    opts?.signal?.throwIfAborted();
    const span = chunksForRange(offset, offset + length, this.size, this.chunkSize);
    if (!span) return [];
    const pending = this.fetcher.demand(span.first, span.last);
    this.readahead.onRead(offset, length, span.last);
    const chunks = await withSignal(Promise.all(pending), opts?.signal);
    const end = Math.min(offset + length, this.size);
    if (this.readahead.window > 0) this.release(offset, end, span.first, span.last);
    // Views of the cached plaintext: cached chunks are never written to, so sharing them is safe.
    const parts: Buffer[] = [];
    for (let i = 0; i < chunks.length; i++) {
      const chunkStart = (span.first + i) * this.chunkSize;
      const from = Math.max(offset, chunkStart) - chunkStart;
      const to = Math.min(end, chunkStart + chunks[i].length) - chunkStart;
      if (to > from) parts.push(chunks[i].subarray(from, to));
    }
    return parts;
  }

  /**
   * A sequential stream does not come back for what it read (the kernel's page cache holds it):
   * chunks it read whole leave the cache at once instead of filling it, so the chunks cached during
   * a big sequential read are mostly those prefetched and not read yet (lower peak memory).
   */
  private release(start: number, end: number, first: number, last: number): void {
    for (let i = first; i <= last; i++) {
      const chunkStart = i * this.chunkSize;
      if (start <= chunkStart && end >= Math.min(this.size, chunkStart + this.chunkSize)) this.cache.delete(this.fetcher.version, i);
    }
  }

  /**
   * What read() does, without assembling the bytes: the chunks are fetched (or joined), readahead
   * is driven, and the promise settles once they are cached. For prefetchers that discard the data.
   */
  async prefetch(offset: number, length: number): Promise<void> {
    if (this.closed) throw new EngineError('CLOSED', 'reader is closed');
    const span = chunksForRange(offset, offset + length, this.size, this.chunkSize);
    if (!span) return;
    const pending = this.fetcher.demand(span.first, span.last);
    this.readahead.onRead(offset, length, span.last);
    await Promise.all(pending);
  }

  close(): void {
    this.closed = true;
    this.readahead.reset();
  }
}

function withSignal<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason ?? new EngineError('ABORTED', 'read aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v); },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e); },
    );
  });
}
