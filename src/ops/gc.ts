/**
 * Cleanup of multipart uploads that crashed writers (or an interrupted rotation) left behind: S3
 * keeps, and bills, their parts until the upload is aborted. Uploads started more than `olderThanMs`
 * ago are aborted; younger ones may belong to a writer that is still running and are kept.
 */
import type { MultipartUploadInfo } from '../store/store.js';
import type { OpsStore } from './store-port.js';

export interface GcOptions {
  store: OpsStore;
  bucket: string;
  /** Only uploads whose key starts with this ("" for the whole bucket). */
  prefix: string;
  /** Minimum age of an upload to abort. */
  olderThanMs: number;
  dryRun?: boolean;
  now?: Date;
}

export interface GcUpload extends MultipartUploadInfo {
  ageMs: number;
}

export interface GcResult {
  /** Uploads in progress under the prefix. */
  found: number;
  /** Aborted (or, in a dry run, to abort). */
  reclaimed: GcUpload[];
  /** Too young to tell from a running writer. */
  kept: GcUpload[];
  errors: { key: string; uploadId: string; message: string }[];
  dryRun: boolean;
}

export async function gcUploads(opts: GcOptions): Promise<GcResult> {
  const now = (opts.now ?? new Date()).getTime();
  const uploads = await opts.store.listMultipartUploads(opts.bucket, opts.prefix || undefined);
  const result: GcResult = { found: uploads.length, reclaimed: [], kept: [], errors: [], dryRun: opts.dryRun === true };
  for (const u of uploads) {
    const entry: GcUpload = { ...u, ageMs: Math.max(0, now - u.initiated.getTime()) };
    if (entry.ageMs < opts.olderThanMs) {
      result.kept.push(entry);
      continue;
    }
    if (opts.dryRun) {
      result.reclaimed.push(entry);
      continue;
    }
    try {
      await opts.store.abortMultipart(opts.bucket, u.key, u.uploadId);
      result.reclaimed.push(entry);
    } catch (err) {
      result.errors.push({ key: u.key, uploadId: u.uploadId, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return result;
}

/** "90s", "30m", "24h", "7d", "1w" or a number of seconds -> milliseconds; NaN when not a duration. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?$/i.exec(text.trim());
  if (!m) return NaN;
  const unit = { s: 1, m: 60, h: 3600, d: 86400, w: 604800 }[(m[2] ?? 's').toLowerCase() as 's'];
  return Math.round(Number(m[1]) * unit * 1000);
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
