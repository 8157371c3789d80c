/**
 * The S3 endpoint: one request listener for the HTTP and HTTPS servers. It authenticates (SigV4),
 * routes (path-style and virtual-host-style), checks bucket access, and runs the operation against
 * the bucket's Engine. Errors become S3 error documents; integrity failures become 500s and are
 * counted, and never turn into wrong bytes on the wire.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { LRUCache } from 'lru-cache';
import { DEFAULT_PART_SIZE, Engine, EngineError, hostPreferredCipher, type ObjectStat } from '../engine/index.js';
import { parentDir } from '../engine/paths.js';
import { streamPieces } from '../engine/stream-pieces.js';
import { ciphertextSize, ConfigError, IntegrityError, NameError } from '../format/index.js';
import { KeyError } from '../keys/index.js';
import { isStoreError, StoreError } from '../store/errors.js';
import type { ObjectStore } from '../store/store.js';
import type { BucketRegistry, OpenBucket, StoreDefaults } from './buckets.js';
import { Errors, errorXml, isS3Error, S3Error } from './errors.js';
import { checkMaxKeys, GATEWAY_DIR, isHiddenKey, listObjects, type ListQuery, type ListResult } from './listing.js';
import { KeyLocks } from './locks.js';
import {
  attributesFromHeaders, clientAttributes, clientEtag, DEFAULT_CONTENT_TYPE, httpDate, md5Etag, objectHeaders, quote, unquote, withEtag,
} from './meta.js';
import type { GatewayMetrics } from './metrics.js';
import { MultipartManager } from './multipart.js';
import { Payload } from './payload.js';
import { singlePut } from './single-put.js';
import { hasAuth, headerValues, parseQuery, percentDecode, verifyRequest, type AuthContext, type ClientCredential } from './sigv4.js';
import { childrenNamed, childText, parseXml, s3Root, XmlError, xmlElement, xmlFields, type XmlNode } from './xml.js';

const MiB = 1024 * 1024;

export type ConditionalMode = 'auto' | 'backend' | 'gateway';

export interface GatewayOptions {
  registry: BucketRegistry;
  credentials: ClientCredential[];
  /** Host suffixes for virtual-host-style addressing ("s3.example.net": "b.s3.example.net" is bucket b). */
  virtualHostSuffixes?: string[];
  /** Region reported by GetBucketLocation (default us-east-1). */
  region?: string;
  /** Regions accepted in signatures (default: any). */
  regions?: string[];
  maxSkewMs?: number;
  /** Largest object body (default 5 GiB). */
  maxObjectBytes?: number;
  /** Largest XML request body (default 2 MiB). */
  maxXmlBytes?: number;
  conditionalWrites?: ConditionalMode;
  /** Conditional PUTs forwarded to the backend are sent as one PUT, so they are buffered up to this size (default 64 MiB). */
  conditionalForwardMaxBytes?: number;
  /** Bodies up to this size without Content-MD5 are buffered to record their MD5 ETag (default 16 MiB). */
  md5BufferMaxBytes?: number;
  /** GET responses up to this size are fully decrypted and verified before the status line (default 16 MiB). */
  verifyBeforeSendBytes?: number;
  /** "exact": listings show the same ETag as HEAD (a HEAD per object not in the cache); "fast": derived ETags only. */
  listEtags?: 'exact' | 'fast';
  /** How long a stat from a HEAD or GET serves later ranged GETs of the same version without a HEAD (default 5 s; 0 disables). */
  statCacheMs?: number;
  /** Whether CreateBucket/DeleteBucket reach the backend (default true). */
  bucketAdmin?: boolean;
  storeDefaults?: StoreDefaults;
  metrics?: GatewayMetrics;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void; debug(obj: object, msg?: string): void };
}

/** One request as the handlers see it. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  id: string;
  method: string;
  bucket?: string;
  key?: string;
  /** Decoded query parameters (first value wins). */
  query: Map<string, string>;
  auth?: AuthContext;
  op: string;
  resource: string;
  /** Bytes sent in the response body. */
  sent: number;
  received: number;
}

const NOT_IMPLEMENTED_BUCKET_SUBRESOURCES = [
  'policy', 'cors', 'lifecycle', 'tagging', 'encryption', 'website', 'logging', 'notification', 'replication', 'object-lock',
  'ownershipControls', 'publicAccessBlock', 'requestPayment', 'accelerate', 'analytics', 'metrics', 'inventory', 'intelligent-tiering',
  'versions', 'policyStatus', 'torrent', 'restore', 'select', 'retention', 'legal-hold', 'attributes',
];

export class Gateway {
  readonly opts: Required<Omit<GatewayOptions, 'metrics' | 'log' | 'regions' | 'storeDefaults'>> & Pick<GatewayOptions, 'metrics' | 'log' | 'regions' | 'storeDefaults'>;
  private readonly credentials = new Map<string, ClientCredential>();
  private readonly locks = new KeyLocks();
  private readonly probes = new Map<string, Promise<boolean>>();
  /** bucket \0 path -> [backend ETag, client ETag] */
  private readonly etags = new LRUCache<string, [string, string]>({ max: 200_000 });
  /**
   * bucket \0 path -> a recent stat (HEAD or GET response), so a ranged GET needs no HEAD: its GET is
   * pinned to the stat's backend ETag. Short-lived, because a metadata-only change made elsewhere
   * (a copy onto itself) may keep the ETag; content never comes from it.
   */
  private readonly statCache: LRUCache<string, ObjectStat>;
  readonly multipart: MultipartManager;
  inFlight = 0;
  /** When false, S3 requests get 503 (the key is not loaded yet). */
  ready = () => this.opts.registry.keyLoaded;

  constructor(opts: GatewayOptions) {
    this.opts = {
      virtualHostSuffixes: [],
      region: 'us-east-1',
      maxSkewMs: 15 * 60_000,
      maxObjectBytes: 5 * 1024 * MiB,
      maxXmlBytes: 2 * MiB,
      conditionalWrites: 'auto',
      conditionalForwardMaxBytes: 64 * MiB,
      md5BufferMaxBytes: 16 * MiB,
      verifyBeforeSendBytes: 16 * MiB,
      listEtags: 'exact',
      bucketAdmin: true,
      statCacheMs: 5_000,
      ...opts,
    };
    for (const c of opts.credentials) this.credentials.set(c.accessKeyId, c);
    this.statCache = new LRUCache<string, ObjectStat>({ max: 10_000, ttl: Math.max(1, this.opts.statCacheMs) });
    this.multipart = new MultipartManager(this);
  }

  get registry(): BucketRegistry {
    return this.opts.registry;
  }

  /** The request listener. */
  readonly listener = (req: IncomingMessage, res: ServerResponse): void => {
    const ctx: RequestContext = {
      req, res, id: randomBytes(8).toString('hex').toUpperCase(), method: req.method ?? 'GET', query: new Map(), op: 'Unknown', resource: '/', sent: 0, received: 0,
    };
    const started = process.hrtime.bigint();
    this.inFlight++;
    this.opts.metrics?.inFlight.inc();
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.inFlight--;
      this.opts.metrics?.inFlight.dec();
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const status = res.headersSent ? res.statusCode : 499;
      this.opts.metrics?.observe(ctx.op, status, seconds);
      this.opts.log?.debug({ req: ctx.id, op: ctx.op, method: ctx.method, bucket: ctx.bucket, key: ctx.key, status, ms: Math.round(seconds * 1000) }, 'request');
    };
    res.once('finish', finish);
    res.once('close', finish);
    this.handle(ctx).catch((err: unknown) => this.fail(ctx, err));
  };

  private async handle(ctx: RequestContext): Promise<void> {
    const { req } = ctx;
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q < 0 ? url : url.slice(0, q);
    const rawQuery = q < 0 ? '' : url.slice(q + 1);
    const params = parseQuery(rawQuery);
    for (const p of params) if (!ctx.query.has(p.name)) ctx.query.set(p.name, p.value);
    this.route(ctx, rawPath);
    ctx.op = operationName(ctx);
    if (!this.ready()) throw Errors.serviceUnavailable('the gateway has not loaded its key yet');
    const headers = headerValues(req.rawHeaders);
    if (!hasAuth(headers, params)) throw Errors.accessDenied('Anonymous access is not allowed: sign requests with AWS Signature Version 4');
    ctx.auth = verifyRequest(
      { method: ctx.method, rawPath, rawQuery, rawHeaders: req.rawHeaders },
      { lookup: (id) => this.credentials.get(id), maxSkewMs: this.opts.maxSkewMs, regions: this.opts.regions },
    );
    if (ctx.bucket !== undefined) this.authorizeBucket(ctx, ctx.bucket);
    await this.dispatch(ctx);
  }

  /** Fills ctx.bucket and ctx.key from the Host header and the path. */
  private route(ctx: RequestContext, rawPath: string): void {
    const host = (ctx.req.headers.host ?? '').toLowerCase().replace(/:\d+$/, '');
    const path = percentDecode(rawPath);
    if (!path.startsWith('/')) throw Errors.invalidUri();
    let bucket: string | undefined;
    let key: string | undefined;
    const suffix = this.opts.virtualHostSuffixes.find((s) => host.endsWith('.' + s.toLowerCase()));
    if (suffix) {
      bucket = host.slice(0, host.length - suffix.length - 1);
      key = path.slice(1);
    } else {
      const rest = path.slice(1);
      const slash = rest.indexOf('/');
      bucket = slash < 0 ? rest : rest.slice(0, slash);
      key = slash < 0 ? '' : rest.slice(slash + 1);
    }
    ctx.bucket = bucket === '' ? undefined : bucket;
    ctx.key = key === '' ? undefined : key;
    ctx.resource = path;
  }

  private authorizeBucket(ctx: RequestContext, bucket: string): void {
    if (!this.registry.spec(bucket)) throw Errors.accessDenied(`Access Denied: bucket ${bucket} is not served by this gateway`);
    const allowed = ctx.auth?.credential.buckets;
    if (allowed && !allowed.includes(bucket)) throw Errors.accessDenied(`Access Denied: this access key may not use bucket ${bucket}`);
  }

  private async dispatch(ctx: RequestContext): Promise<void> {
    const { method, query } = ctx;
    if (ctx.bucket === undefined) {
      if (method === 'GET') return this.listBuckets(ctx);
      throw Errors.methodNotAllowed();
    }
    if (ctx.key === undefined) {
      switch (method) {
        case 'HEAD': return this.headBucket(ctx);
        case 'GET':
          if (query.has('location')) return this.bucketLocation(ctx);
          if (query.has('uploads')) return this.multipart.listUploads(ctx, await this.bucket(ctx));
          if (query.has('versioning')) return this.sendXml(ctx, 200, s3Root('VersioningConfiguration', []));
          if (query.has('acl')) return this.sendXml(ctx, 200, this.aclXml(ctx));
          for (const sub of NOT_IMPLEMENTED_BUCKET_SUBRESOURCES) if (query.has(sub)) throw Errors.notImplemented();
          return this.listObjectsRequest(ctx, query.get('list-type') === '2');
        case 'PUT':
          if (query.size > 0) throw Errors.notImplemented();
          return this.createBucket(ctx);
        case 'DELETE':
          if (query.size > 0) throw Errors.notImplemented();
          return this.deleteBucket(ctx);
        case 'POST':
          if (query.has('delete')) return this.deleteObjects(ctx);
          throw Errors.notImplemented('POST object uploads (HTML forms) are not supported');
        default:
          throw Errors.methodNotAllowed();
      }
    }
    switch (method) {
      case 'GET':
        if (query.has('uploadId')) return this.multipart.listParts(ctx, await this.bucket(ctx));
        if (query.has('acl')) return this.sendXml(ctx, 200, this.aclXml(ctx));
        if (query.has('tagging')) return this.sendXml(ctx, 200, s3Root('Tagging', [xmlElement('TagSet', [])]));
        if (query.has('attributes') || query.has('torrent')) throw Errors.notImplemented();
        return this.getObject(ctx, true);
      case 'HEAD':
        return this.getObject(ctx, false);
      case 'PUT':
        if (query.has('uploadId') || query.has('partNumber')) return this.multipart.uploadPart(ctx, await this.bucket(ctx));
        if (query.has('acl') || query.has('tagging') || query.has('retention') || query.has('legal-hold')) throw Errors.notImplemented();
        if (ctx.req.headers['x-amz-copy-source'] !== undefined) return this.copyObject(ctx);
        return this.putObject(ctx);
      case 'POST':
        if (query.has('uploads')) return this.multipart.create(ctx, await this.bucket(ctx));
        if (query.has('uploadId')) return this.multipart.complete(ctx, await this.bucket(ctx));
        throw Errors.notImplemented();
      case 'DELETE':
        if (query.has('uploadId')) return this.multipart.abort(ctx, await this.bucket(ctx));
        if (query.has('tagging')) throw Errors.notImplemented();
        return this.deleteObject(ctx);
      default:
        throw Errors.methodNotAllowed();
    }
  }

  // ---- helpers ------------------------------------------------------------------------------------

  /** The opened store behind ctx.bucket (NoSuchBucket when it is missing or not initialised). */
  async bucket(ctx: RequestContext, name = ctx.bucket!): Promise<OpenBucket> {
    try {
      return await this.registry.open(name);
    } catch (err) {
      if (err instanceof EngineError && (err.code === 'NOT_INITIALIZED' || err.code === 'NOT_FOUND')) throw Errors.noSuchBucket(name);
      if (isStoreError(err, 'NoSuchBucket')) throw Errors.noSuchBucket(name);
      throw err;
    }
  }

  /** Validates a client key for the engine; returns the engine path. */
  objectPath(key: string): string {
    if (Buffer.byteLength(key, 'utf8') > 1024) throw Errors.keyTooLong();
    const top = key.split('/')[0];
    if (isHiddenKey(key) || top === GATEWAY_DIR || top.startsWith('.s3cryptfs')) {
      throw Errors.invalidArgument(`keys starting with ".s3cryptfs" are reserved by the gateway`, { Key: key });
    }
    const segments = (key.endsWith('/') ? key.slice(0, -1) : key).split('/');
    if (key.startsWith('/') || segments.some((s) => s === '' || s === '.' || s === '..')) {
      throw Errors.invalidArgument('this gateway stores keys as paths: empty, "." and ".." path segments and a leading "/" are not supported', { Key: key });
    }
    return key;
  }

  withKeyLock<T>(b: OpenBucket, path: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(`${b.spec.name}\0${path}`, fn);
  }

  /** A write or delete through this gateway: the recorded ETag replaces the old one, and the cached stat goes. */
  rememberEtag(bucket: string, path: string, backendEtag: string, etag: string): void {
    this.etags.set(`${bucket}\0${path}`, [backendEtag, etag]);
    this.statCache.delete(`${bucket}\0${path}`);
  }

  forgetObject(bucket: string, path: string): void {
    this.etags.delete(`${bucket}\0${path}`);
    this.statCache.delete(`${bucket}\0${path}`);
  }

  private cacheKey(b: OpenBucket, path: string): string {
    return `${b.spec.name}\0${path}`;
  }

  /** Records a stat that came from a backend HEAD or GET response. */
  private rememberStat(b: OpenBucket, path: string, st: ObjectStat): void {
    this.rememberEtag(b.spec.name, path, st.etag, clientEtag(st));
    if (this.opts.statCacheMs > 0) this.statCache.set(this.cacheKey(b, path), st);
  }

  async statObject(b: OpenBucket, path: string): Promise<ObjectStat | null> {
    const st = await b.engine.stat(path);
    if (st) this.rememberStat(b, path, st);
    return st;
  }

  private async clientEtagFor(b: OpenBucket, path: string, backendEtag: string): Promise<string> {
    const hit = this.etags.get(`${b.spec.name}\0${path}`);
    if (hit && hit[0] === backendEtag) return hit[1];
    if (this.opts.listEtags === 'fast' || path.endsWith('/')) return clientEtag({ size: -1, etag: backendEtag, attributes: {} });
    const st = await this.statObject(b, path);
    return st ? clientEtag(st) : clientEtag({ size: -1, etag: backendEtag, attributes: {} });
  }

  setCommonHeaders(ctx: RequestContext): void {
    const { res } = ctx;
    if (res.headersSent) return;
    res.setHeader('x-amz-request-id', ctx.id);
    res.setHeader('x-amz-id-2', ctx.id);
    res.setHeader('server', 's3cryptfs');
  }

  send(ctx: RequestContext, status: number, headers: OutgoingHttpHeaders = {}, body?: Buffer | string): void {
    const { res } = ctx;
    this.setCommonHeaders(ctx);
    const data = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
    if (headers['content-length'] === undefined) headers['content-length'] = String(data?.length ?? 0);
    res.writeHead(status, headers);
    if (data && ctx.method !== 'HEAD') {
      ctx.sent += data.length;
      res.end(data);
    } else {
      res.end();
    }
  }

  sendXml(ctx: RequestContext, status: number, xml: string, headers: OutgoingHttpHeaders = {}): void {
    this.send(ctx, status, { 'content-type': 'application/xml', ...headers }, xml);
  }

  /** Reads and parses an XML request body (verified like any payload). */
  async readXml(ctx: RequestContext): Promise<XmlNode> {
    const body = await new Payload(ctx.req, ctx.req.headers, ctx.auth, this.opts.maxXmlBytes).buffer();
    try {
      return parseXml(body.toString('utf8'));
    } catch (err) {
      if (err instanceof XmlError) throw Errors.malformedXml();
      throw err;
    }
  }

  private fail(ctx: RequestContext, err: unknown): void {
    let e = this.toS3Error(err);
    // A connection reset once the whole request body is in was the backend's, not the client's:
    // a 5xx the client may retry, not 400 IncompleteBody.
    if (e.code === 'IncompleteBody' && !isS3Error(err) && ctx.req.complete) {
      e = Errors.internal('the connection to the storage backend broke off', err);
    }
    if (e.status >= 500) this.opts.log?.warn({ req: ctx.id, op: ctx.op, bucket: ctx.bucket, key: ctx.key, err: describe(err) }, 'request failed');
    const { req, res } = ctx;
    if (res.headersSent) {
      // Part of the body is out: the only honest signal left is to cut the connection.
      res.destroy();
      return;
    }
    // Unread request bodies would otherwise be parsed as the next request.
    if (!req.complete) res.setHeader('connection', 'close');
    const xml = errorXml(e, ctx.resource, ctx.id);
    this.sendXml(ctx, e.status, xml);
    if (!req.complete) req.resume();
  }

  toS3Error(err: unknown): S3Error {
    if (isS3Error(err)) return err;
    if (err instanceof IntegrityError || (err instanceof NameError && err.code === 'NAME_TAMPERED')) {
      this.opts.metrics?.integrityFailures.inc();
      return Errors.internal(`integrity check failed: the stored object is damaged or was tampered with (${err.message})`, err);
    }
    if (err instanceof EngineError) {
      switch (err.code) {
        case 'NOT_FOUND': return new S3Error('NoSuchKey', 404, 'The specified key does not exist.');
        case 'NOT_INITIALIZED': return new S3Error('NoSuchBucket', 404, 'The specified bucket does not exist');
        case 'INVALID_PATH': return Errors.invalidArgument(err.message);
        case 'NAME_TOO_LONG': return Errors.keyTooLong();
        case 'TOO_LARGE': return Errors.entityTooLarge(this.opts.maxObjectBytes);
        case 'OBJECT_CHANGED': return new S3Error('InternalError', 500, 'the object changed while it was being read; retry');
        case 'WRONG_KEY': return Errors.serviceUnavailable('the gateway key does not match this bucket');
        default: return Errors.internal(err.message, err);
      }
    }
    if (err instanceof StoreError) {
      switch (err.code) {
        case 'NoSuchBucket': return Errors.noSuchBucket(err.bucket ?? '');
        case 'NoSuchKey': return new S3Error('NoSuchKey', 404, 'The specified key does not exist.');
        case 'PreconditionFailed': return err.status === 409 ? Errors.conditionalConflict() : Errors.preconditionFailed('If-None-Match');
        case 'Throttled': return Errors.slowDown();
        case 'EndpointUnreachable': return Errors.serviceUnavailable('the storage backend is unreachable');
        case 'NotImplemented': return Errors.notImplemented('the storage backend does not support this operation');
        case 'AccessDenied':
        case 'InvalidCredentials': return Errors.internal('the storage backend refused the gateway\'s credentials', err);
        default: return Errors.internal(`storage backend error: ${err.message}`, err);
      }
    }
    if (err instanceof KeyError) return Errors.serviceUnavailable('the gateway key is not available');
    if (err instanceof ConfigError) return Errors.internal(`store config error: ${err.message}`, err);
    const code = (err as { code?: string } | null)?.code;
    if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ABORT_ERR') return Errors.incompleteBody();
    return Errors.internal(undefined, err);
  }

  // ---- service and bucket operations --------------------------------------------------------------

  private ownerXml(ctx: RequestContext): string {
    const id = Buffer.from(ctx.auth!.credential.accessKeyId).toString('hex').padEnd(64, '0').slice(0, 64);
    return xmlElement('Owner', xmlFields([['ID', id], ['DisplayName', ctx.auth!.credential.accessKeyId]]));
  }

  private aclXml(ctx: RequestContext): string {
    const owner = this.ownerXml(ctx);
    const grantee = `<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">${owner.replace(/^<Owner>|<\/Owner>$/g, '')}</Grantee>`;
    return s3Root('AccessControlPolicy', [owner, xmlElement('AccessControlList', [xmlElement('Grant', [grantee, xmlElement('Permission', 'FULL_CONTROL')])])]);
  }

  private async listBuckets(ctx: RequestContext): Promise<void> {
    const allowed = ctx.auth!.credential.buckets;
    const names = this.registry.names().filter((n) => !allowed || allowed.includes(n));
    const entries: string[] = [];
    for (const name of names) {
      try {
        const b = await this.registry.open(name);
        entries.push(xmlElement('Bucket', xmlFields([['Name', name], ['CreationDate', b.created.toISOString()]])));
      } catch (err) {
        if (!(err instanceof EngineError) && !isStoreError(err, 'NoSuchBucket')) throw err;
        // Not created yet: not listed.
      }
    }
    this.sendXml(ctx, 200, s3Root('ListAllMyBucketsResult', [this.ownerXml(ctx), xmlElement('Buckets', entries)]));
  }

  private async headBucket(ctx: RequestContext): Promise<void> {
    await this.bucket(ctx);
    this.send(ctx, 200, { 'x-amz-bucket-region': this.opts.region });
  }

  private async bucketLocation(ctx: RequestContext): Promise<void> {
    await this.bucket(ctx);
    const region = this.opts.region === 'us-east-1' ? '' : this.opts.region;
    this.sendXml(ctx, 200, s3Root('LocationConstraint', []).replace('></LocationConstraint>', `>${region}</LocationConstraint>`));
  }

  private async createBucket(ctx: RequestContext): Promise<void> {
    if (!this.opts.bucketAdmin) throw Errors.accessDenied('CreateBucket is disabled on this gateway');
    const payload = new Payload(ctx.req, ctx.req.headers, ctx.auth, this.opts.maxXmlBytes);
    const body = await payload.buffer();
    if (body.length > 0) {
      try {
        const root = parseXml(body.toString('utf8'));
        if (root.name !== 'CreateBucketConfiguration') throw Errors.malformedXml();
      } catch (err) {
        if (err instanceof XmlError) throw Errors.malformedXml();
        throw err;
      }
    }
    const name = ctx.bucket!;
    try {
      await this.registry.open(name);
      throw Errors.bucketAlreadyOwnedByYou(name);
    } catch (err) {
      if (isS3Error(err)) throw err;
      if (!(err instanceof EngineError && err.code === 'NOT_INITIALIZED') && !isStoreError(err, 'NoSuchBucket')) throw err;
    }
    try {
      await this.registry.create(name, this.opts.storeDefaults ?? { cipher: hostPreferredCipher(), chunkSize: 64 * 1024, names: 'plain' });
    } catch (err) {
      if (err instanceof EngineError && err.code === 'ALREADY_INITIALIZED') throw Errors.bucketAlreadyOwnedByYou(name);
      throw err;
    }
    this.send(ctx, 200, { location: `/${name}` });
  }

  private async deleteBucket(ctx: RequestContext): Promise<void> {
    if (!this.opts.bucketAdmin) throw Errors.accessDenied('DeleteBucket is disabled on this gateway');
    const b = await this.bucket(ctx);
    const visible = await listObjects(b, { prefix: '', maxKeys: 1 });
    if (visible.objects.length > 0 || visible.prefixes.length > 0) throw Errors.bucketNotEmpty(b.spec.name);
    const uploads = await b.engine.list(GATEWAY_DIR + '/uploads/', { maxKeys: 1 });
    if (uploads.files.length > 0 || uploads.dirs.length > 0) throw Errors.bucketNotEmpty(b.spec.name);
    const store = b.store;
    await store.delete(b.spec.backendBucket, b.engine.prefix + '.s3cryptfs.json');
    this.registry.forget(b.spec.name);
    if (b.spec.prefix === '') {
      try {
        await store.deleteBucket(b.spec.backendBucket);
      } catch (err) {
        // Foreign objects in the backend bucket: the store is gone, the bucket stays.
        this.opts.log?.warn({ bucket: b.spec.backendBucket, err: describe(err) }, 'backend bucket not deleted');
      }
    }
    this.send(ctx, 204);
  }

  // ---- listing ------------------------------------------------------------------------------------

  private async listObjectsRequest(ctx: RequestContext, v2: boolean): Promise<void> {
    const b = await this.bucket(ctx);
    const q = ctx.query;
    const prefix = q.get('prefix') ?? '';
    const delimiter = q.get('delimiter') || undefined;
    const maxKeys = checkMaxKeys(q.get('max-keys'));
    const encoding = q.get('encoding-type');
    if (encoding !== undefined && encoding !== 'url') throw Errors.invalidArgument('Invalid Encoding Method specified in Request', { ArgumentName: 'encoding-type' });
    const enc = (s: string) => (encoding === 'url' ? urlEncodeKey(s) : s);
    const query: ListQuery = { prefix, delimiter, maxKeys };
    const token = q.get('continuation-token');
    const startAfter = q.get('start-after');
    const marker = q.get('marker');
    if (v2 && token !== undefined) Object.assign(query, decodeToken(token));
    else if (v2 && startAfter) query.after = startAfter;
    else if (!v2 && marker) query.after = marker;
    const result = await listObjects(b, query);
    const contents = await this.contentsXml(ctx, b, result, enc, !v2 || q.get('fetch-owner') === 'true');
    const prefixes = result.prefixes.map((p) => xmlElement('CommonPrefixes', [xmlElement('Prefix', enc(p))]));
    let fields: [string, string | number | boolean | undefined][];
    if (v2) {
      fields = [
        ['Name', b.spec.name], ['Prefix', enc(prefix)], ['Delimiter', delimiter && enc(delimiter)], ['MaxKeys', maxKeys],
        ['EncodingType', encoding], ['KeyCount', result.objects.length + result.prefixes.length], ['IsTruncated', result.truncated],
        ['ContinuationToken', token], ['NextContinuationToken', result.next ? encodeToken(result.next) : undefined],
        ['StartAfter', startAfter !== undefined ? enc(startAfter) : undefined],
      ];
    } else {
      const last = [...result.objects.map((o) => o.key), ...result.prefixes].sort().pop();
      const nextMarker = result.truncated ? ('after' in (result.next ?? {}) ? (result.next as { after: string }).after : last) : undefined;
      if (result.truncated && nextMarker === undefined) {
        // A backend page that held only hidden entries: continue with a V2 token is impossible in V1; fall back to the raw position.
      }
      fields = [
        ['Name', b.spec.name], ['Prefix', enc(prefix)], ['Marker', enc(marker ?? '')], ['NextMarker', nextMarker !== undefined && (delimiter || true) ? enc(nextMarker) : undefined],
        ['MaxKeys', maxKeys], ['Delimiter', delimiter && enc(delimiter)], ['EncodingType', encoding], ['IsTruncated', result.truncated],
      ];
    }
    this.sendXml(ctx, 200, s3Root('ListBucketResult', [...xmlFields(fields), ...contents, ...prefixes]));
  }

  private async contentsXml(ctx: RequestContext, b: OpenBucket, result: ListResult, enc: (s: string) => string, owner: boolean): Promise<string[]> {
    const etags = await mapLimit(result.objects, 16, (o) => this.clientEtagFor(b, o.key, o.backendEtag));
    const ownerXml = owner ? this.ownerXml(ctx) : '';
    return result.objects.map((o, i) =>
      xmlElement('Contents', [
        ...xmlFields([['Key', enc(o.key)], ['LastModified', o.lastModified.toISOString()], ['ETag', etags[i]], ['Size', o.size], ['StorageClass', 'STANDARD']]),
        ownerXml,
      ]),
    );
  }

  // ---- objects ------------------------------------------------------------------------------------

  private async getObject(ctx: RequestContext, withBody: boolean): Promise<void> {
    const b = await this.bucket(ctx);
    const key = ctx.key!;
    const path = this.objectPath(key);
    if (key.endsWith('/')) return this.getMarker(ctx, b, key, withBody);
    const h = ctx.req.headers;
    const conditional = h['if-match'] !== undefined || h['if-none-match'] !== undefined || h['if-modified-since'] !== undefined || h['if-unmodified-since'] !== undefined;
    if (withBody && h.range === undefined && !conditional) {
      // A whole-object GET is one backend GET: its response carries the stat, so no HEAD.
      const whole = b.engine.openWhole(path);
      if (whole) {
        const opened = await whole;
        if (!opened) throw Errors.noSuchKey(key);
        this.rememberStat(b, path, opened.stat);
        return this.serveObject(ctx, b, path, opened.stat, withBody, opened.stream);
      }
    }
    if (withBody && h.range !== undefined && !conditional) {
      // A range of a version stat'ed recently: one GET pinned to its ETag (If-Match), no HEAD. If
      // the object changed since, the backend refuses the pinned GET before any byte is sent, and
      // the version is stat'ed afresh below.
      const cached = this.statCache.get(this.cacheKey(b, path));
      if (cached) {
        try {
          return await this.serveObject(ctx, b, path, cached, withBody, undefined, true);
        } catch (err) {
          const stale = err instanceof EngineError && (err.code === 'OBJECT_CHANGED' || err.code === 'NOT_FOUND');
          if (ctx.res.headersSent || !(stale || err === STALE_RANGE)) throw err;
          this.statCache.delete(this.cacheKey(b, path));
        }
      }
    }
    // Conditional GETs stat first, so a 304 or 412 never starts a body.
    const st = await this.statObject(b, path);
    if (!st) throw Errors.noSuchKey(key);
    return this.serveObject(ctx, b, path, st, withBody);
  }

  /**
   * Answers a GET or HEAD for the version `st` describes. The body is `early` (a whole-object
   * stream already open) or a stream pinned to st's backend ETag. With `fromCache`, a range the
   * cached size cannot satisfy throws STALE_RANGE instead of 416 (the object may have grown).
   */
  private async serveObject(
    ctx: RequestContext, b: OpenBucket, path: string, st: ObjectStat, withBody: boolean, early?: Readable, fromCache = false,
  ): Promise<void> {
    const headers = objectHeaders(st);
    const etag = headers.etag as string;
    let notModified: boolean;
    try {
      notModified = evaluateConditions(ctx.req.headers, etag, st.lastModified);
    } catch (err) {
      early?.destroy();
      throw err;
    }
    if (notModified) {
      early?.destroy();
      this.send(ctx, 304, { etag, 'last-modified': headers['last-modified'] });
      return;
    }
    applyResponseOverrides(ctx.query, headers);
    let range: { start: number; end: number } | null;
    try {
      range = parseRange(ctx.req.headers.range, st.size);
    } catch (err) {
      early?.destroy();
      if (fromCache) throw STALE_RANGE;
      throw err;
    }
    let start = 0;
    let end = st.size;
    let status = 200;
    if (range) {
      ({ start, end } = range);
      status = 206;
      headers['content-range'] = `bytes ${start}-${end - 1}/${st.size}`;
    }
    headers['content-length'] = String(end - start);
    if (!withBody || end === start) {
      early?.destroy();
      if (fromCache) throw STALE_RANGE; // an empty body proves nothing about the current version
      this.send(ctx, status, headers);
      return;
    }
    // Pinned to the stat'ed version (the GET carries If-Match): the body and the headers agree.
    const stream = early ?? b.engine.readStream(path, { start, end, known: { size: st.size, etag: st.etag } });
    await this.streamBody(ctx, status, headers, stream, end - start);
  }

  private async getMarker(ctx: RequestContext, b: OpenBucket, key: string, withBody: boolean): Promise<void> {
    let exists: boolean;
    let lastModified = new Date(0);
    let backendEtag = '';
    if (b.config.names === 'plain') {
      const info = await b.store.head(b.spec.backendBucket, b.engine.prefix + key);
      exists = info !== null;
      if (info) {
        lastModified = info.lastModified;
        backendEtag = info.etag;
      }
    } else {
      exists = await b.engine.dirExists(key);
    }
    if (!exists) throw Errors.noSuchKey(key);
    void withBody;
    this.send(ctx, 200, {
      'content-type': 'application/x-directory', etag: backendEtag || '"d41d8cd98f00b204e9800998ecf8427e"', 'last-modified': httpDate(lastModified), 'content-length': '0',
    });
  }

  /**
   * Sends a decrypted body. Small bodies are decrypted and verified completely first, so any
   * integrity failure is a clean 500. Larger ones start once the first chunk verified; a later
   * failure cuts the connection (the client sees a short body, never wrong bytes).
   */
  private async streamBody(ctx: RequestContext, status: number, headers: OutgoingHttpHeaders, stream: Readable, length: number): Promise<void> {
    const { res } = ctx;
    const metrics = this.opts.metrics;
    if (length <= this.opts.verifyBeforeSendBytes) {
      const parts: Buffer[] = [];
      let n = 0;
      for await (const piece of streamPieces(stream)) {
        parts.push(piece);
        n += piece.length;
      }
      if (n !== length) throw Errors.internal(`object length changed while reading (${n} != ${length})`);
      metrics?.bytesDecrypted.inc(n);
      this.setCommonHeaders(ctx);
      res.writeHead(status, headers);
      res.cork();
      for (const piece of parts) res.write(piece);
      ctx.sent += n;
      res.end();
      res.uncork();
      return;
    }
    const it = streamPieces(stream);
    const first = await it.next();
    this.setCommonHeaders(ctx);
    res.writeHead(status, headers);
    let sent = 0;
    const onClose = () => stream.destroy();
    res.once('close', onClose);
    try {
      let r = first;
      while (!r.done) {
        sent += r.value.length;
        if (sent > length) throw Errors.internal('object grew while reading');
        ctx.sent += r.value.length;
        metrics?.bytesDecrypted.inc(r.value.length);
        if (!res.write(r.value)) await waitDrain(res);
        r = await it.next();
      }
      if (sent !== length) throw Errors.internal('object shrank while reading');
      res.end();
    } catch (err) {
      this.toS3Error(err); // counts integrity failures
      res.destroy();
      this.opts.log?.warn({ req: ctx.id, key: ctx.key, err: describe(err) }, 'response cut off');
    } finally {
      res.off('close', onClose);
      void it.return();
    }
  }

  private async putObject(ctx: RequestContext): Promise<void> {
    const b = await this.bucket(ctx);
    const key = ctx.key!;
    const path = this.objectPath(key);
    const h = ctx.req.headers;
    const payload = new Payload(ctx.req, h, ctx.auth, this.opts.maxObjectBytes);
    if (payload.length === undefined) throw Errors.missingContentLength();
    if (key.endsWith('/')) {
      payload.wantMd5 = true;
      const body = await payload.buffer(1);
      if (body.length > 0) throw Errors.invalidArgument('objects whose key ends in "/" are directory markers and must be empty', { Key: key });
      await b.engine.mkdirMarker(path);
      this.send(ctx, 200, { etag: md5Etag(payload.done.md5!) });
      return;
    }
    const attrs = attributesFromHeaders(h);
    const ifNoneMatch = h['if-none-match'];
    const ifMatch = h['if-match'];
    if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') throw Errors.notImplemented('If-None-Match on PUT only supports "*"');
    let result: { etag: string };
    if (ifNoneMatch !== undefined || ifMatch !== undefined) {
      result = await this.conditionalWrite(b, path, payload, attrs, { createOnly: ifNoneMatch !== undefined, ifMatch });
    } else {
      result = await this.writeObject(b.engine, b, path, payload, attrs);
    }
    this.send(ctx, 200, { etag: result.etag });
  }

  /**
   * Writes a payload as the object at `path`; resolves with the client ETag once it is stored.
   * The MD5 ETag is recorded with the object when it is known before the upload starts (a
   * Content-MD5 header, or a body small enough to buffer); otherwise the object gets a derived one.
   */
  async writeObject(
    engine: Engine, b: OpenBucket, path: string, payload: Payload, attrs: Record<string, string>, single: { ifNoneMatch?: '*'; maxBytes?: number } = {},
  ): Promise<{ etag: string }> {
    const length = payload.length!;
    const md5Header = ctx5(payload);
    let written: { etag: string; size: number };
    let etag: string;
    // One backend PUT, encrypted as the body arrives (streamed when the attributes are known first).
    if (ciphertextSize(length, b.config.chunkSize) <= (single.maxBytes ?? this.registry.tuning.partSize ?? DEFAULT_PART_SIZE)) {
      const md5Etagged = md5Header === undefined && length <= this.opts.md5BufferMaxBytes;
      if (md5Etagged) payload.wantMd5 = true;
      const r = await singlePut({
        engine, store: b.store, bucket: b.spec.backendBucket, path, payload, ifNoneMatch: single.ifNoneMatch,
        attributes: md5Etagged ? () => withEtag(attrs, md5Etag(payload.done.md5!), payload.done.size) : md5Header ? withEtag(attrs, md5Etag(md5Header), length) : attrs,
      });
      if (r) {
        etag = md5Etagged ? md5Etag(payload.done.md5!) : md5Header ? md5Etag(md5Header) : clientEtag({ size: r.size, etag: r.etag, attributes: attrs });
        this.opts.metrics?.bytesEncrypted.inc(r.size);
        this.rememberEtag(b.spec.name, path, r.etag, etag);
        return { etag };
      }
    }
    if (md5Header === undefined && length <= this.opts.md5BufferMaxBytes) {
      payload.wantMd5 = true;
      const pieces = await payload.pieces();
      etag = md5Etag(payload.done.md5!);
      const writer = engine.createWriter(path, { attributes: withEtag(attrs, etag, payload.done.size) });
      try {
        for (const piece of pieces) await writer.write(piece);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      written = await writer.close();
    } else {
      etag = md5Header !== undefined ? md5Etag(md5Header) : '';
      const writer = engine.createWriter(path, { attributes: etag ? withEtag(attrs, etag, length) : attrs });
      try {
        for await (const piece of payload) await writer.write(piece);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      written = await writer.close();
      if (!etag) etag = clientEtag({ size: written.size, etag: written.etag, attributes: attrs });
    }
    this.opts.metrics?.bytesEncrypted.inc(written.size);
    this.rememberEtag(b.spec.name, path, written.etag, etag);
    return { etag };
  }

  /** If-None-Match: * (create only) and If-Match on PUT. */
  async conditionalWrite(
    b: OpenBucket, path: string, payload: Payload, attrs: Record<string, string>, cond: { createOnly: boolean; ifMatch?: string },
  ): Promise<{ etag: string }> {
    const length = payload.length ?? 0;
    if (cond.createOnly && cond.ifMatch === undefined && length <= this.opts.conditionalForwardMaxBytes && (await this.backendHonoursCreateOnly(b))) {
      if (b.engine.singlePutUpload(path)) {
        // Our format: one conditional PUT, encrypted (and streamed when it can be) as the body arrives.
        try {
          return await this.writeObject(b.engine, b, path, payload, attrs, { ifNoneMatch: '*', maxBytes: Infinity });
        } catch (err) {
          if (isStoreError(err, 'PreconditionFailed')) {
            throw err.status === 409 ? Errors.conditionalConflict() : Errors.preconditionFailed('If-None-Match');
          }
          throw err;
        }
      }
      const engine = await Engine.open({
        store: createOnlyStore(b.store),
        bucket: b.spec.backendBucket,
        prefix: b.spec.prefix,
        keys: b.keys,
        config: b.config,
        cacheBytes: 0,
        uploadConcurrency: 1,
        awsCse: this.registry.tuning.awsCse,
        // One PUT whatever the size: the condition travels with it.
        partSize: Math.max(5 * MiB, ciphertextSize(length, b.config.chunkSize)),
      });
      try {
        return await this.writeObject(engine, b, path, payload, attrs);
      } catch (err) {
        if (isStoreError(err, 'PreconditionFailed')) {
          throw err.status === 409 ? Errors.conditionalConflict() : Errors.preconditionFailed('If-None-Match');
        }
        throw err;
      }
    }
    return this.withKeyLock(b, path, async () => {
      const st = await this.statObject(b, path);
      if (cond.createOnly && st) throw Errors.preconditionFailed('If-None-Match');
      if (cond.ifMatch !== undefined) {
        if (!st) throw Errors.noSuchKey(path);
        if (!etagMatches(cond.ifMatch, clientEtag(st))) throw Errors.preconditionFailed('If-Match');
      }
      return this.writeObject(b.engine, b, path, payload, attrs);
    });
  }

  /** Whether the backend refuses a second create-only PUT (probed once per backend bucket in "auto" mode). */
  async backendHonoursCreateOnly(b: OpenBucket): Promise<boolean> {
    const mode = this.opts.conditionalWrites;
    if (mode !== 'auto') return mode === 'backend';
    let p = this.probes.get(b.spec.backendBucket);
    if (!p) {
      p = probeCreateOnly(b.store, b.spec.backendBucket, b.engine.prefix).then((ok) => {
        this.opts.log?.info({ bucket: b.spec.backendBucket, createOnly: ok ? 'backend' : 'gateway' }, 'conditional writes');
        return ok;
      });
      p.catch(() => this.probes.delete(b.spec.backendBucket));
      this.probes.set(b.spec.backendBucket, p);
    }
    return p;
  }

  private async copyObject(ctx: RequestContext): Promise<void> {
    const dst = await this.bucket(ctx);
    const dstKey = ctx.key!;
    const dstPath = this.objectPath(dstKey);
    if (dstKey.endsWith('/')) throw Errors.invalidArgument('cannot copy onto a directory marker');
    const h = ctx.req.headers;
    const { bucket: srcName, key: srcKey } = parseCopySource(String(h['x-amz-copy-source']));
    this.authorizeBucket(ctx, srcName);
    const src = await this.bucket(ctx, srcName);
    const srcPath = this.objectPath(srcKey);
    const st = await this.statObject(src, srcPath);
    if (!st) throw Errors.noSuchKey(srcKey);
    const srcEtag = clientEtag(st);
    checkCopySourceConditions(h, srcEtag, st.lastModified);
    const directive = String(h['x-amz-metadata-directive'] ?? 'COPY').toUpperCase();
    if (directive !== 'COPY' && directive !== 'REPLACE') throw Errors.invalidArgument('Unknown metadata directive.');
    // Draining an (empty) body keeps the connection usable.
    await new Payload(ctx.req, h, ctx.auth, this.opts.maxXmlBytes).drain();
    const sameObject = src.spec.name === dst.spec.name && srcPath === dstPath;
    if (sameObject && directive === 'COPY') {
      throw Errors.invalidRequest('This copy request is illegal because it is trying to copy an object to itself without changing the object\'s metadata, storage class, website redirect location or encryption attributes.');
    }
    const baseAttrs = directive === 'REPLACE' ? attributesFromHeaders(h) : clientAttributes(st.attributes);
    const attrs = withEtag(baseAttrs, srcEtag, st.size);
    // Keep the POSIX attributes the mount recorded (mode, times) when copying within the same store.
    let backendEtag: string | undefined;
    if (src.spec.backendBucket === dst.spec.backendBucket && src.spec.prefix === dst.spec.prefix) {
      const posix = Object.fromEntries(Object.entries(st.attributes).filter(([k]) => k.startsWith('posix:')));
      try {
        ({ etag: backendEtag } = await dst.engine.copy(srcPath, dstPath, { attributes: { ...posix, ...attrs } }));
      } catch (err) {
        // Some backends mis-decode encoded copy sources (s3rver and ":"); the source exists, so copy through the gateway.
        if (!isStoreError(err, 'NoSuchKey') && !isStoreError(err, 'NotImplemented')) throw err;
      }
    }
    if (backendEtag === undefined) {
      const writer = dst.engine.createWriter(dstPath, { attributes: attrs });
      try {
        for await (const piece of src.engine.readStream(srcPath)) await writer.write(piece as Buffer);
      } catch (err) {
        await writer.abort();
        throw err;
      }
      ({ etag: backendEtag } = await writer.close());
    }
    this.rememberEtag(dst.spec.name, dstPath, backendEtag, srcEtag);
    const xml = s3Root('CopyObjectResult', xmlFields([['LastModified', new Date().toISOString()], ['ETag', srcEtag]]));
    this.sendXml(ctx, 200, xml);
  }

  private async deleteObject(ctx: RequestContext): Promise<void> {
    const b = await this.bucket(ctx);
    const key = ctx.key!;
    const path = this.objectPath(key);
    if (key.endsWith('/')) await b.engine.removeDirMarker(path);
    else await b.engine.delete(path);
    this.forgetObject(b.spec.name, path);
    this.send(ctx, 204);
  }

  private async deleteObjects(ctx: RequestContext): Promise<void> {
    const b = await this.bucket(ctx);
    const root = await this.readXml(ctx);
    if (root.name !== 'Delete') throw Errors.malformedXml();
    const quiet = childText(root, 'Quiet')?.trim() === 'true';
    const objects = childrenNamed(root, 'Object');
    if (objects.length > 1000) throw Errors.malformedXml('The XML you provided was not well-formed or did not validate against our published schema (more than 1000 keys).');
    const keys = objects.map((o) => {
      const k = childText(o, 'Key');
      if (k === undefined) throw Errors.malformedXml();
      return k;
    });
    const deleted: string[] = [];
    const errors: { key: string; code: string; message: string }[] = [];
    const files: string[] = [];
    for (const key of keys) {
      try {
        const path = this.objectPath(key);
        if (key.endsWith('/')) {
          await b.engine.removeDirMarker(path);
          deleted.push(key);
        } else {
          files.push(path);
        }
      } catch (err) {
        const e = this.toS3Error(err);
        errors.push({ key, code: e.code, message: e.message });
      }
    }
    if (files.length > 0) {
      const result = await b.engine.deleteMany(files);
      const failed = new Map(result.errors.map((e) => [e.path, e.message]));
      for (const path of files) {
        this.forgetObject(b.spec.name, path);
        const message = failed.get(path);
        if (message === undefined) deleted.push(path);
        else errors.push({ key: path, code: 'InternalError', message });
      }
    }
    const children = [
      ...(quiet ? [] : deleted.map((k) => xmlElement('Deleted', [xmlElement('Key', k)]))),
      ...errors.map((e) => xmlElement('Error', xmlFields([['Key', e.key], ['Code', e.code], ['Message', e.message]]))),
    ];
    this.sendXml(ctx, 200, s3Root('DeleteResult', children));
  }
}

// ---- free helpers -----------------------------------------------------------------------------------

/** A cached stat could not answer a range (416 or empty): stat afresh. */
const STALE_RANGE = new Error('stale cached stat');

function ctx5(payload: Payload): Buffer | undefined {
  return payload.expectedMd5;
}

function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}${err.cause instanceof Error ? ` (cause: ${err.cause.message})` : ''}`;
  return String(err);
}

export function operationName(ctx: Pick<RequestContext, 'method' | 'bucket' | 'key' | 'query' | 'req'>): string {
  const { method, query } = ctx;
  if (ctx.bucket === undefined) return method === 'GET' ? 'ListBuckets' : 'Unknown';
  if (ctx.key === undefined) {
    switch (method) {
      case 'HEAD': return 'HeadBucket';
      case 'GET':
        if (query.has('location')) return 'GetBucketLocation';
        if (query.has('uploads')) return 'ListMultipartUploads';
        if (query.has('versioning')) return 'GetBucketVersioning';
        if (query.has('acl')) return 'GetBucketAcl';
        return query.get('list-type') === '2' ? 'ListObjectsV2' : 'ListObjects';
      case 'PUT': return 'CreateBucket';
      case 'DELETE': return 'DeleteBucket';
      case 'POST': return query.has('delete') ? 'DeleteObjects' : 'Unknown';
      default: return 'Unknown';
    }
  }
  switch (method) {
    case 'GET': return query.has('uploadId') ? 'ListParts' : query.has('acl') ? 'GetObjectAcl' : query.has('tagging') ? 'GetObjectTagging' : 'GetObject';
    case 'HEAD': return 'HeadObject';
    case 'PUT':
      if (query.has('uploadId')) return ctx.req.headers['x-amz-copy-source'] !== undefined ? 'UploadPartCopy' : 'UploadPart';
      return ctx.req.headers['x-amz-copy-source'] !== undefined ? 'CopyObject' : 'PutObject';
    case 'POST': return query.has('uploads') ? 'CreateMultipartUpload' : query.has('uploadId') ? 'CompleteMultipartUpload' : 'Unknown';
    case 'DELETE': return query.has('uploadId') ? 'AbortMultipartUpload' : 'DeleteObject';
    default: return 'Unknown';
  }
}

/** encoding-type=url: like S3, keep "/" and unreserved characters, spaces as "+". */
export function urlEncodeKey(key: string): string {
  return encodeURIComponent(key).replace(/%2F/g, '/').replace(/%20/g, '+').replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

function encodeToken(next: { backendToken: string } | { after: string }): string {
  return Buffer.from(JSON.stringify('backendToken' in next ? { b: next.backendToken } : { a: next.after })).toString('base64url');
}

function decodeToken(token: string): Partial<ListQuery> {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { b?: unknown; a?: unknown };
    if (typeof v.b === 'string') return { backendToken: v.b };
    if (typeof v.a === 'string') return { after: v.a };
  } catch {
    // fall through
  }
  throw Errors.invalidArgument('The continuation token provided is incorrect', { ArgumentName: 'continuation-token' });
}

function etagMatches(header: string, etag: string): boolean {
  return header.split(',').map((s) => s.trim()).some((t) => t === '*' || unquote(t) === unquote(etag));
}

/** Returns true for "304 Not Modified"; throws 412 for failed preconditions. */
function evaluateConditions(h: IncomingMessage['headers'], etag: string, lastModified: Date): boolean {
  const ifMatch = h['if-match'];
  const ifNoneMatch = h['if-none-match'];
  const ifModifiedSince = h['if-modified-since'];
  const ifUnmodifiedSince = h['if-unmodified-since'];
  const seconds = Math.floor(lastModified.getTime() / 1000);
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, etag)) throw Errors.preconditionFailed('If-Match');
  } else if (ifUnmodifiedSince !== undefined) {
    const t = Date.parse(ifUnmodifiedSince);
    if (!Number.isNaN(t) && seconds > Math.floor(t / 1000)) throw Errors.preconditionFailed('If-Unmodified-Since');
  }
  if (ifNoneMatch !== undefined) return etagMatches(ifNoneMatch, etag);
  if (ifModifiedSince !== undefined) {
    const t = Date.parse(ifModifiedSince);
    if (!Number.isNaN(t) && seconds <= Math.floor(t / 1000)) return true;
  }
  return false;
}

function checkCopySourceConditions(h: IncomingMessage['headers'], etag: string, lastModified: Date): void {
  const get = (n: string) => (h[n] === undefined ? undefined : String(h[n]));
  const seconds = Math.floor(lastModified.getTime() / 1000);
  const ifMatch = get('x-amz-copy-source-if-match');
  const ifNoneMatch = get('x-amz-copy-source-if-none-match');
  const ifModified = get('x-amz-copy-source-if-modified-since');
  const ifUnmodified = get('x-amz-copy-source-if-unmodified-since');
  if (ifMatch !== undefined && !etagMatches(ifMatch, etag)) throw Errors.preconditionFailed('x-amz-copy-source-If-Match');
  if (ifNoneMatch !== undefined && etagMatches(ifNoneMatch, etag)) throw Errors.preconditionFailed('x-amz-copy-source-If-None-Match');
  if (ifUnmodified !== undefined && ifMatch === undefined) {
    const t = Date.parse(ifUnmodified);
    if (!Number.isNaN(t) && seconds > Math.floor(t / 1000)) throw Errors.preconditionFailed('x-amz-copy-source-If-Unmodified-Since');
  }
  if (ifModified !== undefined && ifNoneMatch === undefined) {
    const t = Date.parse(ifModified);
    if (!Number.isNaN(t) && seconds <= Math.floor(t / 1000)) throw Errors.preconditionFailed('x-amz-copy-source-If-Modified-Since');
  }
}

/** "bucket/key", "/bucket/key" (percent-encoded), optionally "?versionId=..." (only "null" accepted). */
export function parseCopySource(header: string): { bucket: string; key: string } {
  let raw = header.trim();
  const q = raw.indexOf('?');
  if (q >= 0) {
    const version = parseQuery(raw.slice(q + 1)).find((p) => p.name === 'versionId')?.value;
    if (version !== undefined && version !== 'null') throw Errors.notImplemented('versioned copy sources are not supported');
    raw = raw.slice(0, q);
  }
  const decoded = percentDecode(raw).replace(/^\//, '');
  const slash = decoded.indexOf('/');
  if (slash <= 0 || slash === decoded.length - 1) throw Errors.invalidArgument('Copy Source must mention the source bucket and key: sourcebucket/sourcekey', { ArgumentName: 'x-amz-copy-source' });
  return { bucket: decoded.slice(0, slash), key: decoded.slice(slash + 1) };
}

/** A single "bytes=" range, clamped; null when absent or not a single range (S3 then sends everything). */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | null {
  if (header === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw Errors.invalidRange(size);
    start = Math.max(0, size - suffix);
    end = size;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size : Math.min(size, Number(m[2]) + 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size) throw Errors.invalidRange(size);
  return { start, end };
}

const OVERRIDES: [string, string][] = [
  ['response-content-type', 'content-type'], ['response-content-language', 'content-language'], ['response-expires', 'expires'],
  ['response-cache-control', 'cache-control'], ['response-content-disposition', 'content-disposition'], ['response-content-encoding', 'content-encoding'],
];

function applyResponseOverrides(query: Map<string, string>, headers: OutgoingHttpHeaders): void {
  for (const [param, header] of OVERRIDES) {
    const v = query.get(param);
    if (v !== undefined) headers[header] = v;
  }
}

function waitDrain(res: ServerResponse): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', closed);
      resolve();
    };
    const closed = () => {
      res.off('drain', done);
      reject(Object.assign(new Error('client went away'), { code: 'ECONNRESET' }));
    };
    res.once('drain', done);
    res.once('close', closed);
  });
}

export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** The store with every PUT made create-only (If-None-Match: *). */
function createOnlyStore(store: ObjectStore): ObjectStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'put') {
        return (bucket: string, key: string, data: Buffer, o: Parameters<ObjectStore['put']>[3] = {}) => target.put(bucket, key, data, { ...o, ifNoneMatch: '*' });
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/** Writes a probe object twice with If-None-Match: *; the backend honours it if the second is refused. */
export async function probeCreateOnly(store: ObjectStore, bucket: string, prefix: string): Promise<boolean> {
  const key = `${prefix}${GATEWAY_DIR}/probe-${randomBytes(8).toString('hex')}`;
  try {
    await store.put(bucket, key, Buffer.alloc(0), { ifNoneMatch: '*' });
  } catch (err) {
    if (isStoreError(err, 'NotImplemented') || (err instanceof StoreError && (err.status === 400 || err.status === 501))) return false;
    throw err;
  }
  try {
    await store.put(bucket, key, Buffer.alloc(0), { ifNoneMatch: '*' });
    return false;
  } catch (err) {
    if (isStoreError(err, 'PreconditionFailed')) return true;
    return false;
  } finally {
    await store.delete(bucket, key).catch(() => {});
  }
}

export { DEFAULT_CONTENT_TYPE, quote, parentDir };
