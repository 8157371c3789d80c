// ObjectStore: the only place that talks to S3. Thin, typed wrappers over
// @aws-sdk/client-s3 with retries, byte accounting and StoreError mapping.
// The hot data calls (GetObject, PutObject, UploadPart) go through LeanS3 (lean-http.ts)
// instead, unless S3CRYPTFS_STORE_SDK=1 or `dataPath: 'sdk'`.
//
// ETags are returned exactly as S3 sends them, i.e. including the surrounding
// double quotes ("\"9b2cf5...\""), so they can be passed back verbatim in
// If-Match and CompleteMultipartUpload. Compare them with `sameEtag()`.

import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { pipeline, Readable, Transform, type TransformCallback } from 'node:stream';

import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  UploadPartCopyCommand,
  type BucketLocationConstraint,
} from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';

import { contentMd5Plugin, unsignedPayloadPlugin } from './content-md5.js';
import { isStoreError, storeError, toStoreError, type StoreErrorContext } from './errors.js';
import { LeanS3 } from './lean-http.js';
import { backoffDelayMs, isBodyInterruption, ShortBodyError, sleep } from './retry.js';

export interface StoreOptions {
  /** Defaults to $AWS_ENDPOINT_URL_S3, then $AWS_ENDPOINT_URL, then AWS itself. */
  endpoint?: string;
  /** Defaults to $AWS_REGION, then $AWS_DEFAULT_REGION, then 'us-east-1'. */
  region?: string;
  /** Defaults to true when the endpoint host is an IP address or localhost. */
  forcePathStyle?: boolean;
  /** Defaults to the SDK's provider chain (env vars, AWS_PROFILE, SSO, instance roles...). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Total attempts per request, including the first. Default 5. */
  maxAttempts?: number;
  /** Concurrent sockets per protocol. Default 64. */
  maxSockets?: number;
  /** Fail a request whose socket sees no traffic for this long. Default 120 s. */
  requestTimeoutMs?: number;
  /** Fail a connection attempt that takes longer than this. Default 10 s. */
  connectTimeoutMs?: number;
  /**
   * Send request bodies as UNSIGNED-PAYLOAD instead of signing their SHA-256 (a full hash of every
   * uploaded byte). Default: on for https and loopback endpoints, where TLS or the absence of a
   * network protects transport (objects are authenticated end to end by their AEAD anyway); off
   * for plain http to another host.
   */
  unsignedPayload?: boolean;
  /**
   * 'lean' (default) sends GetObject, PutObject and UploadPart as plain SigV4-signed node:http
   * requests; 'sdk' sends them through the AWS SDK like every other call. Default 'sdk' when
   * $S3CRYPTFS_STORE_SDK=1.
   */
  dataPath?: 'lean' | 'sdk';
}

export interface ObjectInfo {
  key: string;
  size: number;
  /** Quoted, as S3 returns it. */
  etag: string;
  lastModified: Date;
  metadata: Record<string, string>;
  contentType?: string;
}

export interface ListedObject {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

export interface ListPage {
  objects: ListedObject[];
  prefixes: string[];
  nextContinuationToken?: string;
}

export interface ListOptions {
  prefix?: string;
  delimiter?: string;
  startAfter?: string;
  continuationToken?: string;
  maxKeys?: number;
}

export interface MultipartUploadInfo {
  key: string;
  uploadId: string;
  initiated: Date;
}

export interface CopyOptions {
  srcBucket?: string;
  metadata?: Record<string, string>;
  /** Default: 'REPLACE' when metadata or contentType is given, else 'COPY'. */
  metadataDirective?: 'COPY' | 'REPLACE';
  contentType?: string;
  /** Source size if the caller knows it; above 5 GiB the copy goes multipart without a failed attempt first. */
  sourceSize?: number;
}

export interface CopyLargeOptions extends CopyOptions {
  partSize?: number;
  concurrency?: number;
}

export interface StoreStats {
  /** HTTP requests sent, by S3 operation name, retries included. */
  requests: Record<string, number>;
  retries: number;
  /** The same retries by S3 operation name (SDK request retries and resumed body reads). */
  retriesByOp: Record<string, number>;
  bytesSent: number;
  bytesReceived: number;
}

/** S3's limit for a single CopyObject / UploadPartCopy source. */
export const MAX_SINGLE_COPY_BYTES = 5 * 1024 ** 3;
const DEFAULT_COPY_PART_BYTES = 256 * 1024 ** 2;
const MAX_PARTS = 10_000;
const DELETE_BATCH_SIZE = 1000;

type CallOptions = { abortSignal?: AbortSignal };

export class ObjectStore {
  readonly stats: StoreStats = { requests: {}, retries: 0, retriesByOp: {}, bytesSent: 0, bytesReceived: 0 };
  readonly endpoint: string | undefined;
  readonly region: string;
  private readonly client: S3Client;
  private readonly maxAttempts: number;
  /** Undefined when the data calls go through the SDK. */
  private readonly lean: LeanS3 | undefined;

  constructor(opts: StoreOptions = {}) {
    this.endpoint = opts.endpoint ?? defaultEndpointFromEnv();
    this.region = opts.region ?? (process.env.AWS_REGION || process.env.AWS_DEFAULT_REGION || 'us-east-1');
    this.maxAttempts = opts.maxAttempts ?? 5;
    const endpointUrl = this.endpoint === undefined ? undefined : parseEndpoint(this.endpoint);
    const agentOptions = { keepAlive: true, maxSockets: opts.maxSockets ?? 64 };
    const httpAgent = new http.Agent(agentOptions);
    const httpsAgent = new https.Agent(agentOptions);
    const forcePathStyle = opts.forcePathStyle ?? (endpointUrl ? isLocalOrIpHost(endpointUrl.hostname) : false);
    const connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    const socketTimeoutMs = opts.requestTimeoutMs ?? 120_000;
    this.client = new S3Client({
      endpoint: this.endpoint,
      region: this.region,
      forcePathStyle,
      credentials: opts.credentials,
      maxAttempts: this.maxAttempts,
      requestHandler: new NodeHttpHandler({
        httpAgent,
        httpsAgent,
        connectionTimeout: connectTimeoutMs,
        socketTimeout: socketTimeoutMs,
      }),
      // Only send/verify the newer flexible checksums where S3 demands them;
      // many S3-compatible servers reject or mangle them otherwise.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Resolving the middleware stack for every request cost about a millisecond of CPU each.
      cacheMiddleware: true,
    });
    const tls = endpointUrl === undefined || endpointUrl.protocol === 'https:';
    const loopback = endpointUrl !== undefined && isLoopbackHost(endpointUrl.hostname);
    const unsignedPayload = opts.unsignedPayload ?? (tls || loopback);
    if (unsignedPayload) this.client.middlewareStack.use(unsignedPayloadPlugin());
    const dataPath = opts.dataPath ?? (process.env.S3CRYPTFS_STORE_SDK === '1' ? 'sdk' : 'lean');
    // Shares the SDK client's agents (one socket pool), credentials, endpoint rules and retry budget.
    this.lean =
      dataPath === 'lean'
        ? new LeanS3({
            client: this.client,
            httpAgent,
            httpsAgent,
            endpoint: this.endpoint,
            region: this.region,
            forcePathStyle,
            unsignedPayload,
            maxAttempts: this.maxAttempts,
            socketTimeoutMs,
            connectTimeoutMs,
          })
        : undefined;
  }

  /** Which path GetObject/PutObject/UploadPart take (for benchmarks and tests). */
  get dataPath(): 'lean' | 'sdk' {
    return this.lean ? 'lean' : 'sdk';
  }

  /** Closes pooled sockets. The store must not be used afterwards. */
  destroy(): void {
    this.client.destroy();
    this.lean?.close();
  }

  // ---- buckets ----------------------------------------------------------

  async headBucket(bucket: string): Promise<void> {
    await this.call({ op: 'HeadBucket', bucket }, (o) => this.client.send(new HeadBucketCommand({ Bucket: bucket }), o));
  }

  /** Succeeds if the bucket already exists and is ours. */
  async createBucket(bucket: string): Promise<void> {
    const locationConstraint =
      this.region === 'us-east-1' ? undefined : { LocationConstraint: this.region as BucketLocationConstraint };
    try {
      await this.call({ op: 'CreateBucket', bucket }, (o) =>
        this.client.send(new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: locationConstraint }), o),
      );
    } catch (err) {
      if (isStoreError(err) && err.s3Code === 'BucketAlreadyOwnedByYou') return;
      throw err;
    }
  }

  async deleteBucket(bucket: string): Promise<void> {
    await this.call({ op: 'DeleteBucket', bucket }, (o) => this.client.send(new DeleteBucketCommand({ Bucket: bucket }), o));
  }

  // ---- reading ----------------------------------------------------------

  /** Object metadata, or null if there is no such object (or no such bucket: HEAD cannot tell). */
  async head(bucket: string, key: string): Promise<ObjectInfo | null> {
    try {
      const out = await this.call({ op: 'HeadObject', bucket, key }, (o) =>
        this.client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), o),
      );
      return {
        key,
        size: out.ContentLength ?? 0,
        etag: requireEtag(out.ETag, { op: 'HeadObject', bucket, key }),
        lastModified: out.LastModified ?? new Date(0),
        metadata: out.Metadata ?? {},
        contentType: out.ContentType,
      };
    } catch (err) {
      if (isStoreError(err, 'NoSuchKey')) return null;
      throw err;
    }
  }

  /**
   * Bytes [start, endExclusive) of an object, in one Buffer. Throws InvalidRange if
   * the object is shorter, PreconditionFailed if ifMatch does not match. A connection
   * that breaks mid-body is resumed with a new ranged request pinned to the same ETag.
   */
  async getRange(
    bucket: string,
    key: string,
    start: number,
    endExclusive: number,
    opts: { ifMatch?: string; signal?: AbortSignal } = {},
  ): Promise<Buffer> {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(endExclusive) || start < 0 || endExclusive < start) {
      throw new RangeError(`invalid byte range [${start}, ${endExclusive}) for ${key}`);
    }
    if (start === endExclusive) return Buffer.alloc(0);
    const { body } = await this.fetchBytes(bucket, key, start, endExclusive, opts);
    return body;
  }

  /** Whole object in memory; meant for small objects. */
  async getObject(bucket: string, key: string): Promise<{ body: Buffer; info: ObjectInfo }> {
    return this.fetchBytes(bucket, key, 0, undefined, {});
  }

  /**
   * Streams an object or a byte range of it. Unlike getRange, a broken connection
   * surfaces as a stream error (the consumer decides whether to re-request).
   */
  async getStream(
    bucket: string,
    key: string,
    opts: { start?: number; endExclusive?: number; ifMatch?: string; signal?: AbortSignal } = {},
  ): Promise<{ stream: Readable; info: ObjectInfo }> {
    const ctx: StoreErrorContext = { op: 'GetObject', bucket, key };
    const start = opts.start ?? 0;
    const end = opts.endExclusive;
    if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
      throw new RangeError(`invalid byte range [${start}, ${end}) for ${key}`);
    }
    if (end === start) {
      const info = await this.head(bucket, key);
      if (!info) throw storeError('NoSuchKey', 'object does not exist', this.context(ctx));
      assertEtagMatches(opts.ifMatch, info.etag, this.context(ctx));
      return { stream: Readable.from([]), info };
    }
    const range = start > 0 || end !== undefined ? `bytes=${start}-${end === undefined ? '' : end - 1}` : undefined;
    const out = await this.sendGet(ctx, range, opts.ifMatch, opts.signal);
    const body = out.body;
    try {
      assertEtagMatches(opts.ifMatch, out.etag, this.context(ctx));
      const served = servedRange(out);
      if (end !== undefined && served.total < end) {
        throw storeError('InvalidRange', `object is ${served.total} bytes, range ends at ${end}`, this.context(ctx));
      }
      const take = (end ?? served.total) - start;
      const slicer = new ByteWindow(start - served.start, take, (n) => (this.stats.bytesReceived += n));
      pipeline(body, slicer, () => {}); // errors reach the consumer through `slicer`
      return { stream: slicer, info: infoFromGet(key, out, served.total, this.context(ctx)) };
    } catch (err) {
      body.destroy();
      throw err;
    }
  }

  // ---- writing ----------------------------------------------------------

  /**
   * ifNoneMatch '*' makes the write fail with PreconditionFailed if the key exists. AWS and the
   * embedded server honour it; some S3-compatible servers (plain s3rver among them) ignore it.
   */
  async put(
    bucket: string,
    key: string,
    data: Buffer | Uint8Array | string,
    opts: { metadata?: Record<string, string>; contentType?: string; ifNoneMatch?: '*' } = {},
  ): Promise<{ etag: string }> {
    const ctx: StoreErrorContext = { op: 'PutObject', bucket, key };
    // ContentLength must be the byte count, which for a string is not .length.
    const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    if (this.lean) {
      // The SDK's default for blob bodies; without it servers store binary/octet-stream.
      const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/octet-stream' };
      if (opts.ifNoneMatch !== undefined) headers['if-none-match'] = opts.ifNoneMatch;
      for (const [name, value] of Object.entries(opts.metadata ?? {})) headers[`x-amz-meta-${name.toLowerCase()}`] = value;
      const lean = this.lean;
      const res = await this.call(ctx, () => lean.send({ method: 'PUT', bucket, key, headers, body }));
      this.stats.bytesSent += body.length;
      return { etag: requireEtag(headerValue(res.headers.etag), this.context(ctx)) };
    }
    const out = await this.call(ctx, (o) =>
      this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: key,
          Body: body,
          ContentLength: body.length,
          Metadata: opts.metadata,
          ContentType: opts.contentType,
          IfNoneMatch: opts.ifNoneMatch,
        }),
        o,
      ),
    );
    this.stats.bytesSent += body.length;
    return { etag: requireEtag(out.ETag, this.context(ctx)) };
  }

  /** Whether putStreaming() is available: the lean data path, sending bodies UNSIGNED-PAYLOAD. */
  get streamsPuts(): boolean {
    return this.lean?.streamsBodies ?? false;
  }

  /**
   * One PutObject whose `length` bytes `source` yields as they are produced, with no retry (the
   * caller keeps a copy and retries with put()). If `source` throws, the request is cut short of
   * its Content-Length, so nothing is stored, and that error is rethrown as it is.
   */
  async putStreaming(
    bucket: string,
    key: string,
    length: number,
    source: AsyncIterable<Uint8Array>,
    opts: { metadata?: Record<string, string>; contentType?: string; ifNoneMatch?: '*' } = {},
  ): Promise<{ etag: string }> {
    const lean = this.lean;
    if (!lean?.streamsBodies) throw new Error('streamed PUTs need the lean data path with unsigned payloads');
    const ctx: StoreErrorContext = { op: 'PutObject', bucket, key };
    const headers: Record<string, string> = { 'content-type': opts.contentType ?? 'application/octet-stream' };
    if (opts.ifNoneMatch !== undefined) headers['if-none-match'] = opts.ifNoneMatch;
    for (const [name, value] of Object.entries(opts.metadata ?? {})) headers[`x-amz-meta-${name.toLowerCase()}`] = value;
    let sourceFailed = false;
    let sourceError: unknown;
    const watched = (async function* () {
      try {
        yield* source;
      } catch (err) {
        sourceFailed = true;
        sourceError = err;
        throw err;
      }
    })();
    try {
      const res = await this.call(ctx, () => lean.sendStreaming({ bucket, key, headers }, length, watched));
      this.stats.bytesSent += length;
      return { etag: requireEtag(headerValue(res.headers.etag), this.context(ctx)) };
    } catch (err) {
      if (sourceFailed) throw sourceError;
      throw err;
    }
  }

  async copy(bucket: string, srcKey: string, dstKey: string, opts: CopyOptions = {}): Promise<{ etag: string }> {
    if (opts.sourceSize !== undefined && opts.sourceSize > MAX_SINGLE_COPY_BYTES) {
      return this.copyLarge(bucket, srcKey, dstKey, opts);
    }
    const srcBucket = opts.srcBucket ?? bucket;
    const ctx: StoreErrorContext = { op: 'CopyObject', bucket, key: dstKey };
    try {
      const out = await this.call(ctx, (o) =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: bucket,
            Key: dstKey,
            CopySource: encodeCopySource(srcBucket, srcKey),
            MetadataDirective: metadataDirective(opts),
            Metadata: opts.metadata,
            ContentType: opts.contentType,
          }),
          o,
        ),
      );
      return { etag: requireEtag(out.CopyObjectResult?.ETag, this.context(ctx)) };
    } catch (err) {
      if (isCopySourceTooLarge(err)) return this.copyLarge(bucket, srcKey, dstKey, opts);
      throw err;
    }
  }

  /**
   * Server-side copy through a multipart upload of UploadPartCopy parts; needed for
   * sources over 5 GiB. Parts are pinned to the source ETag, so a source replaced
   * mid-copy fails the copy instead of producing a mix of two versions.
   */
  async copyLarge(bucket: string, srcKey: string, dstKey: string, opts: CopyLargeOptions = {}): Promise<{ etag: string }> {
    const srcBucket = opts.srcBucket ?? bucket;
    const source = await this.head(srcBucket, srcKey);
    if (!source) {
      throw storeError('NoSuchKey', 'copy source does not exist', this.context({ op: 'CopyObject', bucket: srcBucket, key: srcKey }));
    }
    if (source.size === 0) {
      // Multipart needs at least one non-empty part; an empty object always fits a plain copy.
      return this.copy(bucket, srcKey, dstKey, { ...opts, sourceSize: 0 });
    }
    const replace = metadataDirective(opts) === 'REPLACE';
    const uploadId = await this.createMultipart(bucket, dstKey, {
      metadata: replace ? opts.metadata : source.metadata,
      contentType: replace ? (opts.contentType ?? source.contentType) : source.contentType,
    });
    try {
      const partSize = Math.max(opts.partSize ?? DEFAULT_COPY_PART_BYTES, Math.ceil(source.size / MAX_PARTS));
      const ranges: { start: number; endExclusive: number }[] = [];
      for (let offset = 0; offset < source.size; offset += partSize) {
        ranges.push({ start: offset, endExclusive: Math.min(source.size, offset + partSize) });
      }
      const etags = await mapWithConcurrency(ranges, opts.concurrency ?? 8, (range, i) =>
        this.uploadPartCopy(bucket, dstKey, uploadId, i + 1, srcBucket, srcKey, range, { sourceIfMatch: source.etag }),
      );
      return await this.completeMultipart(
        bucket,
        dstKey,
        uploadId,
        etags.map((etag, i) => ({ partNumber: i + 1, etag })),
      );
    } catch (err) {
      await this.abortMultipart(bucket, dstKey, uploadId).catch(() => {
        // Best effort: the copy error is what the caller needs; a lifecycle rule reaps leftovers.
      });
      throw err;
    }
  }

  async delete(bucket: string, key: string): Promise<void> {
    await this.call({ op: 'DeleteObject', bucket, key }, (o) =>
      this.client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }), o),
    );
  }

  /** Deletes in batches of 1000; per-key failures are returned, not thrown. */
  async deleteMany(bucket: string, keys: string[]): Promise<{ errors: { key: string; code: string; message: string }[] }> {
    const errors: { key: string; code: string; message: string }[] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH_SIZE) {
      const batch = keys.slice(i, i + DELETE_BATCH_SIZE);
      const command = new DeleteObjectsCommand({
        Bucket: bucket,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      });
      command.middlewareStack.use(contentMd5Plugin());
      // Options (even empty) keep this command off the client's cached stack: it carries its own middleware.
      const out = await this.call({ op: 'DeleteObjects', bucket }, (o) => this.client.send(command, o ?? {}));
      for (const e of out.Errors ?? []) {
        errors.push({ key: e.Key ?? '', code: e.Code ?? 'Unknown', message: e.Message ?? '' });
      }
    }
    return { errors };
  }

  // ---- multipart --------------------------------------------------------

  async createMultipart(
    bucket: string,
    key: string,
    opts: { metadata?: Record<string, string>; contentType?: string } = {},
  ): Promise<string> {
    const ctx: StoreErrorContext = { op: 'CreateMultipartUpload', bucket, key };
    const out = await this.call(ctx, (o) =>
      this.client.send(
        new CreateMultipartUploadCommand({ Bucket: bucket, Key: key, Metadata: opts.metadata, ContentType: opts.contentType }),
        o,
      ),
    );
    if (!out.UploadId) throw storeError('ServerError', 'response lacked an UploadId', this.context(ctx));
    return out.UploadId;
  }

  async uploadPart(
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    body: Buffer,
    opts: { signal?: AbortSignal } = {},
  ): Promise<string> {
    const ctx: StoreErrorContext = { op: 'UploadPart', bucket, key };
    if (this.lean) {
      const lean = this.lean;
      const query = { partNumber: String(partNumber), uploadId };
      const res = await this.call(ctx, () => lean.send({ method: 'PUT', bucket, key, query, body, signal: opts.signal }), opts.signal);
      this.stats.bytesSent += body.length;
      return requireEtag(headerValue(res.headers.etag), this.context(ctx));
    }
    const out = await this.call(
      ctx,
      (o) =>
        this.client.send(
          new UploadPartCommand({
            Bucket: bucket,
            Key: key,
            UploadId: uploadId,
            PartNumber: partNumber,
            Body: body,
            ContentLength: body.length,
          }),
          o,
        ),
      opts.signal,
    );
    this.stats.bytesSent += body.length;
    return requireEtag(out.ETag, this.context(ctx));
  }

  async uploadPartCopy(
    bucket: string,
    key: string,
    uploadId: string,
    partNumber: number,
    srcBucket: string,
    srcKey: string,
    range?: { start: number; endExclusive: number },
    opts: { sourceIfMatch?: string } = {},
  ): Promise<string> {
    const ctx: StoreErrorContext = { op: 'UploadPartCopy', bucket, key };
    const out = await this.call(ctx, (o) =>
      this.client.send(
        new UploadPartCopyCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          PartNumber: partNumber,
          CopySource: encodeCopySource(srcBucket, srcKey),
          CopySourceRange: range ? `bytes=${range.start}-${range.endExclusive - 1}` : undefined,
          CopySourceIfMatch: opts.sourceIfMatch,
        }),
        o,
      ),
    );
    return requireEtag(out.CopyPartResult?.ETag, this.context(ctx));
  }

  async completeMultipart(
    bucket: string,
    key: string,
    uploadId: string,
    parts: { partNumber: number; etag: string }[],
  ): Promise<{ etag: string }> {
    const ctx: StoreErrorContext = { op: 'CompleteMultipartUpload', bucket, key };
    const sorted = [...parts].sort((a, b) => a.partNumber - b.partNumber);
    const out = await this.call(ctx, (o) =>
      this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: bucket,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: sorted.map((p) => ({ PartNumber: p.partNumber, ETag: p.etag })) },
        }),
        o,
      ),
    );
    return { etag: requireEtag(out.ETag, this.context(ctx)) };
  }

  /**
   * Idempotent: an upload that no longer exists counts as aborted (a retried abort
   * sees NoSuchUpload). Plain s3rver answers 405, mapped to NotImplemented; the embedded
   * server adds abort.
   */
  async abortMultipart(bucket: string, key: string, uploadId: string): Promise<void> {
    try {
      await this.call({ op: 'AbortMultipartUpload', bucket, key }, (o) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }), o),
      );
    } catch (err) {
      if (isStoreError(err, 'NoSuchUpload')) return;
      throw err;
    }
  }

  /** All in-progress uploads (follows pagination). s3rver (even embedded): NotImplemented. */
  async listMultipartUploads(bucket: string, prefix?: string): Promise<MultipartUploadInfo[]> {
    const uploads: MultipartUploadInfo[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const out = await this.call({ op: 'ListMultipartUploads', bucket }, (o) =>
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: bucket,
            Prefix: prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
          o,
        ),
      );
      for (const u of out.Uploads ?? []) {
        if (u.Key && u.UploadId) uploads.push({ key: u.Key, uploadId: u.UploadId, initiated: u.Initiated ?? new Date(0) });
      }
      if (!out.IsTruncated) return uploads;
      keyMarker = out.NextKeyMarker;
      uploadIdMarker = out.NextUploadIdMarker;
    }
  }

  // ---- listing ----------------------------------------------------------

  async list(bucket: string, opts: ListOptions = {}): Promise<ListPage> {
    const out = await this.call({ op: 'ListObjectsV2', bucket }, (o) =>
      this.client.send(
        new ListObjectsV2Command({
          Bucket: bucket,
          Prefix: opts.prefix,
          Delimiter: opts.delimiter,
          StartAfter: opts.startAfter,
          ContinuationToken: opts.continuationToken,
          MaxKeys: opts.maxKeys,
        }),
        o,
      ),
    );
    return {
      objects: (out.Contents ?? []).map((c) => ({
        key: c.Key ?? '',
        size: c.Size ?? 0,
        etag: c.ETag ?? '',
        lastModified: c.LastModified ?? new Date(0),
      })),
      prefixes: (out.CommonPrefixes ?? []).map((p) => p.Prefix ?? ''),
      nextContinuationToken: out.IsTruncated ? out.NextContinuationToken : undefined,
    };
  }

  /** Every page of a listing, following continuation tokens. */
  async *listAll(
    bucket: string,
    opts: { prefix?: string; delimiter?: string; maxKeys?: number } = {},
  ): AsyncIterable<ListPage> {
    let continuationToken: string | undefined;
    do {
      const page = await this.list(bucket, { ...opts, continuationToken });
      yield page;
      continuationToken = page.nextContinuationToken;
    } while (continuationToken);
  }

  // ---- internals --------------------------------------------------------

  /**
   * Runs one SDK call: counts requests and SDK retries, maps errors. An abort
   * requested through `signal` is rethrown as-is rather than as a StoreError.
   */
  private async call<T extends { $metadata?: { attempts?: number } }>(
    ctx: StoreErrorContext,
    run: (options: CallOptions | undefined) => Promise<T>,
    signal?: AbortSignal,
  ): Promise<T> {
    try {
      // Without per-call options the client reuses its resolved middleware stack (cacheMiddleware).
      const out = await run(signal ? { abortSignal: signal } : undefined);
      this.countRequests(ctx.op, out.$metadata?.attempts);
      return out;
    } catch (err) {
      this.countRequests(ctx.op, (err as { $metadata?: { attempts?: number } })?.$metadata?.attempts);
      if (signal?.aborted) throw err;
      throw toStoreError(err, this.context(ctx));
    }
  }

  /** One GetObject through the lean path or the SDK, as a GetResult either way. */
  private async sendGet(
    ctx: StoreErrorContext,
    range: string | undefined,
    ifMatch: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<GetResult> {
    const bucket = ctx.bucket as string;
    const key = ctx.key as string;
    if (this.lean) {
      const headers: Record<string, string> = {};
      if (range !== undefined) headers.range = range;
      if (ifMatch !== undefined) headers['if-match'] = ifMatch;
      const lean = this.lean;
      const res = await this.call(ctx, () => lean.send({ method: 'GET', bucket, key, headers, signal }), signal);
      return getResultFromHeaders(res.headers, res.body);
    }
    const out = await this.call(
      ctx,
      (o) => this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: range, IfMatch: ifMatch }), o),
      signal,
    );
    return {
      body: out.Body as Readable,
      etag: out.ETag,
      contentRange: out.ContentRange,
      contentLength: out.ContentLength,
      lastModified: out.LastModified,
      metadata: out.Metadata,
      contentType: out.ContentType,
    };
  }

  private countRequests(op: string, attempts = 1): void {
    this.stats.requests[op] = (this.stats.requests[op] ?? 0) + attempts;
    if (attempts > 1) this.countRetries(op, attempts - 1);
  }

  private countRetries(op: string, n: number): void {
    this.stats.retries += n;
    this.stats.retriesByOp[op] = (this.stats.retriesByOp[op] ?? 0) + n;
  }

  private context(ctx: StoreErrorContext): StoreErrorContext {
    return { ...ctx, endpoint: this.endpoint };
  }

  /**
   * GETs [start, endExclusive) (to the end of the object if endExclusive is undefined)
   * into one Buffer. Request-level failures are retried by the SDK; a body that breaks
   * off is resumed here from the first missing byte, pinned to the first response's ETag.
   */
  private async fetchBytes(
    bucket: string,
    key: string,
    start: number,
    endExclusive: number | undefined,
    opts: { ifMatch?: string; signal?: AbortSignal },
  ): Promise<{ body: Buffer; info: ObjectInfo }> {
    const ctx = this.context({ op: 'GetObject', bucket, key });
    let pinnedEtag = opts.ifMatch;
    let info: ObjectInfo | undefined;
    let buffer: Buffer | undefined;
    let filled = 0;
    for (let attempt = 1; ; attempt++) {
      const from = start + filled;
      const wholeObject = from === 0 && endExclusive === undefined;
      const range = wholeObject ? undefined : `bytes=${from}-${endExclusive === undefined ? '' : endExclusive - 1}`;
      const out = await this.sendGet(ctx, range, pinnedEtag, opts.signal);
      const body = out.body;
      try {
        // Checked here too because some S3-compatible servers (s3rver among them) ignore If-Match.
        assertEtagMatches(pinnedEtag, out.etag, ctx);
        const served = servedRange(out);
        const end = endExclusive ?? served.total;
        if (served.total < end) {
          throw storeError('InvalidRange', `object is ${served.total} bytes, range ends at ${end}`, ctx);
        }
        if (served.start > from) {
          throw storeError('ServerError', `server returned bytes from ${served.start}, asked for ${from}`, ctx);
        }
        info ??= infoFromGet(key, out, served.total, ctx);
        pinnedEtag ??= info.etag;
        buffer ??= Buffer.allocUnsafe(end - start);
        filled = await this.readInto(body, buffer, filled, from - served.start);
        return { body: buffer, info };
      } catch (err) {
        body.destroy();
        const partial = err instanceof PartialRead ? err : undefined;
        const cause = partial ? partial.cause : err;
        if (opts.signal?.aborted) throw asAbortError(cause);
        if (partial) filled = partial.filled;
        if (!partial || !isBodyInterruption(cause) || attempt >= this.maxAttempts) {
          if (cause instanceof ShortBodyError) throw storeError('ServerError', `${cause.message}, retries exhausted`, ctx, { cause });
          throw toStoreError(cause, ctx);
        }
        this.countRetries(ctx.op, 1);
        await sleep(backoffDelayMs(attempt), opts.signal);
      }
    }
  }

  /**
   * Copies body bytes into `buffer` from offset `filled` on, first discarding `skip`
   * bytes (servers that ignore or widen the Range header). Returns the new fill level;
   * throws PartialRead (carrying progress) if the body ends or breaks early.
   */
  private async readInto(body: Readable, buffer: Buffer, filled: number, skip: number): Promise<number> {
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        this.stats.bytesReceived += chunk.length;
        let piece = chunk;
        if (skip > 0) {
          const dropped = Math.min(skip, piece.length);
          skip -= dropped;
          piece = piece.subarray(dropped);
        }
        const wanted = Math.min(piece.length, buffer.length - filled);
        piece.copy(buffer, filled, 0, wanted);
        filled += wanted;
        // More than asked for (a server that widened the range): leaving the loop destroys the body.
        // A body that ends exactly here is read to its end instead, so the socket stays in the
        // keep-alive pool (destroying it cost a new TCP connection per ranged GET).
        if (wanted < piece.length) return filled;
      }
    } catch (err) {
      throw new PartialRead(filled, err);
    }
    if (filled < buffer.length) throw new PartialRead(filled, new ShortBodyError(buffer.length, filled));
    return filled;
  }
}

/** A body cut by an abort errors as whatever the socket saw ('aborted', ECONNRESET); callers check for AbortError. */
function asAbortError(cause: unknown): unknown {
  if (cause instanceof Error && cause.name === 'AbortError') return cause;
  const err = new Error('The operation was aborted', { cause });
  err.name = 'AbortError';
  return err;
}

/** A body read that broke off; keeps how far it got so the retry can resume. */
class PartialRead extends Error {
  override name = 'PartialRead';
  constructor(
    readonly filled: number,
    override readonly cause: unknown,
  ) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/** Passes `take` bytes after dropping `skip` bytes; errors if the source ends short. */
class ByteWindow extends Transform {
  private remaining: number;

  constructor(
    private skip: number,
    private readonly windowLength: number,
    private readonly onBytes: (n: number) => void,
  ) {
    super();
    this.remaining = windowLength;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.onBytes(chunk.length);
    let piece = chunk;
    if (this.skip > 0) {
      const dropped = Math.min(this.skip, piece.length);
      this.skip -= dropped;
      piece = piece.subarray(dropped);
    }
    if (this.remaining > 0 && piece.length > 0) {
      const out = piece.subarray(0, Math.min(piece.length, this.remaining));
      this.remaining -= out.length;
      this.push(out);
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    callback(this.remaining > 0 ? new ShortBodyError(this.windowLength, this.windowLength - this.remaining) : null);
  }
}

interface ServedRange {
  /** Offset of the first body byte within the object. */
  start: number;
  /** Whole object size. */
  total: number;
}

/** A GetObject response, whichever path fetched it. */
interface GetResult {
  body: Readable;
  etag?: string;
  contentRange?: string;
  contentLength?: number;
  lastModified?: Date;
  metadata?: Record<string, string>;
  contentType?: string;
}

/** The fields the SDK would deserialize from a GetObject response's headers. */
function getResultFromHeaders(headers: http.IncomingHttpHeaders, body: Readable): GetResult {
  const metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith('x-amz-meta-') && value !== undefined) metadata[name.slice('x-amz-meta-'.length)] = headerValue(value) ?? '';
  }
  const length = headers['content-length'];
  const modified = headers['last-modified'];
  return {
    body,
    etag: headers.etag,
    contentRange: headers['content-range'],
    contentLength: length === undefined ? undefined : Number(length),
    lastModified: modified === undefined ? undefined : new Date(modified),
    metadata,
    contentType: headers['content-type'],
  };
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Where the body sits within the object: from Content-Range, else the full object. */
function servedRange(out: GetResult): ServedRange {
  const match = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(out.contentRange ?? '');
  if (match) return { start: Number(match[1]), total: Number(match[3]) };
  return { start: 0, total: out.contentLength ?? 0 };
}

function infoFromGet(key: string, out: GetResult, size: number, ctx: StoreErrorContext): ObjectInfo {
  return {
    key,
    size,
    etag: requireEtag(out.etag, ctx),
    lastModified: out.lastModified ?? new Date(0),
    metadata: out.metadata ?? {},
    contentType: out.contentType,
  };
}

/** Compares ETags ignoring quotes and weak-validator prefixes. */
export function sameEtag(a: string, b: string): boolean {
  const normalize = (etag: string) => etag.replace(/^W\//, '').replace(/"/g, '');
  return normalize(a) === normalize(b);
}

function assertEtagMatches(expected: string | undefined, actual: string | undefined, ctx: StoreErrorContext): void {
  if (expected !== undefined && (actual === undefined || !sameEtag(expected, actual))) {
    throw storeError('PreconditionFailed', `object changed: ETag is ${actual ?? 'missing'}, expected ${expected}`, ctx, {
      s3Code: 'PreconditionFailed',
      status: 412,
    });
  }
}

function requireEtag(etag: string | undefined, ctx: StoreErrorContext): string {
  if (!etag) throw storeError('ServerError', 'response lacked an ETag', ctx);
  return etag;
}

function metadataDirective(opts: CopyOptions): 'COPY' | 'REPLACE' {
  return opts.metadataDirective ?? (opts.metadata || opts.contentType ? 'REPLACE' : 'COPY');
}

/** x-amz-copy-source is "bucket/key" URL-encoded, keeping the slashes. */
function encodeCopySource(bucket: string, key: string): string {
  return `${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
}

function isCopySourceTooLarge(err: unknown): boolean {
  if (!isStoreError(err) || err.s3Code !== 'InvalidRequest') return false;
  const message = err.cause instanceof Error ? err.cause.message : '';
  return /larger than the maximum allowable size/i.test(message);
}

function defaultEndpointFromEnv(): string | undefined {
  return process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL || undefined;
}

function parseEndpoint(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new TypeError(`S3 endpoint is not a URL (expected http://host:port or https://host): ${endpoint}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`S3 endpoint must use http or https, got ${url.protocol}`);
  }
  return url;
}

function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** Virtual-host addressing needs DNS names per bucket, which IPs and localhost lack. */
function isLocalOrIpHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return isIP(host) !== 0 || host === 'localhost' || host.endsWith('.localhost');
}

async function mapWithConcurrency<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index], index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
