/**
 * Scrub: read and authenticate every object of a store (or a random sample, or one directory),
 * a bounded number at a time, and report every failure with its S3 key.
 */
import { randomInt } from 'node:crypto';
import type { Engine } from '../engine/index.js';
import { forEachLimit } from './pool.js';

export interface ScrubOptions {
  /** Plaintext directory to start from ("" for the whole store). */
  dir: string;
  /** Verify only this many objects, chosen at random. */
  sample?: number;
  concurrency?: number;
  signal?: AbortSignal;
  /** After each object: objects done, objects to check, bytes read so far. */
  onProgress?: (done: number, total: number, bytes: number) => void;
}

export interface ScrubFailure {
  path: string;
  /** The S3 key of the object. */
  key: string;
  /** IntegrityError code, or the error's name. */
  code: string;
  message: string;
  /** The error itself, for the caller to classify. */
  error: unknown;
}

export interface ScrubResult {
  listed: number;
  checked: number;
  ok: number;
  bytes: number;
  failures: ScrubFailure[];
}

export async function scrub(engine: Engine, opts: ScrubOptions): Promise<ScrubResult> {
  const paths: string[] = [];
  for await (const page of engine.listAll(opts.dir, { recursive: true })) {
    for (const f of page.files) paths.push(f.path);
  }
  const chosen = opts.sample !== undefined && opts.sample < paths.length ? sample(paths, opts.sample) : paths;
  const result: ScrubResult = { listed: paths.length, checked: 0, ok: 0, bytes: 0, failures: [] };
  await forEachLimit(chosen, opts.concurrency ?? 8, async (path) => {
    try {
      result.bytes += (await engine.verify(path)).size;
      result.ok++;
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      const e = err as { code?: unknown; name?: string; message?: string };
      result.failures.push({
        path,
        key: safeKey(engine, path),
        code: typeof e.code === 'string' ? e.code : (e.name ?? 'Error'),
        message: e.message ?? String(err),
        error: err,
      });
    }
    result.checked++;
    opts.onProgress?.(result.checked, chosen.length, result.bytes);
  }, opts.signal);
  result.failures.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return result;
}

function safeKey(engine: Engine, path: string): string {
  try {
    return engine.objectKey(path);
  } catch {
    return '';
  }
}

/** `n` distinct elements chosen uniformly (partial Fisher-Yates), in their original order. */
export function sample<T>(items: T[], n: number): T[] {
  const idx = items.map((_, i) => i);
  for (let i = 0; i < n; i++) {
    const j = i + randomInt(idx.length - i);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, n).sort((a, b) => a - b).map((i) => items[i]);
}
