/**
 * The engine: encrypted objects addressed by plaintext paths. Ties together the config check,
 * path encoding, readers, writers, listings and server-side copies.
 */
import type { Readable } from 'node:stream';
import {
  CONFIG_OBJECT_NAME, encodeConfig, IntegrityError, newObjectCipher, ObjectSealer, openBucketKeys, parseConfig, plaintextSize,
  type BucketConfig, type DirIndex, type DerivedKeys, type KeyRing,
} from '../format/index.js';
import { isStoreError } from '../store/errors.js';
import { attributesMetadata, readAttributes } from './attributes.js';
import { AwsCse, type AwsCseOptions, type CseFacts } from './aws-cse/index.js';
import { ChunkCache } from './chunk-cache.js';
import { DIR_CONTENT_TYPE, dirObjectKey, readDirAttributes, readDirObject, writeDirAttributes, writeDirIndex, type DirObject } from './dir-index.js';
import type { EngineContext, EngineWarning } from './context.js';
import { EngineError } from './errors.js';
import { listPage, listPages, type ListOptions } from './listing.js';
import { normalizePrefix, PathCodec } from './paths.js';
import { openReadStream, type ReadStreamOptions } from './read-stream.js';
import { EngineReader } from './reader.js';
import { newStats, type EngineStats } from './stats.js';
import type { EngineStore, StoreObjectInfo } from './store-port.js';
import type { ListPage, ObjectReader, ObjectStat, ObjectWriter, WriteOptions } from './types.js';
import { EngineWriter, PartPool } from './writer.js';

const MiB = 1024 * 1024;
export const DEFAULT_CACHE_BYTES = 32 * MiB;
export const DEFAULT_PART_SIZE = 8 * MiB;
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * 1024 * MiB;
export const DEFAULT_UPLOAD_CONCURRENCY = 4;
export const DEFAULT_READAHEAD_MAX_BYTES = 8 * MiB;
const OBJECT_CONTENT_TYPE = 'application/octet-stream';

export interface EngineOptions {
  store: EngineStore;
  bucket: string;
  /** Key prefix inside the bucket ("" for the whole bucket). */
  prefix: string;
  /** Keys new objects are written with; their key id must be listed in the bucket config. */
  keys: DerivedKeys;
  /** Further keys objects may have been written with (key rotation). */
  readKeys?: DerivedKeys[];
  /** Decrypted-chunk cache size shared by all readers (default 32 MiB; 0 disables it). */
  cacheBytes?: number;
  /** Multipart part size in bytes (default 8 MiB, at least 5 MiB). */
  partSize?: number;
  /** Parts uploaded in parallel per writer (default 4). */
  uploadConcurrency?: number;
  /**
   * Finished uploads' part buffers kept for reuse by later ones, in a pool of this engine's own
   * (whatever it holds stays resident). Default: the process-wide pool of 64 MiB.
   */
  partPoolBytes?: number;
  /** Largest readahead window (default 8 MiB; 0 disables readahead). */
  readaheadMaxBytes?: number;
  /** Skips loading the config object when the caller already has it. */
  config?: BucketConfig;
  /** Receives entries a listing skipped. */
  onWarning?: (w: EngineWarning) => void;
  /** AWS S3 Encryption Client objects alongside ours (docs/aws-cse.md); needs a plain-name store. */
  awsCse?: AwsCseOptions;
}

export interface CopyOptions {
  /** Replaces the attributes; by default the source's attributes are carried over. */
  attributes?: Record<string, string>;
}

export class Engine {
  readonly stats: EngineStats;
  readonly config: BucketConfig;
  readonly bucket: string;
  /** Normalized key prefix ("" or ending in "/"). */
  readonly prefix: string;
  private readonly ctx: EngineContext;

  private constructor(ctx: EngineContext) {
    this.ctx = ctx;
    this.stats = ctx.stats;
    this.config = ctx.config;
    this.bucket = ctx.bucket;
    this.prefix = ctx.paths.keyPrefix;
  }

  /** Opens an initialized bucket prefix. Throws EngineError NOT_INITIALIZED / WRONG_KEY; store errors propagate. */
  static async open(opts: EngineOptions): Promise<Engine> {
    const config = opts.config ?? (await loadConfig(opts.store, opts.bucket, opts.prefix));
    const keyId = opts.keys.keyId.toString('hex');
    if (!config.keyIds.includes(keyId)) {
      throw new EngineError('WRONG_KEY', `the master key does not match this bucket (key id ${keyId}, bucket expects ${config.keyIds.join(' or ')})`);
    }
    const partSize = opts.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(partSize) || partSize < MIN_PART_SIZE || partSize > MAX_PART_SIZE) {
      throw new RangeError(`part size must be between 5 MiB and 5 GiB, got ${partSize}`);
    }
    const uploadConcurrency = opts.uploadConcurrency ?? DEFAULT_UPLOAD_CONCURRENCY;
    if (!Number.isInteger(uploadConcurrency) || uploadConcurrency < 1) throw new RangeError(`upload concurrency must be >= 1, got ${uploadConcurrency}`);
    const readKeys = [opts.keys, ...(opts.readKeys ?? []).filter((k) => !k.keyId.equals(opts.keys.keyId))];
    const ring: KeyRing = (id) => readKeys.find((k) => k.keyId.equals(id));
    const bucketKeys = openBucketKeys(config, readKeys);
    const stats = newStats();
    const ctx: EngineContext = {
      store: opts.store,
      bucket: opts.bucket,
      config,
      keys: opts.keys,
      readKeys,
      ring,
      bucketKeys,
      paths: new PathCodec(opts.prefix, config.names, bucketKeys.nameKey),
      cache: new ChunkCache(Math.max(0, opts.cacheBytes ?? DEFAULT_CACHE_BYTES), stats),
      stats,
      partSize,
      uploadConcurrency,
      partPool: opts.partPoolBytes === undefined ? undefined : new PartPool(Math.max(0, opts.partPoolBytes)),
      readaheadMaxBytes: Math.max(0, opts.readaheadMaxBytes ?? DEFAULT_READAHEAD_MAX_BYTES),
      warn: opts.onWarning ?? (() => {}),
    };
    if (opts.awsCse) {
      if (config.names === 'plain') ctx.cse = new AwsCse(ctx, opts.awsCse);
      else if (opts.awsCse.writeFormat === 'aws-cse-v2') throw new EngineError('INVALID_PATH', 'the AWS S3 Encryption Client format needs a store with plain names (s3cryptfs init --no-encrypt-names): the AWS SDKs find objects by their plaintext key');
    }
    return new Engine(ctx);
  }

  /** Writes the config object; EngineError ALREADY_INITIALIZED if the prefix already has one. */
  static async init(store: EngineStore, bucket: string, prefix: string, config: BucketConfig): Promise<void> {
    const key = normalizePrefix(prefix) + CONFIG_OBJECT_NAME;
    const already = () => new EngineError('ALREADY_INITIALIZED', `s3://${bucket}/${key} already exists: this prefix is already initialized`);
    if (await store.head(bucket, key)) throw already();
    const written = await putIfAbsent(store, bucket, key, Buffer.from(encodeConfig(config), 'utf8'), { contentType: 'application/json' });
    if (!written) throw already();
  }

  /** The S3 key a file path is stored under. */
  objectKey(path: string): string {
    return this.ctx.paths.fileKey(path);
  }

  /** HEAD: plaintext size and attributes, or null when there is no such file. */
  async stat(path: string): Promise<ObjectStat | null> {
    const key = this.ctx.paths.fileKey(path);
    const info = await this.ctx.store.head(this.bucket, key);
    if (!info) return null;
    const cse = await this.ctx.cse?.classify(key, info);
    return {
      path,
      size: cse ? cse.plainSize : this.plainSize(path, info.size),
      etag: info.etag,
      lastModified: info.lastModified,
      attributes: readAttributes(this.ctx, key, info.metadata),
    };
  }

  /** Random-access reader of the current version (or of the version described by `known`, skipping the HEAD). */
  async openReader(path: string, known?: { size: number; etag: string }): Promise<ObjectReader> {
    const key = this.ctx.paths.fileKey(path);
    const cseReader = await this.ctx.cse?.openReader(path, key, known?.etag);
    if (cseReader) return cseReader;
    const info = known ?? (await this.headOrThrow(path, key));
    return new EngineReader(this.ctx, path, key, info.etag, this.plainSize(path, info.size));
  }

  createWriter(path: string, opts?: WriteOptions): ObjectWriter {
    if (this.ctx.cse?.writesCse) return this.ctx.cse.createWriter(path, this.ctx.paths.fileKey(path), opts);
    return new EngineWriter(this.ctx, path, this.ctx.paths.fileKey(path), opts);
  }

  /**
   * What a caller that stores `path` with its own single PutObject needs (the gateway streams a
   * client's body to the backend as it arrives, which the part-buffering writer cannot): the S3 key,
   * a sealer for the ciphertext, and the object metadata carrying `attributes`, sealed as the writer
   * seals them. Null when this engine writes another format (AWS CSE).
   */
  singlePutUpload(path: string): { key: string; sealer: ObjectSealer; metadata(attributes: Record<string, string>): Record<string, string> } | null {
    if (this.ctx.cse?.writesCse) return null;
    const ctx = this.ctx;
    const key = ctx.paths.fileKey(path);
    const sealer = new ObjectSealer(newObjectCipher(ctx.keys, { cipher: ctx.config.cipher, chunkSize: ctx.config.chunkSize }));
    return { key, sealer, metadata: (attributes) => attributesMetadata(ctx, key, attributes) };
  }

  async putBuffer(path: string, data: Uint8Array, opts?: WriteOptions): Promise<{ etag: string; size: number }> {
    const writer = this.createWriter(path, opts);
    try {
      await writer.write(data);
    } catch (err) {
      await writer.abort();
      throw err;
    }
    return writer.close();
  }

  async getBuffer(path: string): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.readStream(path)) parts.push(chunk as Buffer);
    return Buffer.concat(parts);
  }

  /** Verified plaintext stream of the whole object or of [start, end) (end exclusive). */
  readStream(path: string, opts?: ReadStreamOptions): Readable {
    const cse = this.ctx.cse;
    if (cse) return cse.readStream(path, this.ctx.paths.fileKey(path), opts ?? {}, () => openReadStream(this.ctx, path, this.ctx.paths.fileKey(path), opts));
    return openReadStream(this.ctx, path, this.ctx.paths.fileKey(path), opts);
  }

  /**
   * The whole object's verified stream and its stat from one GET (no HEAD before it): resolves
   * once the response headers arrived, null when there is no such object. Undefined when the
   * engine reads AWS-CSE objects too (their classification needs the HEAD): use stat + readStream.
   */
  openWhole(path: string): Promise<{ stat: ObjectStat; stream: Readable } | null> | undefined {
    if (this.ctx.cse) return undefined;
    const key = this.ctx.paths.fileKey(path);
    return new Promise((resolve, reject) => {
      let settled = false;
      const stream = openReadStream(this.ctx, path, key, {
        onInfo: (info) => {
          const stat: ObjectStat = {
            path, size: this.plainSize(path, info.size), etag: info.etag, lastModified: info.lastModified,
            attributes: readAttributes(this.ctx, key, info.metadata),
          };
          settled = true;
          resolve({ stat, stream });
        },
      });
      stream.on('error', (err) => {
        if (settled) return; // the consumer sees it while reading
        settled = true;
        if (err instanceof EngineError && err.code === 'NOT_FOUND') resolve(null);
        else reject(err);
      });
    });
  }

  /** Reads and authenticates every chunk; throws IntegrityError on the first bad one. */
  async verify(path: string): Promise<{ size: number }> {
    let size = 0;
    for await (const chunk of this.readStream(path)) size += (chunk as Buffer).length;
    return { size };
  }

  list(dir: string, opts?: ListOptions): Promise<ListPage> {
    return listPage(this.ctx, dir, opts);
  }

  listAll(dir: string, opts?: Omit<ListOptions, 'token'>): AsyncGenerator<ListPage> {
    return listPages(this.ctx, dir, opts);
  }

  /** True when the directory has a marker or any object below it (the root always exists). */
  async dirExists(dir: string): Promise<boolean> {
    const prefix = this.ctx.paths.dirPrefix(dir);
    if (prefix === this.prefix) return true;
    const page = await this.ctx.store.list(this.bucket, { prefix, maxKeys: 1 });
    return page.objects.length > 0 || page.prefixes.length > 0;
  }

  /**
   * Creates the directory's marker (with `attributes` sealed into it). With `ifMissing` an existing
   * marker, which may hold attributes and an index, is left alone.
   */
  async mkdirMarker(dir: string, opts: { attributes?: Record<string, string>; ifMissing?: boolean } = {}): Promise<void> {
    const key = this.ctx.paths.markerKey(dir);
    const metadata = opts.attributes ? attributesMetadata(this.ctx, key, opts.attributes) : undefined;
    const put = { contentType: DIR_CONTENT_TYPE, metadata };
    if (opts.ifMissing) await putIfAbsent(this.ctx.store, this.bucket, key, Buffer.alloc(0), put);
    else await this.ctx.store.put(this.bucket, key, Buffer.alloc(0), put);
  }

  /** The directory's attributes and attribute index (one GET of its marker; see dir-index.ts). */
  readDirObject(dir: string): Promise<DirObject> {
    return readDirObject(this.ctx, dir);
  }

  /** The directory's own attributes (one HEAD of its marker); null when it has none. */
  dirAttributes(dir: string): Promise<Record<string, string> | null> {
    return readDirAttributes(this.ctx, dir);
  }

  /** Replaces the directory's attributes, keeping its index. */
  setDirAttributes(dir: string, attributes: Record<string, string>): Promise<void> {
    return writeDirAttributes(this.ctx, dir, attributes);
  }

  /** Stores the directory's attribute index (attributes undefined: keep the stored ones). */
  writeDirIndex(dir: string, index: DirIndex, attributes?: Record<string, string> | null): Promise<void> {
    return writeDirIndex(this.ctx, dir, index, attributes);
  }

  /** S3 key of the object holding a directory's attributes and index. */
  dirObjectKey(dir: string): string {
    return dirObjectKey(this.ctx, dir);
  }

  async removeDirMarker(dir: string): Promise<void> {
    await this.ctx.store.delete(this.bucket, this.ctx.paths.markerKey(dir));
  }

  /**
   * Server-side copy, no re-encryption (ciphertext does not depend on its key). The attributes are
   * re-sealed for the new key.
   */
  async copy(src: string, dst: string, opts: CopyOptions = {}): Promise<{ etag: string }> {
    const srcKey = this.ctx.paths.fileKey(src);
    const dstKey = this.ctx.paths.fileKey(dst);
    const info = await this.headOrThrow(src, srcKey);
    const cse = await this.ctx.cse?.classify(srcKey, info);
    if (!cse) this.plainSize(src, info.size);
    const attrs = opts.attributes ?? readAttributes(this.ctx, srcKey, info.metadata);
    if (cse) await this.ctx.cse!.copyInstruction(cse, dstKey);
    return this.ctx.store.copy(this.bucket, srcKey, dstKey, {
      metadata: { ...(cse ? this.ctx.cse!.envelopeMetadata(cse) : {}), ...attributesMetadata(this.ctx, dstKey, attrs) },
      metadataDirective: 'REPLACE',
      contentType: OBJECT_CONTENT_TYPE,
      sourceSize: info.size,
    });
  }

  /** copy + delete. Not atomic: a crash in between leaves both. */
  async rename(src: string, dst: string): Promise<void> {
    if (this.ctx.paths.fileKey(src) === this.ctx.paths.fileKey(dst)) return;
    await this.copy(src, dst);
    await this.delete(src);
  }

  async delete(path: string): Promise<void> {
    const key = this.ctx.paths.fileKey(path);
    await Promise.all([key, ...(this.ctx.cse?.companions(key) ?? [])].map((k) => this.ctx.store.delete(this.bucket, k)));
  }

  /** Deletes in batches; returns the paths that could not be deleted. */
  async deleteMany(paths: string[]): Promise<{ errors: { path: string; message: string }[] }> {
    const byKey = new Map(paths.map((p) => [this.ctx.paths.fileKey(p), p]));
    const companions = this.ctx.cse ? [...byKey.keys()].flatMap((k) => this.ctx.cse!.companions(k)) : [];
    const { errors } = await this.ctx.store.deleteMany(this.bucket, [...byKey.keys(), ...companions]);
    return { errors: errors.map((e) => ({ path: byKey.get(e.key) ?? e.key, message: e.message ?? e.code ?? 'delete failed' })) };
  }

  /** Replaces the attributes (a copy of the object onto itself). */
  setAttributes(path: string, attrs: Record<string, string>): Promise<{ etag: string }> {
    return this.copy(path, path, { attributes: attrs });
  }

  /** S3 Encryption Client facts of an object, or null when it is in our own format (or missing). */
  async awsCseFacts(path: string): Promise<CseFacts | null> {
    const cse = this.ctx.cse;
    if (!cse) return null;
    const found = await cse.head(this.ctx.paths.fileKey(path));
    return found?.obj ? cse.facts(found.obj) : null;
  }

  /**
   * For a raw backend listing (the gateway lists plain-name stores directly): plaintext sizes of
   * the S3EC objects on it and the keys to hide (instruction files, unsizable objects); null
   * without --aws-cse-* keys.
   */
  awsCseListing(objects: Parameters<AwsCse['classifyListing']>[0]): Promise<{ sizes: Map<string, number>; skip: Set<string> }> | null {
    const cse = this.ctx.cse;
    if (!cse) return null;
    return cse.classifyListing(objects, (key, message) => this.ctx.warn({ code: 'INVALID_SIZE', key, message }));
  }

  private async headOrThrow(path: string, key: string): Promise<StoreObjectInfo> {
    const info = await this.ctx.store.head(this.bucket, key);
    if (!info) throw new EngineError('NOT_FOUND', `no such file: "${path}"`);
    return info;
  }

  private plainSize(path: string, cipherSize: number): number {
    const size = plaintextSize(cipherSize, this.config.chunkSize);
    if (size === null) throw new IntegrityError('INVALID_SIZE', `"${path}" is ${cipherSize} bytes long, which no object can be`);
    return size;
  }
}

async function loadConfig(store: EngineStore, bucket: string, prefix: string): Promise<BucketConfig> {
  const key = normalizePrefix(prefix) + CONFIG_OBJECT_NAME;
  let body: Buffer;
  try {
    body = (await store.getObject(bucket, key)).body;
  } catch (err) {
    if (isStoreError(err, 'NoSuchKey')) {
      throw new EngineError('NOT_INITIALIZED', `s3://${bucket}/${key} not found: this bucket prefix is not an s3cryptfs store (run \`s3cryptfs init\` first)`, { cause: err });
    }
    throw err;
  }
  return parseConfig(body.toString('utf8'));
}

/**
 * PUT with If-None-Match: *; false when the key exists. Backends without conditional writes (OpenStack
 * Swift's s3api answers 501, s3rver ignores the header) get a HEAD and a plain PUT instead: not atomic
 * against a concurrent writer of the same key, which for a config or a directory marker means the
 * last of two simultaneous `init`s or mkdirs wins (docs/semantics.md).
 */
async function putIfAbsent(
  store: EngineStore, bucket: string, key: string, data: Buffer, opts: { contentType?: string; metadata?: Record<string, string> },
): Promise<boolean> {
  try {
    await store.put(bucket, key, data, { ...opts, ifNoneMatch: '*' });
    return true;
  } catch (err) {
    if (isStoreError(err, 'PreconditionFailed')) return false;
    if (!isStoreError(err, 'NotImplemented')) throw err;
  }
  if (await store.head(bucket, key)) return false;
  await store.put(bucket, key, data, opts);
  return true;
}
