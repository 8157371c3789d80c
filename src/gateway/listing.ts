/**
 * S3 listings over a store, in S3 order (by UTF-8 bytes of the key).
 *
 * Plain names: the backend listing is already in the right order, so one backend ListObjectsV2
 * answers each page; the store prefix is stripped, sizes are converted to plaintext, and the
 * store's own objects (config, multipart staging) are hidden.
 *
 * Encrypted names: the backend order is ciphertext order, so the gateway walks the plaintext tree
 * depth-first, sorting each directory it lists, and resumes after the last key it returned (the
 * continuation token). A page costs the listings of the directories on the path to the resume
 * point plus those it covers. Directory marker objects are not listed in this mode.
 */
import { CONFIG_OBJECT_NAME, DIR_INDEX_ROOT_NAME, plaintextSize } from '../format/index.js';
import type { EntryInfo } from '../engine/index.js';
import type { OpenBucket } from './buckets.js';
import { Errors } from './errors.js';

/** Paths under this top-level directory are the gateway's own (multipart staging, probes). */
export const GATEWAY_DIR = '.s3cryptfs-gateway';

export function isHiddenKey(key: string): boolean {
  return key === CONFIG_OBJECT_NAME || key === DIR_INDEX_ROOT_NAME || key === GATEWAY_DIR || key.startsWith(GATEWAY_DIR + '/');
}

export interface ListQuery {
  prefix: string;
  delimiter?: string;
  maxKeys: number;
  /** Return keys after this one (start-after, marker, or the position a token encodes). */
  after?: string;
  /** A backend continuation token (plain names only). */
  backendToken?: string;
}

export interface ListedObject {
  key: string;
  size: number;
  /** Backend ETag (the caller maps it to the client ETag). */
  backendEtag: string;
  lastModified: Date;
}

export interface ListResult {
  objects: ListedObject[];
  prefixes: string[];
  truncated: boolean;
  /** Continuation: a backend token or the last key/prefix covered. */
  next?: { backendToken: string } | { after: string };
}

/** Compares by Unicode code point, which is the order of the UTF-8 bytes. */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    const xs = x >= 0xd800 && x <= 0xdfff;
    const ys = y >= 0xd800 && y <= 0xdfff;
    // Surrogates (astral code points) sort after every BMP code unit in UTF-8 order.
    if (xs !== ys) return xs ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}

export async function listObjects(bucket: OpenBucket, q: ListQuery): Promise<ListResult> {
  if (q.maxKeys <= 0) return { objects: [], prefixes: [], truncated: false };
  return bucket.config.names === 'plain' ? listPlain(bucket, q) : listWalk(bucket, q);
}

async function listPlain(bucket: OpenBucket, q: ListQuery): Promise<ListResult> {
  const storePrefix = bucket.engine.prefix;
  const page = await bucket.store.list(bucket.spec.backendBucket, {
    prefix: storePrefix + q.prefix,
    delimiter: q.delimiter,
    maxKeys: Math.min(1000, q.maxKeys),
    startAfter: q.backendToken === undefined && q.after !== undefined ? storePrefix + q.after : undefined,
    continuationToken: q.backendToken,
  });
  const chunkSize = bucket.config.chunkSize;
  // With --aws-cse-* keys: S3EC objects get their plaintext sizes, instruction files are hidden.
  const cse = await bucket.engine.awsCseListing(page.objects);
  const objects: ListedObject[] = [];
  for (const o of page.objects) {
    const key = o.key.slice(storePrefix.length);
    if (!o.key.startsWith(storePrefix) || isHiddenKey(key) || cse?.skip.has(o.key)) continue;
    let size: number | null;
    if (key.endsWith('/')) size = 0; // directory marker (its body, if any, is the mount's attribute index)
    else size = cse?.sizes.get(o.key) ?? plaintextSize(o.size, chunkSize);
    if (size === null) continue; // not an object of this store
    objects.push({ key, size, backendEtag: o.etag, lastModified: o.lastModified });
  }
  const prefixes = page.prefixes.map((p) => p.slice(storePrefix.length)).filter((p) => !isHiddenKey(p.replace(/\/$/, '')));
  const result: ListResult = { objects, prefixes, truncated: page.nextContinuationToken !== undefined };
  if (page.nextContinuationToken) result.next = { backendToken: page.nextContinuationToken };
  return result;
}

interface DirEntry {
  /** Full key; directories end with "/". */
  key: string;
  file?: EntryInfo;
}

async function listDir(bucket: OpenBucket, dir: string): Promise<DirEntry[]> {
  const out: DirEntry[] = [];
  try {
    for await (const page of bucket.engine.listAll(dir)) {
      for (const f of page.files) if (!isHiddenKey(f.path)) out.push({ key: f.path, file: f });
      for (const d of page.dirs) if (!isHiddenKey(d.replace(/\/$/, ''))) out.push({ key: d });
    }
  } catch (err) {
    if ((err as { code?: string }).code === 'INVALID_PATH') return [];
    throw err;
  }
  return out.sort((a, b) => compareKeys(a.key, b.key));
}

async function listWalk(bucket: OpenBucket, q: ListQuery): Promise<ListResult> {
  const slash = q.prefix.lastIndexOf('/');
  const baseDir = slash < 0 ? '' : q.prefix.slice(0, slash + 1);
  const objects: ListedObject[] = [];
  const prefixes: string[] = [];
  let count = 0;
  let last: string | undefined;
  let truncated = false;
  const after = q.after;
  const emit = (key: string, file?: EntryInfo): boolean => {
    if (count >= q.maxKeys) {
      truncated = true;
      return false;
    }
    if (file) objects.push({ key, size: file.size, backendEtag: file.etag, lastModified: file.lastModified });
    else prefixes.push(key);
    count++;
    last = key;
    return true;
  };

  if (q.delimiter !== undefined && q.delimiter !== '/') {
    // Any other delimiter: walk everything below the prefix and group by the delimiter.
    const seen = new Set<string>();
    for await (const e of walk(bucket, baseDir, q.prefix, after)) {
      const rest = e.key.slice(q.prefix.length);
      const d = q.delimiter === '' ? -1 : rest.indexOf(q.delimiter);
      if (d >= 0) {
        const cp = q.prefix + rest.slice(0, d + q.delimiter.length);
        if (seen.has(cp) || (after !== undefined && compareKeys(cp, after) <= 0)) continue;
        seen.add(cp);
        if (!emit(cp)) break;
      } else if (!emit(e.key, e.file)) break;
    }
  } else if (q.delimiter === '/') {
    for (const e of await listDir(bucket, baseDir)) {
      if (!e.key.startsWith(q.prefix)) continue;
      if (after !== undefined && compareKeys(e.key, after) <= 0) continue;
      if (!emit(e.key, e.file)) break;
    }
  } else {
    for await (const e of walk(bucket, baseDir, q.prefix, after)) {
      if (!emit(e.key, e.file)) break;
    }
  }
  const result: ListResult = { objects, prefixes, truncated };
  if (truncated && last !== undefined) result.next = { after: last };
  return result;
}

/** Files below `dir` whose keys start with `prefix` and sort after `after`, in key order. */
async function* walk(bucket: OpenBucket, dir: string, prefix: string, after: string | undefined): AsyncGenerator<{ key: string; file: EntryInfo }> {
  for (const e of await listDir(bucket, dir)) {
    if (e.file) {
      if (e.key.startsWith(prefix) && (after === undefined || compareKeys(e.key, after) > 0)) yield { key: e.key, file: e.file };
      continue;
    }
    if (!(e.key.startsWith(prefix) || prefix.startsWith(e.key))) continue;
    // Every key below e.key sorts after it; the whole subtree is done when `after` is beyond it.
    if (after !== undefined && !after.startsWith(e.key) && compareKeys(after, e.key) > 0) continue;
    yield* walk(bucket, e.key, prefix, after);
  }
}

export function checkMaxKeys(raw: string | undefined): number {
  if (raw === undefined || raw === '') return 1000;
  if (!/^\d+$/.test(raw)) throw Errors.invalidArgument('Provided max-keys not an integer or within integer range', { ArgumentName: 'max-keys', ArgumentValue: raw });
  return Math.min(1000, Number(raw));
}
