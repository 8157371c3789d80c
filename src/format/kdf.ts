/** Key derivation from the master key. Every purpose has its own HKDF-SHA256 label. */
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { KEY_ID_SIZE } from './header.js';

export const MASTER_KEY_SIZE = 32;

const LABEL = {
  keyId: 's3cryptfs/v1/key-id',
  kek: 's3cryptfs/v1/key-encryption-key',
  names: 's3cryptfs/v1/name-key',
  attributes: 's3cryptfs/v1/attribute-key',
  commit: 's3cryptfs/v1/commitment',
  content: 's3cryptfs/v1/content-key',
} as const;

/** Everything derived from one master key. The master key itself is not kept. */
export interface DerivedKeys {
  /** Names the master key in headers and the bucket config; reveals nothing about it. */
  keyId: Buffer;
  /** Wraps per-object data keys. */
  kek: Buffer;
  /** AES-SIV key (two AES-256 halves) for file names. */
  nameKey: Buffer;
  /** XChaCha20-Poly1305 key for the attributes stored in object metadata. */
  attrKey: Buffer;
}

export function deriveKeys(masterKey: Uint8Array): DerivedKeys {
  if (masterKey.length !== MASTER_KEY_SIZE) throw new RangeError(`master key must be ${MASTER_KEY_SIZE} bytes`);
  return {
    keyId: expand(masterKey, undefined, LABEL.keyId, KEY_ID_SIZE),
    kek: expand(masterKey, undefined, LABEL.kek, 32),
    nameKey: expand(masterKey, undefined, LABEL.names, 64),
    attrKey: expand(masterKey, undefined, LABEL.attributes, 32),
  };
}

/** Commitment and content key of one object, both bound to its header fields. */
export function deriveObjectKeys(dataKey: Uint8Array, headerPrefix: Uint8Array): { commitment: Buffer; contentKey: Buffer } {
  return {
    commitment: expand(dataKey, headerPrefix, LABEL.commit, 32),
    contentKey: expand(dataKey, headerPrefix, LABEL.content, 32),
  };
}

function expand(ikm: Uint8Array, salt: Uint8Array | undefined, info: string, len: number): Buffer {
  return Buffer.from(hkdf(sha256, ikm, salt, Buffer.from(info, "utf8"), len));
}
