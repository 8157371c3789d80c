/** Text encodings of a raw 32-byte master key: 64 hex digits or 44 characters of (url-safe) base64. */
import { MASTER_KEY_SIZE } from '../format/kdf.js';
import { KeyError } from './errors.js';

export type KeyEncoding = 'hex' | 'base64';

export function encodeKey(key: Uint8Array, encoding: KeyEncoding): string {
  if (key.length !== MASTER_KEY_SIZE) throw new RangeError(`master key must be ${MASTER_KEY_SIZE} bytes`);
  return Buffer.from(key.buffer, key.byteOffset, key.length).toString(encoding);
}

/**
 * Parses a key written by `keygen` (or by hand). Surrounding whitespace is ignored. `what` names the
 * source in the error message; the text itself never appears there.
 */
export function decodeKey(text: string, what: string): Uint8Array {
  const s = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(s)) {
    key = Buffer.from(s, 'hex');
  } else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(s)) {
    key = Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  }
  if (!key || key.length !== MASTER_KEY_SIZE) {
    throw new KeyError('KEY_INVALID', `${what} does not hold a ${MASTER_KEY_SIZE}-byte key (expected 64 hex digits or 44 base64 characters)`);
  }
  const out = new Uint8Array(key);
  key.fill(0);
  return out;
}
