// Typed errors for the object store. Everything the S3 SDK (or the network)
// throws is mapped onto a small set of codes callers can branch on.

export type StoreErrorCode =
  | 'NoSuchBucket'
  | 'NoSuchKey'
  | 'NoSuchUpload'
  | 'InvalidRange'
  | 'AccessDenied'
  | 'InvalidCredentials'
  | 'EndpointUnreachable'
  | 'PreconditionFailed'
  | 'NotImplemented'
  | 'Throttled'
  | 'ServerError'
  | 'Unknown';

export interface StoreErrorContext {
  /** S3 operation name, e.g. 'GetObject'. */
  op: string;
  bucket?: string;
  key?: string;
  endpoint?: string;
}

export class StoreError extends Error {
  override name = 'StoreError';
  readonly code: StoreErrorCode;
  /** HTTP status, when a response was received. */
  readonly status?: number;
  /** The server's own error code (e.g. 'SlowDown'), or the Node.js error code. */
  readonly s3Code?: string;
  readonly op: string;
  readonly bucket?: string;
  readonly key?: string;

  constructor(
    code: StoreErrorCode,
    message: string,
    details: { context: StoreErrorContext; status?: number; s3Code?: string; cause?: unknown },
  ) {
    super(message, { cause: details.cause });
    this.code = code;
    this.status = details.status;
    this.s3Code = details.s3Code;
    this.op = details.context.op;
    this.bucket = details.context.bucket;
    this.key = details.context.key;
  }
}

export function isStoreError(err: unknown, code?: StoreErrorCode): err is StoreError {
  return err instanceof StoreError && (code === undefined || err.code === code);
}

/** Builds a StoreError whose one-line message names the operation, object and endpoint. */
export function storeError(
  code: StoreErrorCode,
  description: string,
  context: StoreErrorContext,
  extra: { status?: number; s3Code?: string; cause?: unknown } = {},
): StoreError {
  const message = `${context.op} ${describeTarget(context)}: ${oneLine(description)}`;
  return new StoreError(code, message, { context, ...extra });
}

const NETWORK_UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);
const CONNECTION_DROPPED_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ETIMEDOUT']);
const INVALID_CREDENTIAL_CODES = new Set([
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'CredentialsProviderError',
]);
const THROTTLING_CODES = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'TooManyRequests', 'RequestLimitExceeded']);
const PRECONDITION_CODES = new Set(['PreconditionFailed', 'ConditionalRequestConflict']);

interface SdkErrorShape {
  name?: string;
  message?: string;
  code?: string;
  Code?: string;
  $metadata?: { httpStatusCode?: number };
  cause?: unknown;
}

/** Maps anything thrown by the SDK or the HTTP stack onto a StoreError. */
export function toStoreError(err: unknown, context: StoreErrorContext): StoreError {
  if (err instanceof StoreError) return err;
  const e = (typeof err === 'object' && err !== null ? err : { message: String(err) }) as SdkErrorShape;
  const status = e.$metadata?.httpStatusCode;
  const nodeCode = findNodeErrorCode(err);
  const s3Code = e.Code ?? (status !== undefined ? e.name : undefined) ?? nodeCode ?? e.name;
  const serverMessage = e.message && e.message !== 'UnknownError' ? e.message : undefined;
  const make = (code: StoreErrorCode, description: string) =>
    storeError(code, description, context, { status, s3Code, cause: err });

  if (nodeCode && NETWORK_UNREACHABLE_CODES.has(nodeCode)) {
    return make('EndpointUnreachable', `cannot connect to S3 endpoint (${nodeCode})`);
  }
  if (e.name === 'TimeoutError' && /establish a connection/.test(e.message ?? '')) {
    return make('EndpointUnreachable', 'timed out connecting to S3 endpoint');
  }
  if (s3Code && INVALID_CREDENTIAL_CODES.has(s3Code)) {
    return make('InvalidCredentials', `credentials rejected (${s3Code})`);
  }
  if (s3Code === 'NoSuchBucket') return make('NoSuchBucket', 'bucket does not exist');
  if (s3Code === 'NoSuchKey') return make('NoSuchKey', 'object does not exist');
  if (s3Code === 'NoSuchUpload') return make('NoSuchUpload', 'multipart upload does not exist');
  if (s3Code === 'InvalidRange' || status === 416) return make('InvalidRange', 'requested range is not satisfiable');
  if ((s3Code && PRECONDITION_CODES.has(s3Code)) || status === 412) {
    return make('PreconditionFailed', 'precondition failed (object changed or already exists)');
  }
  if (status === 404) {
    // HEAD responses carry no body, so a bare 404 only tells us which kind of resource was asked for.
    return context.key === undefined
      ? make('NoSuchBucket', 'bucket does not exist')
      : make('NoSuchKey', 'object does not exist');
  }
  if (s3Code === 'AccessDenied' || s3Code === 'AllAccessDisabled' || status === 403) {
    return make('AccessDenied', `access denied${serverMessage ? ` (${serverMessage})` : ''}`);
  }
  if (s3Code === 'NotImplemented' || s3Code === 'MethodNotAllowed' || status === 501 || status === 405) {
    return make('NotImplemented', `operation not supported by this S3 server${s3Code ? ` (${s3Code})` : ''}`);
  }
  if ((s3Code && THROTTLING_CODES.has(s3Code)) || status === 429 || status === 503) {
    return make('Throttled', `S3 is throttling requests (${s3Code ?? status}), retries exhausted`);
  }
  if (status !== undefined && status >= 500) {
    return make('ServerError', `S3 server error ${status}${s3Code ? ` ${s3Code}` : ''}`);
  }
  if (nodeCode && CONNECTION_DROPPED_CODES.has(nodeCode)) {
    return make('ServerError', `connection to S3 endpoint dropped (${nodeCode}), retries exhausted`);
  }
  if (e.name === 'TimeoutError') {
    return make('ServerError', 'S3 endpoint stopped responding (socket idle timeout)');
  }
  const detail = [s3Code, status !== undefined ? `HTTP ${status}` : undefined].filter(Boolean).join(', ');
  return make('Unknown', `${serverMessage ?? 'unexpected error'}${detail ? ` (${detail})` : ''}`);
}

/** Node attaches `code` to the error or, when wrapped, to one of its causes. */
function findNodeErrorCode(err: unknown): string | undefined {
  let current: unknown = err;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function describeTarget(context: StoreErrorContext): string {
  const object = context.bucket
    ? `s3://${context.bucket}${context.key !== undefined ? `/${context.key}` : ''}`
    : 'S3';
  return context.endpoint ? `${object} at ${redactEndpoint(context.endpoint)}` : object;
}

/** Endpoints may carry user:password; never let those reach a message. */
export function redactEndpoint(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = '';
    url.password = '';
    url.search = '';
    return url.toString().replace(/\/$/, '');
  } catch {
    return '(invalid endpoint)';
  }
}

function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
