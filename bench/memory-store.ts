/**
 * An in-memory object store with the engine's store interface (EngineStore): no network, no disk.
 * A benchmark instrument (bench/native.ts measures the FUSE bindings without S3 in the way) and a
 * fast backend for binding tests that count requests. Not a faithful S3: no auth, no versioning,
 * no conditional writes beyond If-Match on reads, single process.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';

import type { EngineStore } from '../src/engine/store-port.js';
import { storeError } from '../src/store/errors.js';
import type { ListPage, ObjectInfo } from '../src/store/store.js';

/** An object's bytes as the parts it was uploaded in: completing a multipart upload joins no bytes. */
class Body {
  readonly length: number;
  private readonly starts: number[] = [];
  /** `discardedBytes`: a body whose bytes were not kept (the null store), only its length. */
  constructor(private readonly parts: Buffer[], discardedBytes = 0) {
    let at = 0;
    for (const p of parts) {
      this.starts.push(at);
      at += p.length;
    }
    this.length = at + discardedBytes;
    this.discarded = discardedBytes > 0;
  }

  readonly discarded: boolean;

  /** Views of the bytes in [start, end), in order (no copy). */
  *views(start: number, end: number): Generator<Buffer> {
    if (this.discarded) throw storeError('ServerError', 'the null store keeps no bytes', { op: 'GetObject' });
    for (let i = 0; i < this.parts.length && start < end; i++) {
      const s = this.starts[i]!;
      const p = this.parts[i]!;
      if (s + p.length <= start) continue;
      const from = start - s;
      const to = Math.min(p.length, end - s);
      yield p.subarray(from, to);
      start = s + to;
    }
  }

  /** A copy of [start, end). */
  slice(start: number, end: number): Buffer {
    return Buffer.concat([...this.views(start, end)], end - start);
  }
}

/**
 * Pre-allocated, pre-touched memory that stored bytes are copied into (a bump allocator; nothing is
 * freed). With it a benchmark does not time the instrument's page faults and garbage collection.
 */
class Arena {
  private readonly slabs: Buffer[] = [];
  private slab = 0;
  private used = 0;
  constructor(bytes: number, private readonly slabSize = 256 * 1024 * 1024) {
    for (let left = bytes; left > 0; left -= slabSize) this.slabs.push(Buffer.allocUnsafeSlow(Math.min(slabSize, left)).fill(0)); // fill: calloc'd pages are not touched yet
  }

  /** A copy of `data` in the arena, or null when it is full. */
  copy(data: Uint8Array): Buffer | null {
    while (this.slab < this.slabs.length) {
      const slab = this.slabs[this.slab]!;
      if (this.used + data.length <= slab.length) {
        const out = slab.subarray(this.used, this.used + data.length);
        out.set(data);
        this.used += data.length;
        return out;
      }
      if (data.length > slab.length) return null;
      this.slab++;
      this.used = 0;
    }
    return null;
  }
}

interface Obj {
  body: Body;
  etag: string;
  lastModified: Date;
  metadata: Record<string, string>;
  contentType?: string;
}

interface Upload {
  key: string;
  parts: Map<number, { body: Buffer; etag: string; discarded: number }>;
  metadata: Record<string, string>;
  contentType?: string;
}

/** Objects up to this size are kept even by the null store. */
const NULL_STORE_KEEPS = 64 * 1024;

function etagOf(data: Buffer): string {
  return `"${createHash('md5').update(data).digest('hex')}"`;
}

export class MemoryStore implements EngineStore {
  private readonly buckets = new Map<string, Map<string, Obj>>();
  private readonly uploads = new Map<string, Upload>();
  /** Requests by S3 operation name (as ObjectStore.stats counts them). */
  readonly requests: Record<string, number> = {};
  private readonly arena: Arena | null;
  /**
   * With `hashEtags: false` ETags are random (no MD5 over every byte: cheaper for benchmarks);
   * `arenaBytes` pre-allocates that much memory for stored bytes (see Arena); `discard` makes it the
   * null store: uploads keep only their length (reads of such objects fail), so a write benchmark
   * measures the writer, not the instrument's memory copies.
   */
  constructor(private readonly opts: { hashEtags?: boolean; arenaBytes?: number; discard?: boolean } = {}) {
    this.arena = opts.arenaBytes ? new Arena(opts.arenaBytes) : null;
  }

  private keep(data: Uint8Array): Buffer {
    return this.arena?.copy(data) ?? Buffer.from(data);
  }

  createBucket(bucket: string): void {
    if (!this.buckets.has(bucket)) this.buckets.set(bucket, new Map());
  }

  private count(op: string): void {
    this.requests[op] = (this.requests[op] ?? 0) + 1;
  }

  private bucket(bucket: string, op: string): Map<string, Obj> {
    const b = this.buckets.get(bucket);
    if (!b) throw storeError('NoSuchBucket', 'no such bucket', { op, bucket });
    return b;
  }

  private etag(data: Buffer): string {
    return this.opts.hashEtags === false ? `"${randomUUID().replace(/-/g, '')}"` : etagOf(data);
  }

  private info(key: string, o: Obj): ObjectInfo {
    return { key, size: o.body.length, etag: o.etag, lastModified: o.lastModified, metadata: { ...o.metadata }, contentType: o.contentType };
  }

  private get(bucket: string, key: string, op: string, ifMatch?: string): Obj {
    const o = this.bucket(bucket, op).get(key);
    if (!o) throw storeError('NoSuchKey', 'object does not exist', { op, bucket, key });
    if (ifMatch !== undefined && ifMatch !== o.etag) throw storeError('PreconditionFailed', 'ETag does not match', { op, bucket, key });
    return o;
  }

  async head(bucket: string, key: string): Promise<ObjectInfo | null> {
    this.count('HeadObject');
    const o = this.bucket(bucket, 'HeadObject').get(key);
    return o ? this.info(key, o) : null;
  }

  async getRange(bucket: string, key: string, start: number, endExclusive: number, opts: { ifMatch?: string } = {}): Promise<Buffer> {
    this.count('GetObject');
    const o = this.get(bucket, key, 'GetObject', opts.ifMatch);
    if (endExclusive > o.body.length) throw storeError('InvalidRange', 'range past the end', { op: 'GetObject', bucket, key });
    return o.body.slice(start, endExclusive);
  }

  async getObject(bucket: string, key: string): Promise<{ body: Buffer; info: ObjectInfo }> {
    this.count('GetObject');
    const o = this.get(bucket, key, 'GetObject');
    return { body: o.body.slice(0, o.body.length), info: this.info(key, o) };
  }

  async getStream(
    bucket: string,
    key: string,
    opts: { start?: number; endExclusive?: number; ifMatch?: string } = {},
  ): Promise<{ stream: Readable; info: ObjectInfo }> {
    this.count('GetObject');
    const o = this.get(bucket, key, 'GetObject', opts.ifMatch);
    const start = opts.start ?? 0;
    const end = opts.endExclusive ?? o.body.length;
    if (end > o.body.length) throw storeError('InvalidRange', 'range past the end', { op: 'GetObject', bucket, key });
    const body = o.body;
    const PIECE = 1024 * 1024;
    function* pieces() {
      for (const view of body.views(start, end)) {
        for (let p = 0; p < view.length; p += PIECE) yield view.subarray(p, Math.min(view.length, p + PIECE));
      }
    }
    return { stream: Readable.from(pieces(), { objectMode: false }), info: this.info(key, o) };
  }

  async put(
    bucket: string,
    key: string,
    data: Buffer | Uint8Array | string,
    opts: { metadata?: Record<string, string>; contentType?: string; ifNoneMatch?: '*' } = {},
  ): Promise<{ etag: string }> {
    this.count('PutObject');
    const b = this.bucket(bucket, 'PutObject');
    if (opts.ifNoneMatch === '*' && b.has(key)) throw storeError('PreconditionFailed', 'object exists', { op: 'PutObject', bucket, key });
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    // Small objects (markers, indexes, configs) are kept even by the null store: the filesystem reads them.
    const discard = this.opts.discard === true && bytes.length > NULL_STORE_KEEPS;
    const body = discard ? Buffer.alloc(0) : this.keep(bytes);
    const etag = discard ? `"${randomUUID().replace(/-/g, '')}"` : this.etag(body);
    b.set(key, { body: discard ? new Body([], bytes.length) : new Body([body]), etag, lastModified: new Date(), metadata: { ...opts.metadata }, contentType: opts.contentType });
    return { etag };
  }

  async createMultipart(bucket: string, key: string, opts: { metadata?: Record<string, string>; contentType?: string } = {}): Promise<string> {
    this.count('CreateMultipartUpload');
    this.bucket(bucket, 'CreateMultipartUpload');
    const id = randomUUID();
    this.uploads.set(id, { key, parts: new Map(), metadata: { ...opts.metadata }, contentType: opts.contentType });
    return id;
  }

  async uploadPart(bucket: string, key: string, uploadId: string, partNumber: number, body: Buffer): Promise<string> {
    this.count('UploadPart');
    const u = this.uploads.get(uploadId);
    if (!u || u.key !== key) throw storeError('NoSuchUpload', 'no such upload', { op: 'UploadPart', bucket, key });
    if (this.opts.discard) {
      const etag = `"${randomUUID().replace(/-/g, '')}"`;
      u.parts.set(partNumber, { body: Buffer.alloc(0), etag, discarded: body.length });
      return etag;
    }
    const copy = this.keep(body);
    const etag = this.etag(copy);
    u.parts.set(partNumber, { body: copy, etag, discarded: 0 });
    return etag;
  }

  async completeMultipart(bucket: string, key: string, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<{ etag: string }> {
    this.count('CompleteMultipartUpload');
    const u = this.uploads.get(uploadId);
    if (!u || u.key !== key) throw storeError('NoSuchUpload', 'no such upload', { op: 'CompleteMultipartUpload', bucket, key });
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    let discarded = 0;
    const bodies = sorted.map((p) => {
      const part = u.parts.get(p.partNumber);
      if (!part || part.etag !== p.etag) throw storeError('ServerError', 'unknown part', { op: 'CompleteMultipartUpload', bucket, key });
      discarded += part.discarded;
      return part.body;
    });
    this.uploads.delete(uploadId);
    const body = discarded > 0 ? new Body([], discarded + bodies.reduce((n, b) => n + b.length, 0)) : new Body(bodies);
    const etag = `"${randomUUID().replace(/-/g, '')}-${sorted.length}"`;
    this.bucket(bucket, 'CompleteMultipartUpload').set(key, { body, etag, lastModified: new Date(), metadata: u.metadata, contentType: u.contentType });
    return { etag };
  }

  async abortMultipart(_bucket: string, _key: string, uploadId: string): Promise<void> {
    this.count('AbortMultipartUpload');
    this.uploads.delete(uploadId);
  }

  async list(bucket: string, opts: { prefix?: string; delimiter?: string; startAfter?: string; continuationToken?: string; maxKeys?: number } = {}): Promise<ListPage> {
    this.count('ListObjectsV2');
    const b = this.bucket(bucket, 'ListObjectsV2');
    const prefix = opts.prefix ?? '';
    const max = Math.min(opts.maxKeys ?? 1000, 1000);
    const after = opts.continuationToken ?? opts.startAfter ?? '';
    const keys = [...b.keys()].filter((k) => k.startsWith(prefix) && k > after).sort();
    const objects: ListPage['objects'] = [];
    const prefixes: string[] = [];
    let last = '';
    let truncated = false;
    for (const key of keys) {
      if (key <= last) continue;
      if (objects.length + prefixes.length >= max) {
        truncated = true;
        break;
      }
      const rest = key.slice(prefix.length);
      const cut = opts.delimiter ? rest.indexOf(opts.delimiter) : -1;
      if (cut >= 0) {
        const p = prefix + rest.slice(0, cut + opts.delimiter!.length);
        prefixes.push(p);
        last = p + '\uffff';
      } else {
        const o = b.get(key)!;
        objects.push({ key, size: o.body.length, etag: o.etag, lastModified: o.lastModified });
        last = key;
      }
    }
    return { objects, prefixes, nextContinuationToken: truncated ? last : undefined };
  }

  async copy(bucket: string, srcKey: string, dstKey: string, opts: { metadata?: Record<string, string>; metadataDirective?: 'COPY' | 'REPLACE'; contentType?: string } = {}): Promise<{ etag: string }> {
    this.count('CopyObject');
    const src = this.get(bucket, srcKey, 'CopyObject');
    const replace = opts.metadataDirective === 'REPLACE' || (opts.metadataDirective === undefined && (opts.metadata !== undefined || opts.contentType !== undefined));
    const etag = `"${randomUUID().replace(/-/g, '')}"`;
    this.bucket(bucket, 'CopyObject').set(dstKey, {
      body: src.body,
      etag,
      lastModified: new Date(),
      metadata: replace ? { ...opts.metadata } : { ...src.metadata },
      contentType: replace ? opts.contentType : src.contentType,
    });
    return { etag };
  }

  async delete(bucket: string, key: string): Promise<void> {
    this.count('DeleteObject');
    this.bucket(bucket, 'DeleteObject').delete(key);
  }

  async deleteMany(bucket: string, keys: string[]): Promise<{ errors: { key: string; code: string; message: string }[] }> {
    this.count('DeleteObjects');
    const b = this.bucket(bucket, 'DeleteObjects');
    for (const k of keys) b.delete(k);
    return { errors: [] };
  }
}
