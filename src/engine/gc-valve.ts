/**
 * A bound on garbage between V8's full GCs. The launcher's --initial-old-space-size=128 lets
 * streaming reads free their chunk Buffers in cheap scavenges (no full GC per 32 MiB read), but it
 * also lets V8 wait for ~96 MiB of longer-lived garbage before a full GC: random reads' cached
 * chunks once evicted, the objects of a big rsync or `ls -l`. This valve runs a full GC once the
 * chunk cache evicted `evictedBytes` or the JS heap grew `heapBytes` since the last one. Not on
 * Buffer memory as a whole: a streaming read's young chunks (freed by scavenges) would trip it; and
 * the heap's own slack is larger, as a streaming read's heap grows ~12 MiB between V8's own GCs
 * (a forced GC there costs more than it saves: measured 1.3 -> 2.3 CPU s/GiB).
 */
import v8 from 'node:v8';
import vm from 'node:vm';

export interface GcValveOptions {
  /** Chunk bytes evicted from the cache that trigger a full GC. Default 12 MiB. */
  evictedBytes?: number;
  /** JS heap growth over its size after the last full GC that triggers one. Default 32 MiB. */
  heapBytes?: number;
  /** How often memory is looked at. Default 250 ms. */
  intervalMs?: number;
  /**
   * Runs after each of the valve's GCs: the mount passes its binding's releaseFreeMemory(), as the
   * Buffer memory a GC frees otherwise stays resident in malloc's free lists (measured after
   * `ls -l` of 10,000 files and rsync of 5,000: 35 MiB of the mount's 224 MiB RSS).
   */
  afterGc?: () => void;
}

export interface GcValve {
  /** Full GCs the valve ran. */
  readonly runs: number;
  stop(): void;
}

/** Starts the valve (its timer does not keep the process alive). Null where gc cannot be exposed. */
export function startGcValve(stats: { cacheEvictedBytes: number }, opts: GcValveOptions = {}): GcValve | null {
  if (process.env.S3CRYPTFS_GC_VALVE === '0') return null;
  const gc = exposeGc();
  if (!gc) return null;
  const evictedSlack = opts.evictedBytes ?? 12 * 1024 * 1024;
  const heapSlack = opts.heapBytes ?? 32 * 1024 * 1024;
  const heap = () => v8.getHeapStatistics().used_heap_size;
  let heapBase = heap();
  let evictedBase = stats.cacheEvictedBytes;
  const valve = { runs: 0, stop: () => clearInterval(timer) };
  const timer = setInterval(() => {
    const h = heap();
    if (h < heapBase) heapBase = h; // V8 collected on its own
    if (stats.cacheEvictedBytes - evictedBase >= evictedSlack || h - heapBase >= heapSlack) {
      gc();
      opts.afterGc?.();
      valve.runs++;
      heapBase = heap();
      evictedBase = stats.cacheEvictedBytes;
    }
  }, opts.intervalMs ?? 250);
  timer.unref();
  return valve;
}

/** V8's gc(), exposed at run time where node was not started with --expose-gc; null where it cannot be. */
export function exposeGc(): (() => void) | null {
  const existing = (globalThis as { gc?: () => void }).gc;
  if (typeof existing === 'function') return existing;
  try {
    // As Node's documentation of v8.setFlagsFromString shows: exposes gc() to new contexts.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}
