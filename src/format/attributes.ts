/**
 * Object attributes (POSIX mode/uid/gid/times for the mount, content-type and user metadata for the
 * gateway), sealed into one S3 metadata value. Bound to the object key so they cannot be moved
 * to another object; a rename re-seals them.
 */
import { randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { IntegrityError } from './errors.js';

/** S3 user-metadata name (x-amz-meta-s3cf-attrs). */
export const ATTRIBUTES_METADATA_KEY = 's3cf-attrs';
const NONCE_SIZE = 24;

export function sealAttributes(attrKey: Uint8Array, objectKey: string, attrs: Record<string, string>): string {
  const nonce = randomBytes(NONCE_SIZE);
  const sealed = xchacha20poly1305(attrKey, nonce, Buffer.from(objectKey, 'utf8')).encrypt(Buffer.from(JSON.stringify(attrs), 'utf8'));
  return Buffer.concat([nonce, sealed]).toString('base64url');
}

export function openAttributes(attrKey: Uint8Array, objectKey: string, encoded: string): Record<string, string> {
  const raw = Buffer.from(encoded, 'base64url');
  try {
    const plain = xchacha20poly1305(attrKey, raw.subarray(0, NONCE_SIZE), Buffer.from(objectKey, 'utf8')).decrypt(raw.subarray(NONCE_SIZE));
    const parsed = JSON.parse(Buffer.from(plain).toString('utf8')) as unknown;
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a map');
    return parsed as Record<string, string>;
  } catch {
    throw new IntegrityError('ATTRIBUTES_TAMPERED', 'object attributes failed authentication');
  }
}
