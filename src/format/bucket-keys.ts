/**
 * The bucket keys: a random name key (AES-SIV, 64 bytes) and attribute key (XChaCha20-Poly1305,
 * 32 bytes) per bucket prefix, drawn once by `init`. They are stored in the bucket config wrapped
 * under the KEK of every master key the config lists, so a new master key (key rotation) only
 * re-wraps them: encrypted names and attributes do not change. See docs/format.md, section 2.4.
 *
 *   wrapped = base64url( nonce (24) || XChaCha20-Poly1305(KEK, nonce, aad = key id (16 bytes))
 *                                        .encrypt(nameKey (64) || attrKey (32)) )      // 136 bytes
 */
import { randomBytes } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import { IntegrityError } from './errors.js';
import type { DerivedKeys } from './kdf.js';

export const NAME_KEY_SIZE = 64;
export const ATTRIBUTE_KEY_SIZE = 32;
const NONCE_SIZE = 24;
const PLAIN_SIZE = NAME_KEY_SIZE + ATTRIBUTE_KEY_SIZE;
/** Bytes of one wrapped entry before base64url: nonce, ciphertext, tag. */
export const WRAPPED_BUCKET_KEYS_SIZE = NONCE_SIZE + PLAIN_SIZE + 16;

export interface BucketKeys {
  /** AES-SIV key (two AES-256 halves) for file names. */
  nameKey: Buffer;
  /** XChaCha20-Poly1305 key for the attributes stored in object metadata. */
  attrKey: Buffer;
}

export function newBucketKeys(rand: (n: number) => Buffer = randomBytes): BucketKeys {
  return { nameKey: rand(NAME_KEY_SIZE), attrKey: rand(ATTRIBUTE_KEY_SIZE) };
}

/** One config entry: the bucket keys wrapped under `keys.kek`, bound to `keys.keyId`. */
export function wrapBucketKeys(keys: DerivedKeys, bucketKeys: BucketKeys, rand: (n: number) => Buffer = randomBytes): string {
  const nonce = rand(NONCE_SIZE);
  const plain = Buffer.concat([bucketKeys.nameKey, bucketKeys.attrKey]);
  try {
    const sealed = xchacha20poly1305(keys.kek, nonce, keys.keyId).encrypt(plain);
    return Buffer.concat([nonce, sealed]).toString('base64url');
  } finally {
    plain.fill(0);
  }
}

/** Opens an entry made by wrapBucketKeys; KEY_UNWRAP_FAILED when it was not made with `keys`. */
export function unwrapBucketKeys(keys: DerivedKeys, wrapped: string): BucketKeys {
  const raw = Buffer.from(wrapped, 'base64url');
  let plain: Uint8Array;
  try {
    if (raw.length !== WRAPPED_BUCKET_KEYS_SIZE) throw new Error('length');
    plain = xchacha20poly1305(keys.kek, raw.subarray(0, NONCE_SIZE), keys.keyId).decrypt(raw.subarray(NONCE_SIZE));
  } catch {
    throw new IntegrityError('KEY_UNWRAP_FAILED', `bucket keys wrapped for key id ${keys.keyId.toString('hex')} failed authentication`);
  }
  const out = { nameKey: Buffer.from(plain.subarray(0, NAME_KEY_SIZE)), attrKey: Buffer.from(plain.subarray(NAME_KEY_SIZE)) };
  plain.fill(0);
  return out;
}

/** Best-effort wipe. */
export function wipeBucketKeys(k: BucketKeys): void {
  k.nameKey.fill(0);
  k.attrKey.fill(0);
}
