/**
 * Plaintext paths <-> S3 keys. Plaintext paths are relative to the prefix, without a leading "/"
 * ("dir/file.txt"; "" is the root directory). With name mode "aes-siv" each segment is encrypted;
 * with "plain" the key is the path itself.
 */
import { CONFIG_OBJECT_NAME, decryptPath, DIR_INDEX_ROOT_NAME, encryptPath, MAX_KEY_BYTES, MAX_NAME_BYTES, NameError, type NameMode } from '../format/index.js';
import { EngineError } from './errors.js';

export class PathCodec {
  /** "" or "some/prefix/": prepended to every key. */
  readonly keyPrefix: string;
  readonly configKey: string;
  /** The root directory's attributes and index (the root has no marker). */
  readonly rootIndexKey: string;

  constructor(prefix: string, private readonly mode: NameMode, private readonly nameKey: Uint8Array) {
    this.keyPrefix = normalizePrefix(prefix);
    this.configKey = this.keyPrefix + CONFIG_OBJECT_NAME;
    this.rootIndexKey = this.keyPrefix + DIR_INDEX_ROOT_NAME;
  }

  /** S3 key of a file. */
  fileKey(path: string): string {
    const p = checkPath(path, false);
    if (this.mode === 'plain' && (p === CONFIG_OBJECT_NAME || p === DIR_INDEX_ROOT_NAME)) throw new EngineError('INVALID_PATH', `"${p}" is reserved`);
    return this.withLimit(this.keyPrefix + this.encode(p), path);
  }

  /** Key prefix of a directory's contents; the root ("") maps to the bucket prefix itself. */
  dirPrefix(dir: string): string {
    const d = checkPath(dir, true);
    return d === '' ? this.keyPrefix : this.withLimit(this.keyPrefix + this.encode(d) + '/', dir);
  }

  /** Key of a directory's zero-byte marker object ("<encoded dir>/"). */
  markerKey(dir: string): string {
    const d = checkPath(dir, true);
    if (d === '') throw new EngineError('INVALID_PATH', 'the root directory has no marker');
    return this.dirPrefix(d);
  }

  /** Key relative to the prefix: what attributes are bound to, so a whole prefix can be moved. */
  relativeKey(key: string): string {
    return key.startsWith(this.keyPrefix) ? key.slice(this.keyPrefix.length) : key;
  }

  /** Plaintext path of a key under the prefix (a trailing "/" is kept); throws NameError for foreign names. */
  pathOf(key: string): string {
    if (!key.startsWith(this.keyPrefix)) throw new NameError('NAME_INVALID', 'key outside the prefix');
    const rel = key.slice(this.keyPrefix.length);
    return this.mode === 'plain' ? rel : decryptPath(this.nameKey, rel);
  }

  private encode(path: string): string {
    if (this.mode === 'plain') return path;
    try {
      return encryptPath(this.nameKey, path);
    } catch (err) {
      if (err instanceof NameError && err.code === 'NAME_TOO_LONG') throw new EngineError('NAME_TOO_LONG', err.message, { cause: err });
      throw new EngineError('INVALID_PATH', `invalid path "${path}"`, { cause: err });
    }
  }

  private withLimit(key: string, path: string): string {
    if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) {
      throw new EngineError('NAME_TOO_LONG', `the key for "${path}" would be longer than ${MAX_KEY_BYTES} bytes`);
    }
    return key;
  }
}

export function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+/, '').replace(/\/+$/, '');
  return p === '' ? '' : p + '/';
}

/** Validates a relative path; a directory may carry one trailing "/" (removed). */
function checkPath(path: string, dir: boolean): string {
  let p = path;
  if (dir && p.endsWith('/')) p = p.slice(0, -1);
  if (dir && p === '') return '';
  if (p === '' || p.startsWith('/')) throw new EngineError('INVALID_PATH', `invalid path "${path}": must be relative and non-empty`);
  // NUL is in no POSIX name and no XML 1.0 document (listings): refuse it rather than send it to the backend.
  if (p.includes('\0')) throw new EngineError('INVALID_PATH', 'invalid path: contains a NUL character');
  for (const segment of p.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') throw new EngineError('INVALID_PATH', `invalid path "${path}"`);
    if (Buffer.byteLength(segment, 'utf8') > MAX_NAME_BYTES) throw new EngineError('NAME_TOO_LONG', `"${segment.slice(0, 40)}..." is longer than ${MAX_NAME_BYTES} bytes`);
  }
  return p;
}

/** Parent directory of a path ("" for top-level entries). */
export function parentDir(path: string): string {
  const i = path.replace(/\/$/, '').lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}
