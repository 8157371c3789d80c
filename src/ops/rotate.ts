/**
 * Master key rotation: moves every object of a store to a new master key by re-wrapping its data
 * key. Chunks are bound to the immutable header fields and the key commitment only (docs/format.md,
 * section 3.4), so an object's ciphertext stays valid behind a new header and only its first 132
 * bytes change:
 *
 *  - objects up to `rewriteBelow` bytes are downloaded and put back with the new header;
 *  - larger ones are rebuilt in place by a multipart upload whose first part is the new header plus
 *    the following ciphertext up to `firstPartSize` (S3 wants every part but the last to be at least
 *    5 MiB), and whose other parts are server-side copies (UploadPartCopy) of the object itself,
 *    pinned to the ETag that was read, so a 2 GiB object costs about 10 MiB of traffic.
 *
 * Protocol (idempotent, resumable by running it again):
 *  1. begin: the config gets the new key id first (the write key) and the bucket keys wrapped for it;
 *     the old key ids stay listed, so readers with either key work meanwhile;
 *  2. every object whose header names another key id is re-wrapped (one already under the new key
 *     is skipped: its header says so), a bounded number at a time;
 *  3. a second listing picks up objects written or replaced during the pass (by a writer still using
 *     the old key) until a listing brings nothing new;
 *  4. finish, only when no object failed: the config lists the new key alone.
 * An interruption anywhere leaves every object readable (an object is replaced atomically, or not at
 * all) and a config that still lists both keys; a multipart upload cut short is aborted, or left for
 * `s3cryptfs gc`.
 */
import {
  CONFIG_OBJECT_NAME, encodeConfig, HEADER_SIZE, headerKeyId, IntegrityError, openBucketKeys, parseConfig,
  plaintextSize, rewrapHeader, wipeBucketKeys, wrapBucketKeys, decodeHeader,
  type BucketConfig, type DerivedKeys, type KeyRing,
} from '../format/index.js';
import { listStoreObjects, type RawObject } from './objects.js';
import { forEachLimit } from './pool.js';
import type { OpsStore } from './store-port.js';

const MiB = 1024 * 1024;
/** S3's smallest part (all but the last). */
export const MIN_PART_SIZE = 5 * MiB;
/** S3's largest part, and largest single copy source. */
const MAX_PART_SIZE = 5 * 1024 * MiB;
const MAX_PARTS = 10_000;
export const DEFAULT_REWRITE_BELOW = 16 * MiB;
export const DEFAULT_COPY_PART_SIZE = 1024 * MiB;
const MAX_CATCH_UP_PASSES = 5;

export interface RotateOptions {
  store: OpsStore;
  bucket: string;
  /** Normalized prefix ("" or ending in "/"). */
  prefix: string;
  /** Keys objects may be under now (at least one listed in the config). */
  oldKeys: DerivedKeys[];
  /** The key to move to. */
  newKeys: DerivedKeys;
  /**
   * Scrypt parameters the new key was derived with, if it comes from a passphrase (a new passphrase
   * reuses the bucket's salt); `undefined` drops `kdf` from the config when rotation finishes.
   */
  newKdf?: BucketConfig['kdf'];
  /** Count what would be done; change nothing. */
  dryRun?: boolean;
  /** Objects handled at once (default 4). */
  concurrency?: number;
  /** Objects up to this size are rewritten whole (default 16 MiB; at least 5 MiB). */
  rewriteBelow?: number;
  /** Size of the first, uploaded, part of a rebuilt object (default and minimum 5 MiB). */
  firstPartSize?: number;
  /** Size of the server-side copy parts (default 1 GiB, between 5 MiB and 5 GiB). */
  copyPartSize?: number;
  /** Stop after this many objects were rotated in this run (tests: simulate an interruption). */
  limit?: number;
  signal?: AbortSignal;
  onEvent?: (e: RotateEvent) => void;
}

export type RotateEvent =
  | { type: 'begin'; total: number; nested: string[]; resumed: boolean }
  | { type: 'object'; key: string; size: number; action: ObjectAction }
  | { type: 'failure'; key: string; message: string }
  | { type: 'catch-up'; extra: number };

/** What happened to one object. */
export type ObjectAction = 'rewritten' | 'rebuilt' | 'already' | 'would-rewrite' | 'would-rebuild' | 'changed';

export interface RotateResult {
  /** Objects examined. */
  total: number;
  rewritten: number;
  rebuilt: number;
  /** Already under the new key. */
  already: number;
  /** Replaced by someone else while being rotated: examined again in the next pass. */
  changed: number;
  failures: { key: string; message: string }[];
  nested: string[];
  /** Config lists the new key alone. */
  finished: boolean;
  /** Bytes of objects rotated (or to rotate, in a dry run). */
  objectBytes: number;
  /** Estimated traffic of a dry run; actual counters are in store.stats. */
  plannedTransfer: number;
  dryRun: boolean;
}

interface Plan {
  rewriteBelow: number;
  firstPartSize: number;
  copyPartSize: number;
}

export class RotationError extends Error {
  override readonly name = 'RotationError';
  constructor(readonly code: 'NOT_INITIALIZED' | 'WRONG_KEY', message: string) {
    super(message);
  }
}

export async function rotateKeys(opts: RotateOptions): Promise<RotateResult> {
  const { store, bucket, prefix, newKeys } = opts;
  const plan = planOf(opts);
  const newId = newKeys.keyId.toString('hex');
  const ring: KeyRing = (id) => [newKeys, ...opts.oldKeys].find((k) => k.keyId.equals(id));
  const result: RotateResult = {
    total: 0, rewritten: 0, rebuilt: 0, already: 0, changed: 0, failures: [], nested: [], finished: false,
    objectBytes: 0, plannedTransfer: 0, dryRun: opts.dryRun === true,
  };

  let config = await readConfig(store, bucket, prefix);
  const resumed = config.keyIds[0] === newId;
  if (!resumed) {
    const begun = beginConfig(config, opts.oldKeys, newKeys, opts.newKdf);
    if (!opts.dryRun) await writeConfig(store, bucket, prefix, begun);
    config = begun;
  } else {
    // Resuming: the entry for the new key must be ours (authenticates under the new KEK).
    wipeBucketKeys(openBucketKeys(config, [newKeys]));
  }

  /** Key -> ETag (unquoted) of the version this run examined or wrote. */
  const seen = new Map<string, string>();
  const bare = (etag: string) => etag.replace(/^W\//, '').replace(/"/g, '');
  let budget = opts.limit ?? Infinity;
  const runPass = async (objects: RawObject[]) => {
    await forEachLimit(objects, opts.concurrency ?? 4, async (o) => {
      if (budget <= 0) return;
      budget--; // reserved before the work starts, so concurrent workers cannot overshoot the limit
      seen.set(o.key, bare(o.etag));
      result.total++;
      try {
        const { action, etag } = await rotateObject(store, bucket, o, ring, newKeys, plan, opts.dryRun === true, opts.signal);
        if (etag) seen.set(o.key, bare(etag)); // our own write is not news for the catch-up listing
        if (action !== 'rewritten' && action !== 'rebuilt') budget++;
        count(result, action, o, plan);
        opts.onEvent?.({ type: 'object', key: o.key, size: o.size, action });
      } catch (err) {
        budget++;
        if (opts.signal?.aborted) throw err;
        const message = err instanceof Error ? err.message : String(err);
        result.failures.push({ key: o.key, message });
        opts.onEvent?.({ type: 'failure', key: o.key, message });
      }
    }, opts.signal);
  };

  const first = await listStoreObjects(store, bucket, prefix);
  result.nested = first.nested;
  opts.onEvent?.({ type: 'begin', total: first.objects.length, nested: first.nested, resumed });
  await runPass(first.objects);
  if (opts.dryRun || budget <= 0 || result.failures.length > 0) return result;

  // Objects written or replaced meanwhile (a writer still on the old key, or one that changed under us).
  for (let pass = 0; ; pass++) {
    const again = await listStoreObjects(store, bucket, prefix);
    const fresh = again.objects.filter((o) => seen.get(o.key) !== bare(o.etag));
    if (fresh.length === 0) break;
    if (pass === MAX_CATCH_UP_PASSES) return result; // still moving: leave both keys listed, run again later
    opts.onEvent?.({ type: 'catch-up', extra: fresh.length });
    await runPass(fresh);
    if (result.failures.length > 0 || budget <= 0) return result;
  }

  await writeConfig(store, bucket, prefix, finishConfig(config, newId, opts.newKdf));
  result.finished = true;
  return result;
}

function planOf(opts: RotateOptions): Plan {
  const firstPartSize = opts.firstPartSize ?? MIN_PART_SIZE;
  const copyPartSize = opts.copyPartSize ?? DEFAULT_COPY_PART_SIZE;
  const rewriteBelow = opts.rewriteBelow ?? DEFAULT_REWRITE_BELOW;
  if (firstPartSize < MIN_PART_SIZE || firstPartSize > MAX_PART_SIZE) throw new RangeError('first part size must be between 5 MiB and 5 GiB');
  if (copyPartSize < MIN_PART_SIZE || copyPartSize > MAX_PART_SIZE) throw new RangeError('copy part size must be between 5 MiB and 5 GiB');
  if (rewriteBelow < firstPartSize || rewriteBelow > MAX_PART_SIZE) throw new RangeError('rewrite threshold must be between the first part size and 5 GiB');
  return { rewriteBelow, firstPartSize, copyPartSize };
}

function count(result: RotateResult, action: ObjectAction, o: RawObject, plan: Plan): void {
  switch (action) {
    case 'already': result.already++; return;
    case 'changed': result.changed++; return;
    case 'rewritten': result.rewritten++; break;
    case 'rebuilt': result.rebuilt++; break;
    case 'would-rewrite': result.rewritten++; result.plannedTransfer += 2 * o.size + HEADER_SIZE; break;
    case 'would-rebuild': result.rebuilt++; result.plannedTransfer += HEADER_SIZE + 2 * plan.firstPartSize; break;
  }
  result.objectBytes += o.size;
}

/** The config at the start of a rotation: new key first, bucket keys wrapped for it, old keys kept. */
export function beginConfig(config: BucketConfig, oldKeys: DerivedKeys[], newKeys: DerivedKeys, newKdf?: BucketConfig['kdf']): BucketConfig {
  const newId = newKeys.keyId.toString('hex');
  const listed = oldKeys.filter((k) => config.keyIds.includes(k.keyId.toString('hex')));
  if (listed.length === 0) {
    throw new RotationError('WRONG_KEY', `none of the given keys is listed in the bucket config (it lists ${config.keyIds.join(', ')})`);
  }
  const bucketKeys = openBucketKeys(config, listed);
  try {
    const next: BucketConfig = {
      ...config,
      keyIds: [newId, ...config.keyIds.filter((id) => id !== newId)],
      bucketKeys: { ...config.bucketKeys, [newId]: wrapBucketKeys(newKeys, bucketKeys) },
    };
    if (newKdf && !config.kdf) next.kdf = newKdf;
    return next;
  } finally {
    wipeBucketKeys(bucketKeys);
  }
}

/** The config once every object is under the new key: that key alone. */
export function finishConfig(config: BucketConfig, newId: string, newKdf?: BucketConfig['kdf']): BucketConfig {
  const next: BucketConfig = { ...config, keyIds: [newId], bucketKeys: { [newId]: config.bucketKeys[newId] } };
  if (newKdf) next.kdf = newKdf;
  else delete next.kdf;
  return next;
}

export async function readConfig(store: OpsStore, bucket: string, prefix: string): Promise<BucketConfig> {
  let body: Buffer;
  try {
    body = (await store.getObject(bucket, prefix + CONFIG_OBJECT_NAME)).body;
  } catch (err) {
    if ((err as { code?: string }).code === 'NoSuchKey') {
      throw new RotationError('NOT_INITIALIZED', `s3://${bucket}/${prefix}${CONFIG_OBJECT_NAME} not found: not an s3cryptfs store`);
    }
    throw err;
  }
  return parseConfig(body.toString('utf8'));
}

async function writeConfig(store: OpsStore, bucket: string, prefix: string, config: BucketConfig): Promise<void> {
  await store.put(bucket, prefix + CONFIG_OBJECT_NAME, encodeConfig(config), { contentType: 'application/json' });
}

/** Reads the first `n` bytes of a version, with its metadata. */
async function readHead(store: OpsStore, bucket: string, o: RawObject, n: number, signal?: AbortSignal) {
  const { stream, info } = await store.getStream(bucket, o.key, { start: 0, endExclusive: n, ifMatch: o.etag, signal });
  const parts: Buffer[] = [];
  for await (const piece of stream) parts.push(piece as Buffer);
  return { bytes: Buffer.concat(parts), info };
}

async function rotateObject(
  store: OpsStore, bucket: string, o: RawObject, ring: KeyRing, newKeys: DerivedKeys, plan: Plan, dryRun: boolean, signal?: AbortSignal,
): Promise<{ action: ObjectAction; etag?: string }> {
  if (o.size < HEADER_SIZE) throw new IntegrityError('HEADER_TRUNCATED', `object is shorter than a header (${o.size} bytes)`);
  const whole = o.size <= plan.rewriteBelow;
  // Small objects: the whole object in one GET. Large ones: the header and the rest of part 1.
  const { bytes, info } = await readHead(store, bucket, o, whole ? o.size : Math.min(o.size, plan.firstPartSize), signal);
  const header = bytes.subarray(0, HEADER_SIZE);
  if (headerKeyId(header).equals(newKeys.keyId)) return { action: 'already' };
  if (plaintextSize(o.size, decodeHeader(header).chunkSize) === null) {
    throw new IntegrityError('INVALID_SIZE', `${o.size} bytes is no valid object size: truncated or extended, left as it is`);
  }
  const newHeader = rewrapHeader(ring, header, newKeys);
  if (dryRun) return { action: whole ? 'would-rewrite' : 'would-rebuild' };
  const target = { metadata: info.metadata, contentType: info.contentType };

  if (whole) {
    newHeader.copy(bytes, 0);
    // No conditional overwrite in the store: re-check the version right before replacing it.
    if (!(await unchanged(store, bucket, o))) return { action: 'changed' };
    return { action: 'rewritten', etag: (await store.put(bucket, o.key, bytes, target)).etag };
  }

  const uploadId = await store.createMultipart(bucket, o.key, target);
  try {
    newHeader.copy(bytes, 0);
    const etags: { partNumber: number; etag: string }[] = [];
    etags.push({ partNumber: 1, etag: await store.uploadPart(bucket, o.key, uploadId, 1, bytes, { signal }) });
    const rest = o.size - plan.firstPartSize;
    const partSize = Math.max(plan.copyPartSize, Math.ceil(rest / (MAX_PARTS - 1)));
    for (let start = plan.firstPartSize, n = 2; start < o.size; start += partSize, n++) {
      if (signal?.aborted) throw signal.reason ?? new Error('aborted');
      const range = { start, endExclusive: Math.min(o.size, start + partSize) };
      etags.push({ partNumber: n, etag: await store.uploadPartCopy(bucket, o.key, uploadId, n, bucket, o.key, range, { sourceIfMatch: o.etag }) });
    }
    if (!(await unchanged(store, bucket, o))) {
      await store.abortMultipart(bucket, o.key, uploadId);
      return { action: 'changed' };
    }
    return { action: 'rebuilt', etag: (await store.completeMultipart(bucket, o.key, uploadId, etags)).etag };
  } catch (err) {
    await store.abortMultipart(bucket, o.key, uploadId).catch(() => {
      // Best effort: `s3cryptfs gc` reclaims what is left.
    });
    throw err;
  }
}

async function unchanged(store: OpsStore, bucket: string, o: RawObject): Promise<boolean> {
  const now = await store.head(bucket, o.key);
  return now !== null && now.etag.replace(/"/g, '') === o.etag.replace(/"/g, '');
}
