/**
 * The directory attribute index: one sealed blob per directory mapping each entry name to the
 * attributes of one version of its object, so a listing plus this blob give full stats without
 * a HEAD per file. It is a cache, never the source of truth: a file entry is only used while the
 * listing still shows the same version (ETag, plaintext size, LastModified second).
 *
 *   blob      = "S3DI" || version (1) || nonce (24) || XChaCha20-Poly1305(attrKey, nonce, aad).encrypt(json)
 *   aad       = "s3cryptfs dir index v1\n" || bound key (the index object's key relative to the prefix)
 *   json      = {"f":[[name, etag, size, lastModifiedSeconds|null, attrs], ...], "d":[[name, attrs], ...]}
 *
 * Binding to the key means an index copied onto another directory fails authentication.
 * See docs/format.md, "Directory attribute index".
 */
import { randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { IntegrityError } from './errors.js';

/** Name of the root directory's index object, next to the config (the root has no marker). */
export const DIR_INDEX_ROOT_NAME = '.s3cryptfs-index';
const MAGIC = Buffer.from('S3DI', 'latin1');
const VERSION = 1;
const NONCE_SIZE = 24;
const TAG_SIZE = 16;
const AAD_LABEL = 's3cryptfs dir index v1\n';

export interface DirIndexFile {
  /** Backend ETag of the version the attributes belong to (quoted, as S3 returns it). */
  etag: string;
  /** Plaintext size of that version. */
  size: number;
  /** Its LastModified in whole seconds since the epoch; null when the writer did not know it. */
  mtimeSec: number | null;
  attrs: Record<string, string>;
}

export interface DirIndex {
  files: Map<string, DirIndexFile>;
  /** Subdirectory name -> its attributes (a copy of what its marker holds). */
  dirs: Map<string, Record<string, string>>;
}

export function emptyDirIndex(): DirIndex {
  return { files: new Map(), dirs: new Map() };
}

export function sealDirIndex(attrKey: Uint8Array, boundKey: string, index: DirIndex, rand: (n: number) => Buffer = randomBytes): Buffer {
  const json = JSON.stringify({
    f: [...index.files].map(([name, e]) => [name, e.etag, e.size, e.mtimeSec, e.attrs]),
    d: [...index.dirs].map(([name, attrs]) => [name, attrs]),
  });
  const nonce = rand(NONCE_SIZE);
  const sealed = xchacha20poly1305(attrKey, nonce, aad(boundKey)).encrypt(Buffer.from(json, 'utf8'));
  return Buffer.concat([MAGIC, Buffer.from([VERSION]), nonce, sealed]);
}

/** Opens a blob made by sealDirIndex for `boundKey`. IntegrityError DIR_INDEX_TAMPERED otherwise. */
export function openDirIndex(attrKey: Uint8Array, boundKey: string, blob: Uint8Array): DirIndex {
  const bad = (why: string): never => { throw new IntegrityError('DIR_INDEX_TAMPERED', `directory index: ${why}`); };
  const raw = Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  if (raw.length < MAGIC.length + 1 + NONCE_SIZE + TAG_SIZE || !raw.subarray(0, MAGIC.length).equals(MAGIC)) return bad('not an index');
  if (raw[MAGIC.length] !== VERSION) return bad(`unsupported version ${raw[MAGIC.length]}`);
  const nonce = raw.subarray(MAGIC.length + 1, MAGIC.length + 1 + NONCE_SIZE);
  let plain: Uint8Array;
  try {
    plain = xchacha20poly1305(attrKey, nonce, aad(boundKey)).decrypt(raw.subarray(MAGIC.length + 1 + NONCE_SIZE));
  } catch {
    return bad('failed authentication');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(plain).toString('utf8'));
  } catch {
    return bad('not JSON');
  }
  // Authenticated, so only our own writer made it; still check the shape rather than trust it.
  const p = parsed as { f?: unknown; d?: unknown };
  if (!p || typeof p !== 'object' || !Array.isArray(p.f) || !Array.isArray(p.d)) return bad('malformed');
  const index = emptyDirIndex();
  for (const e of p.f as unknown[]) {
    if (!Array.isArray(e) || e.length !== 5) return bad('malformed file entry');
    const [name, etag, size, mtimeSec, attrs] = e as unknown[];
    if (typeof name !== 'string' || typeof etag !== 'string' || !Number.isSafeInteger(size) || (size as number) < 0) return bad('malformed file entry');
    if (mtimeSec !== null && !Number.isSafeInteger(mtimeSec)) return bad('malformed file entry');
    index.files.set(name, { etag, size: size as number, mtimeSec: mtimeSec as number | null, attrs: checkAttrs(attrs, bad) });
  }
  for (const e of p.d as unknown[]) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string') return bad('malformed directory entry');
    index.dirs.set(e[0], checkAttrs(e[1], bad));
  }
  return index;
}

/** LastModified as compared by the index: listings and HEADs agree only to the second. */
export function lastModifiedSeconds(d: Date): number {
  return Math.floor(d.getTime() / 1000);
}

function aad(boundKey: string): Buffer {
  return Buffer.from(AAD_LABEL + boundKey, 'utf8');
}

function checkAttrs(v: unknown, bad: (why: string) => never): Record<string, string> {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return bad('malformed attributes');
  const out: Record<string, string> = {};
  for (const [k, s] of Object.entries(v)) {
    if (typeof s !== 'string') return bad('malformed attributes');
    out[k] = s;
  }
  return out;
}
