/**
 * Sequential-access detection and readahead for one reader. A read that starts at most 1 MiB past
 * the furthest end so far, or at most a window before it (reordered concurrent reads filling a gap),
 * keeps the stream sequential; when the reader gets within half a window of the end of what was requested,
 * the window doubles (from 2 chunks up to maxBytes) and the next stretch is requested. Requests
 * grow with the window (half of it, between minRequestBytes and maxRequestBytes), at most
 * maxInFlight at a time: large windows become a few large (streamed) GETs in parallel instead of
 * many small ones, which is what costs CPU per byte on both ends. A random read resets it all.
 */
import type { ChunkFetcher } from './fetcher.js';

const MiB = 1024 * 1024;

export interface ReadaheadOptions {
  chunkSize: number;
  maxBytes: number;
  maxInFlight?: number;
  /** Smallest prefetch request (default 1 MiB). */
  minRequestBytes?: number;
  /** Largest prefetch request (default 4 MiB). */
  maxRequestBytes?: number;
}

/** The part of ChunkFetcher readahead uses (tests hand in a recorder). */
export type PrefetchTarget = Pick<ChunkFetcher, 'chunkTotal' | 'prefetch'>;

export class Readahead {
  private lastEnd = 0;
  private windowChunks = 0;
  /** Chunk index (exclusive) up to which chunks have been requested. */
  private requestedUntil = 0;
  private readonly queue: Array<[number, number]> = [];
  private active = 0;
  private readonly maxChunks: number;
  private readonly minRequestChunks: number;
  private readonly maxRequestChunks: number;
  private readonly maxInFlight: number;
  private readonly tolerance: number;
  private readonly chunkSize: number;

  constructor(private readonly fetcher: PrefetchTarget, opts: ReadaheadOptions) {
    this.chunkSize = opts.chunkSize;
    const chunks = (bytes: number) => Math.max(1, Math.floor(bytes / opts.chunkSize));
    this.maxChunks = Math.floor(opts.maxBytes / opts.chunkSize);
    this.minRequestChunks = chunks(opts.minRequestBytes ?? MiB);
    this.maxRequestChunks = Math.max(this.minRequestChunks, chunks(opts.maxRequestBytes ?? 4 * MiB));
    this.maxInFlight = opts.maxInFlight ?? 4;
    // The kernel sends up to 1 MiB per read and several at once; they may arrive slightly out of order.
    this.tolerance = Math.max(opts.chunkSize, MiB);
  }

  /** Current window in chunks (0 when not sequential). */
  get window(): number {
    return this.windowChunks;
  }

  /** Size in chunks of the requests a stretch is split into at the current window. */
  get requestChunks(): number {
    return Math.min(this.maxRequestChunks, Math.max(this.minRequestChunks, Math.floor(this.windowChunks / 2)));
  }

  /** Notes a read of [offset, offset+length) whose last chunk is lastChunk; may start prefetches. */
  onRead(offset: number, length: number, lastChunk: number): void {
    const end = offset + length;
    // Ahead by at most `tolerance`, or behind the furthest end (a reordered read filling a gap) by
    // at most a window: still the same stream.
    const behind = Math.max(2 * this.tolerance, this.windowChunks * this.chunkSize);
    if (offset > this.lastEnd + this.tolerance || offset < this.lastEnd - behind) {
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
    const step = this.requestChunks;
    for (let a = from; a < to; a += step) this.queue.push([a, Math.min(to, a + step) - 1]);
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
