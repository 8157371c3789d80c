/**
 * Deterministic file-name encryption, one path segment at a time, so listing by prefix still works.
 * AES-SIV (RFC 5297) with no nonce: equal names encrypt equally (that is the point), nothing else leaks
 * but length. Encoded as unpadded base64url, which is safe in S3 keys and file names.
 */
import { aessiv } from '@noble/ciphers/aes.js';

/** Longest plaintext segment we accept (NAME_MAX). */
export const MAX_NAME_BYTES = 255;
/** S3's key length limit; the encrypted prefix + path must fit. */
export const MAX_KEY_BYTES = 1024;
const SIV_TAG = 16;

export class NameError extends Error {
  override readonly name = 'NameError';
  constructor(readonly code: 'NAME_TOO_LONG' | 'NAME_INVALID' | 'NAME_TAMPERED', message: string) {
    super(message);
  }
}

/** Encrypted length of a segment of `plainBytes` bytes. */
export function encryptedNameLength(plainBytes: number): number {
  return Math.ceil(((plainBytes + SIV_TAG) * 4) / 3);
}

export function encryptName(nameKey: Uint8Array, name: string): string {
  const plain = Buffer.from(name, 'utf8');
  if (plain.length === 0 || name === '.' || name === '..' || name.includes('/')) throw new NameError('NAME_INVALID', 'invalid path segment');
  if (plain.length > MAX_NAME_BYTES) throw new NameError('NAME_TOO_LONG', `name is longer than ${MAX_NAME_BYTES} bytes`);
  return Buffer.from(aessiv(nameKey).encrypt(plain)).toString('base64url');
}

export function decryptName(nameKey: Uint8Array, encoded: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(encoded)) throw new NameError('NAME_INVALID', 'not an encrypted name');
  const sealed = Buffer.from(encoded, 'base64url');
  if (sealed.length <= SIV_TAG || sealed.toString('base64url') !== encoded) throw new NameError('NAME_INVALID', 'not an encrypted name');
  try {
    return Buffer.from(aessiv(nameKey).decrypt(sealed)).toString('utf8');
  } catch {
    throw new NameError('NAME_TAMPERED', 'encrypted name failed authentication');
  }
}

/** Maps a relative plaintext path ("a/b/c") segment by segment. A trailing "/" is kept. */
export function encryptPath(nameKey: Uint8Array, path: string): string {
  return mapSegments(path, (s) => encryptName(nameKey, s));
}

export function decryptPath(nameKey: Uint8Array, path: string): string {
  return mapSegments(path, (s) => decryptName(nameKey, s));
}

function mapSegments(path: string, fn: (segment: string) => string): string {
  if (path === '') return '';
  const trailing = path.endsWith('/');
  const segments = (trailing ? path.slice(0, -1) : path).split('/').map(fn);
  return segments.join('/') + (trailing ? '/' : '');
}
