// A lean HTTP data path for the hot object calls (GetObject, PutObject, UploadPart):
// one SigV4-signed node:http request per attempt, no SDK middleware stack, no stream
// wrappers. Profiles showed the SDK spending 2.5-4 CPU s/GiB just handing body bytes
// through its layers. Signing is @smithy/signature-v4 with the SDK client's own
// credential provider, hash constructor and endpoint rules, so whatever endpoint,
// addressing style and credentials the SDK client uses, this path uses too.
//
// Responses look to ObjectStore.call() like SDK outputs and errors: `$metadata.attempts`
// on both, `$metadata.httpStatusCode` plus the S3 error code as `name` on errors, so
// counting and StoreError mapping are shared with the SDK path.

import http from 'node:http';
import https from 'node:https';

import type { S3Client } from '@aws-sdk/client-s3';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentity, ChecksumConstructor, HttpRequest as SignableRequest, Provider } from '@smithy/types';

import type { Readable } from 'node:stream';

import { abortError, RawHttp } from './raw-http.js';
import { backoffDelayMs, sleep } from './retry.js';

export interface LeanConfig {
  client: S3Client;
  httpAgent: http.Agent;
  httpsAgent: https.Agent;
  endpoint: string | undefined;
  region: string;
  forcePathStyle: boolean;
  unsignedPayload: boolean;
  maxAttempts: number;
  socketTimeoutMs: number;
  connectTimeoutMs: number;
}

export interface LeanRequest {
  method: 'GET' | 'PUT';
  bucket: string;
  key: string;
  query?: Record<string, string>;
  /** Lower-case names. */
  headers?: Record<string, string>;
  body?: Uint8Array;
  signal?: AbortSignal;
}

/** An http.IncomingMessage, or raw-http's look-alike for GETs over plain HTTP. */
export type LeanBody = Readable & { statusCode?: number; headers: http.IncomingHttpHeaders; complete: boolean };

export interface LeanResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** Unread for GET (the caller consumes or destroys it); drained already for PUT. */
  body: LeanBody;
  $metadata: { httpStatusCode: number; attempts: number };
}

/** An S3 error response, shaped like the SDK's service exceptions for toStoreError(). */
export class S3ResponseError extends Error {
  readonly $metadata: { httpStatusCode: number; attempts: number };
  readonly Code?: string;
  constructor(status: number, code: string | undefined, message: string | undefined, attempts: number) {
    super(message ?? code ?? `HTTP ${status}`);
    this.name = code ?? 'UnknownError';
    this.Code = code;
    this.$metadata = { httpStatusCode: status, attempts };
  }
}

interface ClientConfig {
  credentials: Provider<AwsCredentialIdentity>;
  sha256: ChecksumConstructor;
  systemClockOffset?: number;
}

interface ResolvedEndpoint {
  protocol: 'http:' | 'https:';
  hostname: string;
  port: number | undefined;
  host: string;
  basePath: string;
  signingRegion: string;
}

const RETRYABLE_STATUS = new Set([500, 502, 503, 504, 429]);
const THROTTLING_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequests', 'RequestLimitExceeded']);
const TRANSIENT_CODES = new Set(['RequestTimeout', 'RequestTimeoutException', 'InternalError']);
/** Answers to a request signed with a clock the server disagrees with (the SDK's list). */
const CLOCK_SKEW_CODES = new Set([
  'AuthFailure',
  'InvalidSignatureException',
  'RequestExpired',
  'RequestInTheFuture',
  'RequestTimeTooSkewed',
  'SignatureDoesNotMatch',
]);
/** The SDK retries a skew error only when the correction is at least this large. */
const SKEW_RETRY_THRESHOLD_MS = 240_000;
const RETRYABLE_NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND']);
/** Error bodies are small XML documents; anything longer is cut. */
const MAX_ERROR_BODY = 64 * 1024;

export class LeanS3 {
  private readonly signer: SignatureV4;
  private readonly endpoints = new Map<string, Promise<ResolvedEndpoint>>();
  /** GETs over plain HTTP (S3CRYPTFS_STORE_RAW_GET=0 sends them through node:http too). */
  private readonly raw: RawHttp | null;

  constructor(private readonly cfg: LeanConfig) {
    const config = this.clientConfig();
    this.signer = new SignatureV4({
      credentials: config.credentials,
      region: cfg.region,
      service: 's3',
      sha256: config.sha256,
      // S3 signs the path as sent (no double encoding) and always wants x-amz-content-sha256.
      uriEscapePath: false,
      applyChecksum: true,
    });
    this.raw = process.env.S3CRYPTFS_STORE_RAW_GET === '0' ? null : new RawHttp({ connectTimeoutMs: cfg.connectTimeoutMs, socketTimeoutMs: cfg.socketTimeoutMs });
  }

  /** Closes idle raw GET connections. */
  close(): void {
    this.raw?.close();
  }

  private clientConfig(): ClientConfig {
    return this.cfg.client.config as unknown as ClientConfig;
  }

  /**
   * Sends one request, retrying throttling, 5xx and connection failures before any response
   * (the same classes the SDK's standard retry strategy retries) with the store's backoff.
   * Throws S3ResponseError for an error status, or the network error, each carrying attempts.
   */
  async send(req: LeanRequest): Promise<LeanResponse> {
    const endpoint = await this.endpoint(req.bucket);
    for (let attempt = 1; ; attempt++) {
      let res: LeanBody;
      try {
        res = await this.attempt(endpoint, req);
      } catch (err) {
        await this.backoffOrThrow(req, err, attempt);
        continue;
      }
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        if (req.method !== 'GET') await drain(res);
        return { status, headers: res.headers, body: res, $metadata: { httpStatusCode: status, attempts: attempt } };
      }
      let error: S3ResponseError;
      const offsetBefore = this.clientConfig().systemClockOffset ?? 0;
      try {
        error = await readError(res, attempt);
      } catch (err) {
        // The error body itself broke off: treat like a dropped connection.
        await this.backoffOrThrow(req, err, attempt);
        continue;
      }
      const skewCorrected = this.sampleClockSkew(res.headers, error, offsetBefore);
      if (attempt >= this.cfg.maxAttempts || !(skewCorrected || isRetryableResponse(error))) throw error;
      await sleep(backoffDelayMs(attempt), req.signal);
    }
  }

  /** After a network failure: waits out the backoff before the next attempt, or throws when it is final. */
  private async backoffOrThrow(req: LeanRequest, err: unknown, attempt: number): Promise<void> {
    if (req.signal?.aborted || attempt >= this.cfg.maxAttempts || !isRetryableNetworkError(err)) throw withAttempts(err, attempt);
    await sleep(backoffDelayMs(attempt), req.signal);
  }

  private async attempt(endpoint: ResolvedEndpoint, req: LeanRequest): Promise<LeanBody> {
    const headers: Record<string, string> = { host: endpoint.host, ...req.headers };
    const body = req.body;
    if (body !== undefined) {
      headers['content-length'] = String(body.length);
      // As the SDK path does: unsigned where TLS or loopback protects transport, else the body's SHA-256.
      if (this.cfg.unsignedPayload && body.length > 0) headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD';
    }
    const signed = await this.sign(endpoint, req.method, req.key, req.query, headers, body);
    req.signal?.throwIfAborted();
    if (this.raw && req.method === 'GET' && endpoint.protocol === 'http:') {
      return this.raw.request({
        hostname: endpoint.hostname,
        port: endpoint.port ?? 80,
        method: 'GET',
        path: signed.path,
        headers: signed.headers,
        signal: req.signal,
        timeoutError,
      });
    }
    const request = this.clientRequest(endpoint, req.method, signed);
    // Not http.request's `signal` option: an abort after the body was read (a reader closing its
    // stream aborts at every close) then destroyed a socket already back in the keep-alive pool, an
    // unhandled 'error' that killed the process. An abort cuts only a response still arriving.
    const signal = req.signal;
    if (signal) {
      let response: http.IncomingMessage | undefined;
      const onAbort = () => {
        if (!response) request.destroy(abortError(signal));
        else if (!response.complete) response.destroy(abortError(signal));
      };
      const detach = () => signal.removeEventListener('abort', onAbort);
      signal.addEventListener('abort', onAbort, { once: true });
      request.once('response', (res: http.IncomingMessage) => {
        response = res;
        res.once('end', detach);
      });
      request.once('close', detach);
    }
    return new Promise<http.IncomingMessage>((resolve, reject) => {
      request.on('error', reject); // stays attached: a late error must not go unhandled
      request.once('response', resolve);
      this.armTimeouts(request);
      request.end(body);
    });
  }

  /** SigV4 headers for a request (skew-corrected like the SDK's signer: the offset lives in the shared client config), and its path with the query. */
  private async sign(
    endpoint: ResolvedEndpoint, method: string, key: string, query: Record<string, string> | undefined,
    headers: Record<string, string>, body?: Uint8Array,
  ): Promise<{ path: string; headers: Record<string, string> }> {
    const path = `${endpoint.basePath}/${encodeKey(key)}`;
    const toSign: SignableRequest = { method, protocol: endpoint.protocol, hostname: endpoint.hostname, port: endpoint.port, path, query: query ?? {}, headers, body };
    const signingDate = new Date(Date.now() + (this.clientConfig().systemClockOffset ?? 0));
    const signed = await this.signer.sign(toSign, { signingRegion: endpoint.signingRegion, signingDate });
    const search = query ? new URLSearchParams(query).toString() : '';
    return { path: search ? `${path}?${search}` : path, headers: signed.headers };
  }

  /** A node:http(s) request on the store's keep-alive agents. */
  private clientRequest(endpoint: ResolvedEndpoint, method: string, signed: { path: string; headers: Record<string, string> }): http.ClientRequest {
    return (endpoint.protocol === 'https:' ? https : http).request({
      agent: endpoint.protocol === 'https:' ? this.cfg.httpsAgent : this.cfg.httpAgent,
      method,
      hostname: endpoint.hostname,
      port: endpoint.port,
      path: signed.path,
      headers: signed.headers,
    });
  }

  /**
   * As the SDK does on an error response: adopt the server's clock (its Date header) as the
   * signing offset. True if the error was a clock-skew rejection this correction should cure.
   */
  private sampleClockSkew(headers: http.IncomingHttpHeaders, error: S3ResponseError, offsetBefore: number): boolean {
    const date = headers.date;
    if (date === undefined || headers.age !== undefined) return false;
    const serverTime = Date.parse(date);
    if (Number.isNaN(serverTime)) return false;
    const offset = serverTime - Date.now();
    const config = this.clientConfig();
    config.systemClockOffset = offset;
    const code = error.Code ?? error.name;
    return CLOCK_SKEW_CODES.has(code) && Math.abs(offset) >= SKEW_RETRY_THRESHOLD_MS && Math.abs(offset - offsetBefore) >= 1000;
  }

  /** The connect and socket-idle timeouts of the SDK's NodeHttpHandler, with its error names. */
  private armTimeouts(request: http.ClientRequest): void {
    const { connectTimeoutMs, socketTimeoutMs } = this.cfg;
    request.once('socket', (socket) => {
      if (!socket.connecting) return;
      const timer = setTimeout(() => {
        request.destroy(
          timeoutError(`Socket timed out without establishing a connection within ${connectTimeoutMs} ms`),
        );
      }, connectTimeoutMs);
      timer.unref();
      socket.once('connect', () => clearTimeout(timer));
      socket.once('close', () => clearTimeout(timer));
    });
    request.setTimeout(socketTimeoutMs, () => {
      request.destroy(timeoutError(`Connection timed out after ${socketTimeoutMs} ms`));
    });
  }

  /** Whether sendStreaming() can be used: a streamed body cannot be hashed before it is sent. */
  get streamsBodies(): boolean {
    return this.cfg.unsignedPayload;
  }

  /**
   * One PUT of `length` bytes that `source` yields while they are produced (the gateway encrypts a
   * client's body as it arrives), sent UNSIGNED-PAYLOAD. Not retried: the caller keeps the bytes and
   * retries with send(). If `source` throws, the request is destroyed short of its Content-Length,
   * so S3 stores nothing, and the source's error is rethrown. After a network failure or an early
   * answer the source is still read to its end (the caller's copy is then complete for a retry).
   */
  async sendStreaming(req: Omit<LeanRequest, 'method' | 'body' | 'signal'>, length: number, source: AsyncIterable<Uint8Array>): Promise<LeanResponse> {
    if (!this.cfg.unsignedPayload) throw new Error('a streamed body needs UNSIGNED-PAYLOAD');
    const endpoint = await this.endpoint(req.bucket);
    const headers: Record<string, string> = { host: endpoint.host, ...req.headers, 'content-length': String(length), 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' };
    const request = this.clientRequest(endpoint, 'PUT', await this.sign(endpoint, 'PUT', req.key, req.query, headers));
    let broken: unknown;
    let early: http.IncomingMessage | undefined;
    let wake: (() => void) | undefined;
    const response = new Promise<http.IncomingMessage>((resolve, reject) => {
      request.on('error', (err) => {
        broken ??= err;
        wake?.();
        reject(err);
      });
      request.once('response', (res: http.IncomingMessage) => {
        early = res;
        wake?.();
        resolve(res);
      });
    });
    response.catch(() => {}); // read below, or replaced by `broken`
    this.armTimeouts(request);
    try {
      for await (const piece of source) {
        if (broken !== undefined || early) continue;
        if (!request.write(piece)) {
          await new Promise<void>((resolve) => {
            wake = resolve;
            request.once('drain', resolve);
          });
          request.off('drain', wake!);
          wake = undefined;
        }
      }
    } catch (err) {
      request.destroy();
      throw err;
    }
    if (broken !== undefined) {
      request.destroy();
      throw withAttempts(broken, 1);
    }
    const answeredEarly = early !== undefined;
    if (!answeredEarly) request.end();
    let res: http.IncomingMessage;
    try {
      res = await response;
    } catch (err) {
      throw withAttempts(err, 1);
    }
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300 && !answeredEarly) {
      await drain(res);
      return { status, headers: res.headers, body: res, $metadata: { httpStatusCode: status, attempts: 1 } };
    }
    const error = await readError(res, 1);
    request.destroy(); // an answer before the whole body: the connection cannot be reused
    throw error;
  }

  /** Per bucket, through the SDK's own endpoint rules (path or virtual-host style, dots in names, AWS regions). */
  private endpoint(bucket: string): Promise<ResolvedEndpoint> {
    let resolved = this.endpoints.get(bucket);
    if (!resolved) {
      resolved = this.resolveEndpoint(bucket);
      this.endpoints.set(bucket, resolved);
      resolved.catch(() => this.endpoints.delete(bucket));
    }
    return resolved;
  }

  private async resolveEndpoint(bucket: string): Promise<ResolvedEndpoint> {
    const config = this.cfg.client.config as unknown as {
      endpointProvider: (params: Record<string, unknown>) => {
        url: URL;
        properties?: { authSchemes?: { signingRegion?: string }[] };
      };
      useFipsEndpoint?: () => Promise<boolean>;
      useDualstackEndpoint?: () => Promise<boolean>;
    };
    const resolved = config.endpointProvider({
      Bucket: bucket,
      Region: this.cfg.region,
      Endpoint: this.cfg.endpoint,
      ForcePathStyle: this.cfg.forcePathStyle,
      UseFIPS: (await config.useFipsEndpoint?.()) ?? false,
      UseDualStack: (await config.useDualstackEndpoint?.()) ?? false,
      Accelerate: false,
      UseArnRegion: false,
      DisableMultiRegionAccessPoints: false,
    });
    const url = resolved.url;
    const protocol = url.protocol === 'http:' ? 'http:' : 'https:';
    return {
      protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : undefined,
      host: url.host,
      basePath: url.pathname.replace(/\/$/, ''),
      signingRegion: resolved.properties?.authSchemes?.[0]?.signingRegion ?? this.cfg.region,
    };
  }
}

/** Each path segment percent-encoded as the SDK does (RFC 3986, slashes kept). */
function encodeKey(key: string): string {
  return key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`))
    .join('/');
}

function timeoutError(message: string): Error {
  const err = new Error(message);
  err.name = 'TimeoutError';
  return err;
}

function withAttempts(err: unknown, attempts: number): unknown {
  if (typeof err === 'object' && err !== null) {
    const meta = (err as { $metadata?: Record<string, unknown> }).$metadata;
    try {
      Object.assign(err, { $metadata: { ...meta, attempts } });
    } catch {
      // A frozen error (none known): counting falls back to one attempt.
    }
  }
  return err;
}

function isRetryableNetworkError(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const { code, name, message } = err as { code?: unknown; name?: unknown; message?: unknown };
  if (name === 'AbortError') return false;
  if (typeof code === 'string' && RETRYABLE_NETWORK_CODES.has(code)) return true;
  return name === 'TimeoutError' || message === 'socket hang up' || message === 'aborted';
}

function isRetryableResponse(err: S3ResponseError): boolean {
  const code = err.Code;
  return (
    RETRYABLE_STATUS.has(err.$metadata.httpStatusCode) ||
    (code !== undefined && (THROTTLING_CODES.has(code) || TRANSIENT_CODES.has(code)))
  );
}

async function drain(res: LeanBody): Promise<void> {
  for await (const _chunk of res) {
    // Read to the end so the socket goes back to the keep-alive pool.
  }
}

async function readError(res: LeanBody, attempts: number): Promise<S3ResponseError> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    if (length < MAX_ERROR_BODY) chunks.push(chunk);
    length += chunk.length;
  }
  const xml = Buffer.concat(chunks).subarray(0, MAX_ERROR_BODY).toString('utf8');
  const code = xmlText(xml, 'Code');
  const message = xmlText(xml, 'Message');
  return new S3ResponseError(res.statusCode ?? 0, code, message, attempts);
}

/** The text of the first <tag> element of a flat S3 error document. */
function xmlText(xml: string, tag: string): string | undefined {
  const match = new RegExp(`<${tag}>([^<]*)</${tag}>`).exec(xml);
  if (!match) return undefined;
  return match[1]
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}
