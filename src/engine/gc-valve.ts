/**
 * A bound on garbage between V8's full GCs. The launcher's --initial-old-space-size=128 lets
 * streaming reads free their chunk Buffers in cheap scavenges (no full GC per 32 MiB read), but it
 * also lets V8 wait for ~96 MiB of longer-lived garbage before a full GC: random reads' cached
 * chunks once evicted, the objects of a big rsync or `ls -l`. This valve runs a full GC when the
 * JS heap plus the chunk bytes the cache evicted have grown `slackBytes` since the last one. Not
 * Buffer memory as a whole: a streaming read's young chunks (freed by scavenges) would trip it.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

export interface GcValveOptions {
  /** Growth over the level after the last full GC that triggers one. Default 12 MiB. */
  slackBytes?: number;
  /** How often memory is looked at. Default 250 ms. */
  intervalMs?: number;
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
  const slack = opts.slackBytes ?? 12 * 1024 * 1024;
  const level = () => v8.getHeapStatistics().used_heap_size + stats.cacheEvictedBytes;
  let base = level();
  const valve = { runs: 0, stop: () => clearInterval(timer) };
  const timer = setInterval(() => {
    const now = level();
    if (now < base) base = now; // V8 collected on its own
    else if (now - base >= slack) {
      gc();
      valve.runs++;
      base = level();
    }
  }, opts.intervalMs ?? 250);
  timer.unref();
  return valve;
}

function exposeGc(): (() => void) | null {
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
