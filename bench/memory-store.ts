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

interface Obj {
  body: Buffer;
  etag: string;
  lastModified: Date;
  metadata: Record<string, string>;
  contentType?: string;
}

interface Upload {
  key: string;
  parts: Map<number, { body: Buffer; etag: string }>;
  metadata: Record<string, string>;
  contentType?: string;
}

function etagOf(data: Buffer): string {
  return `"${createHash('md5').update(data).digest('hex')}"`;
}

export class MemoryStore implements EngineStore {
  private readonly buckets = new Map<string, Map<string, Obj>>();
  private readonly uploads = new Map<string, Upload>();
  /** Requests by S3 operation name (as ObjectStore.stats counts them). */
  readonly requests: Record<string, number> = {};
  /** With `hashEtags: false` ETags are random (no MD5 over every byte: cheaper for benchmarks). */
  constructor(private readonly opts: { hashEtags?: boolean } = {}) {}

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
    return Buffer.from(o.body.subarray(start, endExclusive));
  }

  async getObject(bucket: string, key: string): Promise<{ body: Buffer; info: ObjectInfo }> {
    this.count('GetObject');
    const o = this.get(bucket, key, 'GetObject');
    return { body: Buffer.from(o.body), info: this.info(key, o) };
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
      for (let p = start; p < end; p += PIECE) yield body.subarray(p, Math.min(end, p + PIECE));
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
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : Buffer.from(data);
    const etag = this.etag(body);
    b.set(key, { body, etag, lastModified: new Date(), metadata: { ...opts.metadata }, contentType: opts.contentType });
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
    const copy = Buffer.from(body);
    const etag = this.etag(copy);
    u.parts.set(partNumber, { body: copy, etag });
    return etag;
  }

  async completeMultipart(bucket: string, key: string, uploadId: string, parts: { partNumber: number; etag: string }[]): Promise<{ etag: string }> {
    this.count('CompleteMultipartUpload');
    const u = this.uploads.get(uploadId);
    if (!u || u.key !== key) throw storeError('NoSuchUpload', 'no such upload', { op: 'CompleteMultipartUpload', bucket, key });
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    const bodies = sorted.map((p) => {
      const part = u.parts.get(p.partNumber);
      if (!part || part.etag !== p.etag) throw storeError('ServerError', 'unknown part', { op: 'CompleteMultipartUpload', bucket, key });
      return part.body;
    });
    this.uploads.delete(uploadId);
    const body = Buffer.concat(bodies);
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
