/**
 * What the gateway keeps about an object besides its bytes, stored in the engine's sealed
 * attributes (encrypted and bound to the object like its content):
 *
 *   s3:content-type             Content-Type given at upload
 *   s3:content-encoding, s3:content-disposition, s3:content-language, s3:cache-control, s3:expires
 *   s3:meta:<name>              each x-amz-meta-<name> header (name lower-cased)
 *   s3:etag                     the client-visible ETag (without quotes)
 *   s3:size                     plaintext size the ETag was computed for
 *
 * ETags: a single PUT gets the MD5 of the plaintext (hex), like S3; a completed multipart upload
 * gets MD5(concatenated binary part MD5s)-N, like S3. Objects written by the mount or the CLI carry
 * no s3:etag; they (and objects whose s3:etag no longer describes the content: a different size, or
 * a mount write recorded in posix:mtime) get a derived ETag: hex MD5 of the backend ETag, with a "-1"
 * suffix so that clients never mistake it for a content MD5. Every ETag is stable until the object
 * is rewritten.
 */
import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { ObjectStat } from '../engine/index.js';
import { Errors } from './errors.js';

export const ATTR_CONTENT_TYPE = 's3:content-type';
export const ATTR_ETAG = 's3:etag';
export const ATTR_SIZE = 's3:size';
export const ATTR_META_PREFIX = 's3:meta:';
/** Headers stored as s3:<header> and returned on GET/HEAD. */
export const STORED_HEADERS = ['content-type', 'content-encoding', 'content-disposition', 'content-language', 'cache-control', 'expires'] as const;
export const DEFAULT_CONTENT_TYPE = 'binary/octet-stream';
/** S3's limit for user metadata (names and values). */
const MAX_USER_METADATA_BYTES = 2048;

/** Attributes from a PutObject / CreateMultipartUpload / CopyObject(REPLACE) request. */
export function attributesFromHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const attrs: Record<string, string> = {};
  for (const h of STORED_HEADERS) {
    const v = headers[h];
    if (v !== undefined && String(v) !== '') attrs[`s3:${h}`] = String(v);
  }
  let metaBytes = 0;
  for (const [name, value] of Object.entries(headers)) {
    if (!name.startsWith('x-amz-meta-') || value === undefined) continue;
    const short = name.slice('x-amz-meta-'.length);
    const v = Array.isArray(value) ? value.join(',') : String(value);
    metaBytes += Buffer.byteLength(short) + Buffer.byteLength(v);
    attrs[ATTR_META_PREFIX + short] = v;
  }
  if (metaBytes > MAX_USER_METADATA_BYTES) throw Errors.metadataTooLarge();
  return attrs;
}

/** The client-visible attributes only (s3:*, minus the ETag bookkeeping): what CopyObject(COPY) carries over. */
export function clientAttributes(attrs: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (k.startsWith('s3:') && k !== ATTR_ETAG && k !== ATTR_SIZE) out[k] = v;
  return out;
}

export function withEtag(attrs: Record<string, string>, etag: string, size: number): Record<string, string> {
  return { ...attrs, [ATTR_ETAG]: unquote(etag), [ATTR_SIZE]: String(size) };
}

export function quote(etag: string): string {
  return `"${unquote(etag)}"`;
}

export function unquote(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** Derived ETag for objects without a usable s3:etag (see the module comment). */
export function derivedEtag(backendEtag: string): string {
  return `"${createHash('md5').update(`s3cryptfs:${unquote(backendEtag)}`).digest('hex')}-1"`;
}

/** The quoted client ETag of an object. */
export function clientEtag(stat: Pick<ObjectStat, 'size' | 'etag' | 'attributes'>): string {
  const a = stat.attributes;
  const stored = a[ATTR_ETAG];
  if (stored !== undefined && a[ATTR_SIZE] === String(stat.size) && a['posix:mtime'] === undefined) return quote(stored);
  return derivedEtag(stat.etag);
}

export function md5Etag(md5: Buffer): string {
  return `"${md5.toString('hex')}"`;
}

/** S3's multipart ETag: MD5 of the concatenated binary part MD5s, "-" part count. */
export function multipartEtag(partMd5s: Buffer[]): string {
  return `"${createHash('md5').update(Buffer.concat(partMd5s)).digest('hex')}-${partMd5s.length}"`;
}

export function httpDate(d: Date): string {
  return d.toUTCString();
}

/** Content and user-metadata headers of a GET/HEAD response. */
export function objectHeaders(stat: ObjectStat): OutgoingHttpHeaders {
  const a = stat.attributes;
  const h: OutgoingHttpHeaders = {
    'content-type': a[ATTR_CONTENT_TYPE] ?? DEFAULT_CONTENT_TYPE,
    etag: clientEtag(stat),
    'last-modified': httpDate(stat.lastModified),
    'accept-ranges': 'bytes',
  };
  for (const name of STORED_HEADERS) {
    if (name === 'content-type') continue;
    const v = a[`s3:${name}`];
    if (v !== undefined) h[name] = v;
  }
  for (const [k, v] of Object.entries(a)) {
    if (k.startsWith(ATTR_META_PREFIX)) h[`x-amz-meta-${k.slice(ATTR_META_PREFIX.length)}`] = headerSafe(v);
  }
  return h;
}

/** Header values must be latin1 without control characters; S3 would have refused others anyway. */
function headerSafe(v: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[\u0020-\u007e\u0080-\u00ff\t]*$/.test(v) ? v : encodeURIComponent(v);
}
