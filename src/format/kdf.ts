/** Key derivation from the master key. Every purpose has its own HKDF-SHA256 label. */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { KEY_ID_SIZE } from './header.js';

export const MASTER_KEY_SIZE = 32;

const LABEL = {
  keyId: 's3cryptfs/v1/key-id',
  kek: 's3cryptfs/v1/key-encryption-key',
  commit: 's3cryptfs/v1/commitment',
  content: 's3cryptfs/v1/content-key',
} as const;

/**
 * Everything derived from one master key. The master key itself is not kept. The name and attribute
 * keys are not derived from it: they belong to the bucket (BucketKeys, wrapped under this KEK in the
 * bucket config), so that rotating the master key changes no name.
 */
export interface DerivedKeys {
  /** Names the master key in headers and the bucket config; reveals nothing about it. */
  keyId: Buffer;
  /** Wraps per-object data keys and the bucket keys. */
  kek: Buffer;
}

export function deriveKeys(masterKey: Uint8Array): DerivedKeys {
  if (masterKey.length !== MASTER_KEY_SIZE) throw new RangeError(`master key must be ${MASTER_KEY_SIZE} bytes`);
  return {
    keyId: expand(masterKey, undefined, LABEL.keyId, KEY_ID_SIZE),
    kek: expand(masterKey, undefined, LABEL.kek, 32),
  };
}

/**
 * Commitment and content key of one object, both bound to the immutable header fields
 * (`header[0..12)`: magic, version, cipher, flags, chunk size), not to the wrap fields.
 */
export function deriveObjectKeys(dataKey: Uint8Array, immutableHeader: Uint8Array): { commitment: Buffer; contentKey: Buffer } {
  return {
    commitment: expand(dataKey, immutableHeader, LABEL.commit, 32),
    contentKey: expand(dataKey, immutableHeader, LABEL.content, 32),
  };
}

function expand(ikm: Uint8Array, salt: Uint8Array | undefined, info: string, len: number): Buffer {
  return Buffer.from(hkdf(sha256, ikm, salt, Buffer.from(info, "utf8"), len));
}
