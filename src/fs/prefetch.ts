/**
 * Sequential prefetch for files read through FUSE. The kernel issues readahead requests several at
 * a time and they reach us out of order, which looks random to a reader that expects each read to
 * continue the previous one. This detects sequential runs with a tolerance as large as the window,
 * and reads ahead of them in order on a reader of its own. What it reads lands in the engine's
 * shared chunk cache, where the reads the kernel asks for find it (or join the fetch in flight).
 */
import type { ObjectReader } from '../engine/types.js';

export interface PrefetchOptions {
  /** How far ahead of the furthest read to keep fetched. */
  aheadBytes: number;
  /** Size of each prefetch read. */
  stepBytes: number;
  /** Sequential reads in a row before prefetching starts. */
  minRun: number;
}

export const DEFAULT_PREFETCH: PrefetchOptions = { aheadBytes: 4 * 1024 * 1024, stepBytes: 1024 * 1024, minRun: 3 };

export class SequentialPrefetch {
  private frontier = 0;
  private next = 0;
  private run = 0;
  private running = false;
  private stopped = false;
  private reader: Promise<ObjectReader> | null = null;

  constructor(
    private readonly size: number,
    private readonly openReader: () => Promise<ObjectReader>,
    private readonly opts: PrefetchOptions = DEFAULT_PREFETCH,
  ) {}

  /** Notes a read the kernel asked for. */
  onRead(offset: number, length: number): void {
    if (this.stopped) return;
    const end = offset + length;
    const slack = this.opts.aheadBytes;
    if (offset <= this.frontier + slack && end >= this.frontier - slack) {
      this.run++;
      this.frontier = Math.max(this.frontier, end);
    } else {
      this.run = 1;
      this.frontier = end;
      this.next = end;
    }
    if (this.run >= this.opts.minRun) this.pump();
  }

  close(): void {
    this.stopped = true;
    void this.reader?.then((r) => r.close(), () => {});
    this.reader = null;
  }

  private pump(): void {
    if (this.running || this.stopped) return;
    this.running = true;
    void (async () => {
      try {
        this.reader ??= this.openReader();
        const reader = await this.reader;
        for (;;) {
          if (this.stopped) return;
          if (this.next < this.frontier) this.next = this.frontier;
          const limit = Math.min(this.size, this.frontier + this.opts.aheadBytes);
          if (this.next >= limit) return;
          const len = Math.min(this.opts.stepBytes, limit - this.next);
          const at = this.next;
          this.next += len;
          // The bytes land in the shared chunk cache; prefetch() spares assembling a copy nobody reads.
          await (reader.prefetch ? reader.prefetch(at, len) : reader.read(at, len));
        }
      } catch {
        // Best effort: the real read reports any error.
        this.stopped = true;
      } finally {
        this.running = false;
      }
    })();
  }
}
