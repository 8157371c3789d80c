/**
 * Sequential-access detection and readahead for one reader. A read that continues where the
 * previous one ended (give or take a chunk, so slightly reordered concurrent reads still count)
 * keeps the stream sequential; when the reader gets within half a window of the end of what was
 * prefetched, the window doubles (from 2 chunks up to maxBytes) and the next stretch is requested
 * as ranged GETs of about requestBytes, at most maxInFlight at a time. A random read resets it all.
 */
import type { ChunkFetcher } from './fetcher.js';

export interface ReadaheadOptions {
  chunkSize: number;
  maxBytes: number;
  maxInFlight?: number;
  requestBytes?: number;
}

export class Readahead {
  private lastEnd = 0;
  private windowChunks = 0;
  /** Chunk index (exclusive) up to which chunks have been requested. */
  private requestedUntil = 0;
  private readonly queue: Array<[number, number]> = [];
  private active = 0;
  private readonly maxChunks: number;
  private readonly requestChunks: number;
  private readonly maxInFlight: number;
  private readonly tolerance: number;

  constructor(private readonly fetcher: ChunkFetcher, opts: ReadaheadOptions) {
    this.maxChunks = Math.floor(opts.maxBytes / opts.chunkSize);
    this.requestChunks = Math.max(1, Math.floor((opts.requestBytes ?? 1024 * 1024) / opts.chunkSize));
    this.maxInFlight = opts.maxInFlight ?? 4;
    this.tolerance = Math.max(opts.chunkSize, 128 * 1024);
  }

  /** Current window in chunks (0 when not sequential). */
  get window(): number {
    return this.windowChunks;
  }

  /** Notes a read of [offset, offset+length) whose last chunk is lastChunk; may start prefetches. */
  onRead(offset: number, length: number, lastChunk: number): void {
    const end = offset + length;
    if (Math.abs(offset - this.lastEnd) > this.tolerance) {
      this.reset();
      this.lastEnd = end;
      return;
    }
    this.lastEnd = Math.max(this.lastEnd, end);
    if (this.maxChunks < 1) return;
    const next = lastChunk + 1;
    const total = this.fetcher.chunkTotal;
    if (next >= total) return;
    const ahead = this.requestedUntil - next;
    if (this.windowChunks > 0 && ahead >= Math.ceil(this.windowChunks / 2)) return;
    this.windowChunks = Math.min(this.maxChunks, this.windowChunks === 0 ? 2 : this.windowChunks * 2);
    const from = Math.max(next, this.requestedUntil);
    const to = Math.min(total, next + this.windowChunks);
    if (from >= to) return;
    this.requestedUntil = to;
    for (let a = from; a < to; a += this.requestChunks) this.queue.push([a, Math.min(to, a + this.requestChunks) - 1]);
    this.pump();
  }

  /** Forgets the sequential stream; queued (not yet started) prefetches are dropped. */
  reset(): void {
    this.windowChunks = 0;
    this.requestedUntil = 0;
    this.queue.length = 0;
  }

  private pump(): void {
    while (this.active < this.maxInFlight && this.queue.length > 0) {
      const [a, b] = this.queue.shift()!;
      this.active++;
      this.fetcher.prefetch(a, b).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }
}
