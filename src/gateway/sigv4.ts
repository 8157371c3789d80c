/**
 * AWS Signature Version 4 verification for S3 requests: the Authorization header form and presigned
 * URLs (query form). The canonical request is rebuilt from what was received; the canonical URI is
 * tried first exactly as sent, then re-encoded the way the AWS SDKs encode S3 paths, so clients that
 * encode a little differently (unencoded ":" or "~", say) still verify.
 *
 * Payload checks (x-amz-content-sha256, chunk signatures) happen in payload.ts while the body
 * streams; this module only decides what the body must prove.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { Errors, S3Error } from './errors.js';

export const ALGORITHM = 'AWS4-HMAC-SHA256';
export const UNSIGNED_PAYLOAD = 'UNSIGNED-PAYLOAD';
export const STREAMING_SIGNED = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD';
export const STREAMING_SIGNED_TRAILER = 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER';
export const STREAMING_UNSIGNED_TRAILER = 'STREAMING-UNSIGNED-PAYLOAD-TRAILER';
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/** Presigned URLs live at most 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

export interface ClientCredential {
  accessKeyId: string;
  secretAccessKey: string;
  /** Buckets this key may use; undefined: every allowed bucket. */
  buckets?: string[];
}

/** What the body of an authenticated request has to prove. */
export type PayloadMode =
  | { kind: 'sha256'; hex: string }
  | { kind: 'unsigned' }
  | { kind: 'streaming'; signed: boolean; trailer: boolean };

export interface AuthContext {
  credential: ClientCredential;
  presigned: boolean;
  payload: PayloadMode;
  /** Seed signature: chunk signatures chain from it. */
  signature: string;
  amzDate: string;
  scope: string;
  region: string;
  signingKey: Buffer;
}

/** The parts of a request signing depends on. */
export interface SignableRequest {
  method: string;
  /** Path as received, still percent-encoded, without the query. */
  rawPath: string;
  /** Query string as received, without "?". */
  rawQuery: string;
  /** Node's rawHeaders: name, value, name, value... */
  rawHeaders: string[];
}

export interface VerifyOptions {
  lookup(accessKeyId: string): ClientCredential | undefined;
  /** Allowed clock difference (ms). */
  maxSkewMs: number;
  now?: Date;
  /** Accepted regions in the credential scope; undefined or empty: any. */
  regions?: string[];
}

// ---- primitives -------------------------------------------------------------------------------------

export function sha256Hex(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export function hmac(key: Buffer | string, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

const signingKeys = new Map<string, Buffer>();

/** kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"); cached. */
export function signingKey(secret: string, date: string, region: string, service: string): Buffer {
  const id = `${sha256Hex(secret)}/${date}/${region}/${service}`;
  let key = signingKeys.get(id);
  if (!key) {
    key = hmac(hmac(hmac(hmac('AWS4' + secret, date), region), service), 'aws4_request');
    if (signingKeys.size > 512) signingKeys.clear();
    signingKeys.set(id, key);
  }
  return key;
}

/** RFC 3986 encoding as SigV4 wants it: unreserved characters kept, everything else %XX (upper case). */
export function uriEncode(text: string, encodeSlash: boolean): string {
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    const c = String.fromCharCode(byte);
    if ((byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a) || (byte >= 0x30 && byte <= 0x39) || c === '-' || c === '_' || c === '.' || c === '~') {
      out += c;
    } else if (c === '/' && !encodeSlash) {
      out += c;
    } else {
      out += '%' + byte.toString(16).toUpperCase().padStart(2, '0');
    }
  }
  return out;
}

/** Percent-decoding that leaves "+" alone and rejects malformed escapes. */
export function percentDecode(text: string): string {
  if (!text.includes('%')) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    throw Errors.invalidUri();
  }
}

export interface QueryParam {
  name: string;
  value: string;
}

/** Decoded query parameters, in order. "a" and "a=" both give value "". */
export function parseQuery(rawQuery: string, plusIsSpace = false): QueryParam[] {
  if (rawQuery === '') return [];
  const out: QueryParam[] = [];
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const rawName = eq < 0 ? part : part.slice(0, eq);
    const rawValue = eq < 0 ? '' : part.slice(eq + 1);
    const fix = (s: string) => (plusIsSpace ? s.replace(/\+/g, ' ') : s);
    out.push({ name: percentDecode(fix(rawName)), value: percentDecode(fix(rawValue)) });
  }
  return out;
}

export function canonicalQuery(params: QueryParam[]): string {
  return params
    .map((p) => [uriEncode(p.name, true), uriEncode(p.value, true)] as const)
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
}

/** Header values by lower-case name, each value trimmed with inner runs of spaces collapsed. */
export function headerValues(rawHeaders: string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const value = rawHeaders[i + 1].trim().replace(/\s+/g, ' ');
    const list = out.get(name);
    if (list) list.push(value);
    else out.set(name, [value]);
  }
  return out;
}

function canonicalHeaders(headers: Map<string, string[]>, signed: string[]): string {
  return signed.map((name) => `${name}:${(headers.get(name) ?? []).join(',')}\n`).join('');
}

function safeEqualHex(a: string, b: string): boolean {
  // Both must be hex: a non-ASCII character keeps the string length but not the byte length, and
  // timingSafeEqual throws (a 500) on buffers of different lengths.
  if (a.length !== b.length || !/^[0-9a-f]*$/.test(a) || !/^[0-9a-f]*$/.test(b)) return false;
  return timingSafeEqual(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** "20130524T000000Z" -> Date, or null. */
export function parseAmzDate(text: string): Date | null {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return Number.isNaN(d.getTime()) ? null : d;
}

export function formatAmzDate(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
}

/** Candidate canonical URIs: as sent, then re-encoded from the decoded path (deduplicated). */
function canonicalUris(rawPath: string): string[] {
  const asSent = rawPath === '' ? '/' : rawPath;
  let reencoded: string;
  try {
    reencoded = uriEncode(decodeURIComponent(asSent), false);
  } catch {
    return [asSent];
  }
  return reencoded === asSent ? [asSent] : [asSent, reencoded];
}

// ---- verification -----------------------------------------------------------------------------------

interface ParsedAuth {
  accessKeyId: string;
  date: string;
  region: string;
  service: string;
  signedHeaders: string[];
  signature: string;
}

function parseCredential(credential: string, fail: (msg: string) => S3Error): Omit<ParsedAuth, 'signedHeaders' | 'signature'> {
  const parts = credential.split('/');
  if (parts.length < 5) throw fail(`the Credential "${credential}" is not of the form AKID/date/region/service/aws4_request`);
  // The access key id itself never contains "/", the scope has four fixed parts at the end.
  const [date, region, service, terminator] = parts.slice(-4);
  const accessKeyId = parts.slice(0, -4).join('/');
  if (terminator !== 'aws4_request') throw fail('the Credential scope must end with aws4_request');
  if (!/^\d{8}$/.test(date)) throw fail(`the Credential date "${date}" is not YYYYMMDD`);
  if (service !== 's3') throw fail(`the Credential service must be s3, got "${service}"`);
  return { accessKeyId, date, region, service };
}

export function parseAuthorizationHeader(header: string): ParsedAuth {
  const fail = (msg: string) => Errors.authorizationHeaderMalformed(`The authorization header is malformed; ${msg}`);
  if (!header.startsWith(ALGORITHM + ' ')) {
    if (header.startsWith('AWS ')) throw Errors.invalidRequest('Signature Version 2 is not supported: use AWS4-HMAC-SHA256');
    throw fail(`the algorithm must be ${ALGORITHM}`);
  }
  const fields = new Map<string, string>();
  for (const piece of header.slice(ALGORITHM.length + 1).split(',')) {
    const p = piece.trim();
    if (p === '') continue;
    const eq = p.indexOf('=');
    if (eq < 0) throw fail(`"${p}" is not a key=value pair`);
    fields.set(p.slice(0, eq).trim(), p.slice(eq + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  if (!credential || !signedHeaders || !signature) throw fail('Credential, SignedHeaders and Signature are required');
  return { ...parseCredential(credential, fail), signedHeaders: signedHeaders.split(';'), signature: signature.toLowerCase() };
}

/** Whether the request carries SigV4 credentials at all (header or query). */
export function hasAuth(headers: Map<string, string[]>, query: QueryParam[]): boolean {
  return headers.has('authorization') || query.some((p) => p.name === 'X-Amz-Algorithm' || p.name === 'X-Amz-Signature');
}

export function verifyRequest(req: SignableRequest, opts: VerifyOptions): AuthContext {
  const headers = headerValues(req.rawHeaders);
  const query = parseQuery(req.rawQuery);
  const now = opts.now ?? new Date();
  const authorization = headers.get('authorization')?.[0];
  if (authorization !== undefined) return verifyHeaderAuth(req, headers, query, authorization, opts, now);
  if (query.some((p) => p.name === 'X-Amz-Algorithm')) return verifyPresigned(req, headers, query, opts, now);
  throw Errors.accessDenied('Anonymous access is not allowed: sign requests with AWS Signature Version 4');
}

function lookupCredential(opts: VerifyOptions, accessKeyId: string): ClientCredential {
  const credential = opts.lookup(accessKeyId);
  if (!credential) throw Errors.invalidAccessKeyId();
  return credential;
}

function checkRegion(opts: VerifyOptions, region: string, fail: (msg: string) => S3Error): void {
  if (opts.regions && opts.regions.length > 0 && !opts.regions.includes(region)) {
    throw fail(`the region '${region}' is wrong; expecting '${opts.regions[0]}'`);
  }
}

function verifyHeaderAuth(
  req: SignableRequest, headers: Map<string, string[]>, query: QueryParam[], authorization: string, opts: VerifyOptions, now: Date,
): AuthContext {
  const auth = parseAuthorizationHeader(authorization);
  const fail = (msg: string) => Errors.authorizationHeaderMalformed(`The authorization header is malformed; ${msg}`);
  const credential = lookupCredential(opts, auth.accessKeyId);
  checkRegion(opts, auth.region, fail);
  const amzDate = headers.get('x-amz-date')?.[0] ?? '';
  let when = parseAmzDate(amzDate);
  let dateText = amzDate;
  if (!when) {
    const httpDate = headers.get('date')?.[0];
    const parsed = httpDate ? new Date(httpDate) : null;
    if (!parsed || Number.isNaN(parsed.getTime())) throw Errors.accessDenied('AWS authentication requires a valid Date or x-amz-date header');
    when = parsed;
    dateText = formatAmzDate(parsed);
  }
  if (Math.abs(now.getTime() - when.getTime()) > opts.maxSkewMs) {
    throw Errors.requestTimeTooSkewed({ RequestTime: dateText, ServerTime: now.toISOString(), MaxAllowedSkewMilliseconds: String(opts.maxSkewMs) });
  }
  if (dateText.slice(0, 8) !== auth.date) throw fail(`the credential date ${auth.date} does not match the request date ${dateText.slice(0, 8)}`);
  if (!auth.signedHeaders.includes('host')) throw fail('the host header must be signed');
  const payloadHash = headers.get('x-amz-content-sha256')?.[0];
  if (payloadHash === undefined) throw Errors.invalidRequest('Missing required header for this request: x-amz-content-sha256');
  const payload = payloadMode(payloadHash);
  if (payload.kind === 'streaming' && !payload.signed && !payload.trailer) throw Errors.invalidArgument('invalid x-amz-content-sha256');
  const scope = `${auth.date}/${auth.region}/${auth.service}/aws4_request`;
  const key = signingKey(credential.secretAccessKey, auth.date, auth.region, auth.service);
  const sortedSigned = [...auth.signedHeaders];
  const canonQuery = canonicalQuery(query);
  const headerBlock = canonicalHeaders(headers, sortedSigned);
  checkSignature(req, canonQuery, headerBlock, sortedSigned, payloadHash, dateText, scope, key, auth.signature, auth.accessKeyId);
  return { credential, presigned: false, payload, signature: auth.signature, amzDate: dateText, scope, region: auth.region, signingKey: key };
}

function verifyPresigned(req: SignableRequest, headers: Map<string, string[]>, query: QueryParam[], opts: VerifyOptions, now: Date): AuthContext {
  const get = (name: string) => query.find((p) => p.name === name)?.value;
  const fail = (msg: string) => Errors.authorizationQueryParametersError(msg);
  if (get('X-Amz-Algorithm') !== ALGORITHM) throw fail(`X-Amz-Algorithm only supports "${ALGORITHM}"`);
  const credentialText = get('X-Amz-Credential');
  const amzDate = get('X-Amz-Date');
  const expiresText = get('X-Amz-Expires');
  const signedText = get('X-Amz-SignedHeaders');
  const signature = get('X-Amz-Signature');
  if (!credentialText || !amzDate || !expiresText || !signedText || !signature) {
    throw fail('Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.');
  }
  const cred = parseCredential(credentialText, fail);
  const credential = lookupCredential(opts, cred.accessKeyId);
  checkRegion(opts, cred.region, fail);
  const when = parseAmzDate(amzDate);
  if (!when) throw fail('X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd\'T\'HHmmss\'Z\'"');
  if (amzDate.slice(0, 8) !== cred.date) throw fail('the X-Amz-Credential date does not match X-Amz-Date');
  if (!/^\d+$/.test(expiresText)) throw fail('X-Amz-Expires should be a number');
  const expires = Number(expiresText);
  if (expires < 1 || expires > MAX_PRESIGN_SECONDS) throw fail('X-Amz-Expires must be less than a week (in seconds) that is 604800');
  if (when.getTime() - now.getTime() > opts.maxSkewMs) throw Errors.accessDenied('Request is not valid yet');
  if (now.getTime() > when.getTime() + expires * 1000) throw Errors.expiredPresign();
  const signedHeaders = signedText.split(';');
  if (!signedHeaders.includes('host')) throw fail('the host header must be signed');
  const payloadHash = headers.get('x-amz-content-sha256')?.[0] ?? get('X-Amz-Content-Sha256') ?? UNSIGNED_PAYLOAD;
  const payload = payloadMode(payloadHash);
  if (payload.kind === 'streaming') throw Errors.invalidRequest('streaming payloads cannot be presigned');
  const scope = `${cred.date}/${cred.region}/${cred.service}/aws4_request`;
  const key = signingKey(credential.secretAccessKey, cred.date, cred.region, cred.service);
  const canonQuery = canonicalQuery(query.filter((p) => p.name !== 'X-Amz-Signature'));
  const headerBlock = canonicalHeaders(headers, signedHeaders);
  checkSignature(req, canonQuery, headerBlock, signedHeaders, payloadHash, amzDate, scope, key, signature.toLowerCase(), cred.accessKeyId);
  return { credential, presigned: true, payload, signature: signature.toLowerCase(), amzDate, scope, region: cred.region, signingKey: key };
}

function checkSignature(
  req: SignableRequest, canonQuery: string, headerBlock: string, signedHeaders: string[], payloadHash: string,
  amzDate: string, scope: string, key: Buffer, signature: string, accessKeyId: string,
): void {
  let first: { canonical: string; stringToSign: string } | undefined;
  for (const uri of canonicalUris(req.rawPath)) {
    const canonical = [req.method, uri, canonQuery, headerBlock, signedHeaders.join(';'), payloadHash].join('\n');
    const stringToSign = `${ALGORITHM}\n${amzDate}\n${scope}\n${sha256Hex(canonical)}`;
    if (safeEqualHex(createHmac('sha256', key).update(stringToSign).digest('hex'), signature)) return;
    first ??= { canonical, stringToSign };
  }
  throw Errors.signatureDoesNotMatch({
    AWSAccessKeyId: accessKeyId,
    StringToSign: first!.stringToSign,
    SignatureProvided: signature,
    CanonicalRequest: first!.canonical,
  });
}

export function payloadMode(value: string): PayloadMode {
  if (value === UNSIGNED_PAYLOAD) return { kind: 'unsigned' };
  if (value === STREAMING_SIGNED) return { kind: 'streaming', signed: true, trailer: false };
  if (value === STREAMING_SIGNED_TRAILER) return { kind: 'streaming', signed: true, trailer: true };
  if (value === STREAMING_UNSIGNED_TRAILER) return { kind: 'streaming', signed: false, trailer: true };
  if (/^[0-9a-fA-F]{64}$/.test(value)) return { kind: 'sha256', hex: value.toLowerCase() };
  throw Errors.invalidArgument(`x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA-256 in hex, got "${value.slice(0, 80)}"`);
}

/** Signature of one aws-chunked chunk (its SHA-256 given), chained from the previous signature. */
export function chunkSignature(auth: Pick<AuthContext, 'amzDate' | 'scope' | 'signingKey'>, previous: string, chunkSha256Hex: string): string {
  const sts = `AWS4-HMAC-SHA256-PAYLOAD\n${auth.amzDate}\n${auth.scope}\n${previous}\n${EMPTY_SHA256}\n${chunkSha256Hex}`;
  return createHmac('sha256', auth.signingKey).update(sts).digest('hex');
}

/** Signature of the trailing headers ("name:value\n" each, sorted), chained from the last chunk's. */
export function trailerSignature(auth: Pick<AuthContext, 'amzDate' | 'scope' | 'signingKey'>, previous: string, canonicalTrailer: string): string {
  const sts = `AWS4-HMAC-SHA256-TRAILER\n${auth.amzDate}\n${auth.scope}\n${previous}\n${sha256Hex(canonicalTrailer)}`;
  return createHmac('sha256', auth.signingKey).update(sts).digest('hex');
}

export { safeEqualHex };
