/**
 * Sequential-access detection and readahead for one reader. A read that starts at most 1 MiB (or
 * half a window) past the furthest end so far, or at most a window before it (reordered concurrent
 * reads filling a gap), keeps the stream sequential; when the reader gets within half a window of
 * the end of what was requested, the window doubles (from 2 chunks up to maxBytes). Small windows
 * are requested as ranged GETs (at most maxInFlight at a time); from STREAM_MIN_CHUNKS on, a
 * sequential reader is served by one streaming GET (SequentialStream) that every read extends to a
 * window (at most streamWindowBytes) ahead of it: one request and one decode per chunk instead of many GETs whose per-request
 * cost shows on both ends. A random read resets it all (the stream stops after what it promised).
 */
import type { ChunkFetcher, SequentialStream } from './fetcher.js';

const MiB = 1024 * 1024;
/** Windows of at least this many chunks are served by a stream (smaller ones by ranged GETs). */
export const STREAM_MIN_CHUNKS = 8;
/** Byte span of one sequential stream's GET; a reader that gets past it is served by the next one. */
const STREAM_SPAN_BYTES = 256 * MiB;
/**
 * Largest window of a stream. A stream needs no deep window (the socket buffers ahead of it), and
 * chunks decoded far ahead outlive V8's young-generation collections, so their memory is only
 * given back by full GCs: bench:mount measured 4.4 CPU s/GiB reading with an 8 MiB window against
 * 2.6-3.0 with 2 MiB, at no gain in MB/s.
 */
const STREAM_WINDOW_BYTES = 2 * MiB;

export interface ReadaheadOptions {
  chunkSize: number;
  maxBytes: number;
  maxInFlight?: number;
  /** Smallest prefetch request (default 1 MiB). */
  minRequestBytes?: number;
  /** Largest prefetch request (default 4 MiB). */
  maxRequestBytes?: number;
  /** Largest window once a stream serves the reader (default 2 MiB, at most maxBytes). */
  streamWindowBytes?: number;
}

/** The part of ChunkFetcher readahead uses (tests hand in a recorder). */
export type PrefetchTarget = Pick<ChunkFetcher, 'chunkTotal' | 'prefetch'> & Partial<Pick<ChunkFetcher, 'openStream'>>;

export class Readahead {
  private lastEnd = 0;
  private windowChunks = 0;
  /** Chunk index (exclusive) up to which chunks have been requested. */
  private requestedUntil = 0;
  private readonly queue: Array<[number, number]> = [];
  private active = 0;
  private stream: Pick<SequentialStream, 'until' | 'open' | 'extend' | 'cancel'> | null = null;
  private readonly maxChunks: number;
  private readonly maxStreamChunks: number;
  private readonly minRequestChunks: number;
  private readonly maxRequestChunks: number;
  private readonly maxInFlight: number;
  private readonly tolerance: number;
  private readonly chunkSize: number;

  constructor(private readonly fetcher: PrefetchTarget, opts: ReadaheadOptions) {
    this.chunkSize = opts.chunkSize;
    const chunks = (bytes: number) => Math.max(1, Math.floor(bytes / opts.chunkSize));
    this.maxChunks = Math.floor(opts.maxBytes / opts.chunkSize);
    this.maxStreamChunks = Math.min(this.maxChunks, Math.max(STREAM_MIN_CHUNKS, Math.floor((opts.streamWindowBytes ?? STREAM_WINDOW_BYTES) / opts.chunkSize)));
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
    // Ahead by at most `tolerance` (half a window once streaming: the kernel's concurrent readahead
    // requests arrive out of order), or behind the furthest end (a reordered read filling a gap)
    // by at most a window: still the same stream.
    const window = this.windowChunks * this.chunkSize;
    const ahead = Math.max(this.tolerance, window / 2);
    const behind = Math.max(2 * this.tolerance, window);
    if (offset > this.lastEnd + ahead || offset < this.lastEnd - behind) {
      this.reset();
      this.lastEnd = end;
      return;
    }
    this.lastEnd = Math.max(this.lastEnd, end);
    if (this.maxChunks < 1) return;
    const next = lastChunk + 1;
    const total = this.fetcher.chunkTotal;
    if (next >= total) return;
    const requestedAhead = this.requestedUntil - next;
    // A stream is extended at every read, so it grows while the reader keeps up (ahead < a window).
    const grow = this.windowChunks === 0 || requestedAhead < (this.stream ? this.windowChunks : Math.ceil(this.windowChunks / 2));
    // Ranged GETs are requested by the half window; a stream is kept a whole window ahead at every read.
    if (!grow && !this.stream) return;
    if (grow) this.windowChunks = Math.min(this.stream ? this.maxStreamChunks : this.maxChunks, this.windowChunks === 0 ? 2 : this.windowChunks * 2);
    const from = Math.max(next, this.requestedUntil);
    const to = Math.min(total, next + this.windowChunks);
    if (from >= to) return;
    this.requestedUntil = to;
    if (this.fetcher.openStream && this.windowChunks >= STREAM_MIN_CHUNKS) {
      this.streamTo(from, to);
      return;
    }
    const step = this.requestChunks;
    for (let a = from; a < to; a += step) this.queue.push([a, Math.min(to, a + step) - 1]);
    this.pump();
  }

  /** Has chunks [from, to) streamed: the current stream is extended when it can be, else a new one starts. */
  private streamTo(from: number, to: number): void {
    let s = this.stream;
    // A small gap (the reader skipped ahead within tolerance) is streamed over: cheaper than a new GET.
    if (s?.open && from >= s.until && from - s.until <= this.maxChunks) from = s.extend(to);
    if (from >= to) return;
    // Not contiguous, or past the end of the stream's range: the old stream finishes what it promised.
    s?.cancel();
    const span = Math.max(this.maxChunks, Math.floor(STREAM_SPAN_BYTES / this.chunkSize));
    s = this.fetcher.openStream!(from, from + span - 1, to);
    this.stream = s;
  }

  /** Forgets the sequential stream; queued (not yet started) prefetches are dropped. */
  reset(): void {
    this.stream?.cancel();
    this.stream = null;
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
