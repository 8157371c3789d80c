/**
 * Content encryption of the AWS S3 Encryption Client formats:
 * - AES/CBC/PKCS5Padding (V1, V2 legacy): decryption only; any block range can be opened with the
 *   ciphertext block before it as IV.
 * - AES/GCM/NoPadding (V2): 12-byte IV, no AAD, 16-byte tag appended to the ciphertext.
 * - ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY ("115", V3): HKDF-SHA512 over the data key with the
 *   28-byte message id as salt gives the content key (info 0x0073 || "DERIVEKEY", 32 bytes) and the
 *   key commitment (info 0x0073 || "COMMITKEY", 28 bytes); content is AES-256-GCM with the fixed IV
 *   0x01 x 12 and AAD 0x0073.
 * Ranged reads of GCM content use AES-CTR: GCM encrypts plaintext block i under the counter block
 * IV || (i + 2) (32-bit big-endian), so CTR started there yields the same keystream. Such reads are
 * not authenticated; only a read of the whole object checks the tag.
 */
import {
  createCipheriv, createDecipheriv, hkdfSync, timingSafeEqual,
  type CipherGCM, type Decipher, type DecipherGCM,
} from 'node:crypto';
import { CseIntegrityError } from './errors.js';
import { COMMIT_ALG, type CseEnvelope } from './metadata.js';

export const BLOCK = 16;
const SUITE_ID = Buffer.from([0x00, 0x73]);

/** The key and AAD the content is encrypted with (V3: derived after checking the commitment). */
export interface ContentKey {
  key: Buffer;
  iv: Buffer;
  aad: Buffer | null;
  gcm: boolean;
}

/** V3 key derivation; returns the content key and the commitment it implies. */
export function deriveV3(dataKey: Buffer, messageId: Buffer): { key: Buffer; commitment: Buffer } {
  const info = (label: string) => Buffer.concat([SUITE_ID, Buffer.from(label, 'utf8')]);
  const commitment = Buffer.from(hkdfSync('sha512', dataKey, messageId, info('COMMITKEY'), 28));
  const key = Buffer.from(hkdfSync('sha512', dataKey, messageId, info('DERIVEKEY'), 32));
  return { key, commitment };
}

/** The content key of an object whose data key is known. V3: checks the key commitment first (constant time). */
export function contentKey(env: CseEnvelope, dataKey: Buffer): ContentKey {
  if (env.contentAlg === COMMIT_ALG) {
    const { key, commitment } = deriveV3(dataKey, env.messageId!);
    if (!env.commitment || env.commitment.length !== commitment.length || !timingSafeEqual(env.commitment, commitment)) {
      throw new CseIntegrityError('CSE_COMMITMENT_MISMATCH', 'the key commitment (x-amz-d) does not match the data key: the object or its envelope was modified');
    }
    return { key, iv: env.iv, aad: SUITE_ID, gcm: true };
  }
  return { key: dataKey, iv: env.iv, aad: null, gcm: env.tagLength > 0 };
}

function aes(key: Buffer, mode: string): string {
  return `aes-${key.length * 8}-${mode}`;
}

/** Whole-object GCM decryption: feed the ciphertext without the tag, then finish with the tag. */
export function gcmDecipher(ck: ContentKey): DecipherGCM {
  const d = createDecipheriv(aes(ck.key, 'gcm') as 'aes-256-gcm', ck.key, ck.iv, { authTagLength: 16 });
  if (ck.aad) d.setAAD(ck.aad);
  return d;
}

/** Finishes a GCM decipher; a wrong tag becomes CseIntegrityError CSE_TAG_MISMATCH. */
export function finishGcm(d: DecipherGCM, tag: Buffer): Buffer {
  try {
    d.setAuthTag(tag);
    return d.final();
  } catch {
    throw new CseIntegrityError('CSE_TAG_MISMATCH', 'AES-GCM authentication failed: the content, IV, tag or data key was modified');
  }
}

export function gcmCipher(key: Buffer, iv: Buffer): CipherGCM {
  return createCipheriv(aes(key, 'gcm') as 'aes-256-gcm', key, iv, { authTagLength: 16 });
}

/** CTR decipher positioned at content block `block` of a GCM object (unauthenticated). */
export function gcmRangeDecipher(ck: ContentKey, block: number): Decipher {
  if (ck.iv.length !== 12) throw new CseIntegrityError('CSE_ENVELOPE_INVALID', 'ranged GCM reads need a 12-byte IV');
  const counter = Buffer.alloc(16);
  ck.iv.copy(counter, 0);
  counter.writeUInt32BE((block + 2) % 0x1_0000_0000, 12);
  return createDecipheriv(aes(ck.key, 'ctr'), ck.key, counter);
}

/** CBC decipher; `iv` is the envelope IV for block 0, else the previous ciphertext block. */
export function cbcDecipher(key: Buffer, iv: Buffer, padded: boolean): Decipher {
  const d = createDecipheriv(aes(key, 'cbc'), key, iv);
  d.setAutoPadding(padded);
  return d;
}

/** Finishes a padded CBC decipher; bad padding becomes CseIntegrityError CSE_BAD_PADDING. */
export function finishCbc(d: Decipher): Buffer {
  try {
    return d.final();
  } catch {
    throw new CseIntegrityError('CSE_BAD_PADDING', 'AES-CBC padding is invalid: the content, IV or data key was modified (CBC objects carry no authentication tag)');
  }
}

/** Plaintext length of a CBC object from its last two ciphertext blocks (or the IV and the only block). */
export function cbcPlainSize(key: Buffer, prevBlock: Buffer, lastBlock: Buffer, cipherSize: number): number {
  const d = cbcDecipher(key, prevBlock, false);
  const last = Buffer.concat([d.update(lastBlock), d.final()]);
  const pad = last[15];
  if (pad < 1 || pad > 16 || !last.subarray(16 - pad).every((b) => b === pad)) {
    throw new CseIntegrityError('CSE_BAD_PADDING', 'AES-CBC padding is invalid: the content, IV or data key was modified');
  }
  return cipherSize - pad;
}

/** Ciphertext byte range to fetch for plaintext [start, end) (end exclusive), and how to open it. */
export interface RangePlan {
  /** Ciphertext bytes [fetchStart, fetchEnd) of the object. */
  fetchStart: number;
  fetchEnd: number;
  /** First content block covered. */
  block: number;
  /** Plaintext offset of the first decrypted byte (block * 16). */
  plainStart: number;
  /** CBC: the first 16 fetched bytes are the IV (previous block), not content. */
  ivInFetch: boolean;
}

export function planRange(ck: ContentKey, cipherSize: number, tagLength: number, start: number, end: number): RangePlan {
  const block = Math.floor(start / BLOCK);
  const contentEnd = cipherSize - tagLength;
  const fetchEnd = Math.min(contentEnd, Math.ceil(end / BLOCK) * BLOCK);
  if (ck.gcm) return { fetchStart: block * BLOCK, fetchEnd, block, plainStart: block * BLOCK, ivInFetch: false };
  const fetchStart = block === 0 ? 0 : (block - 1) * BLOCK;
  return { fetchStart, fetchEnd, block, plainStart: block * BLOCK, ivInFetch: block > 0 };
}

/** Decrypts the bytes fetched for `plan` (no padding removal; callers cut at the plaintext size). */
export function openRange(ck: ContentKey, plan: RangePlan, fetched: Buffer): Buffer {
  if (ck.gcm) {
    const d = gcmRangeDecipher(ck, plan.block);
    return Buffer.concat([d.update(fetched), d.final()]);
  }
  const iv = plan.ivInFetch ? fetched.subarray(0, BLOCK) : ck.iv;
  const body = plan.ivInFetch ? fetched.subarray(BLOCK) : fetched;
  if (body.length % BLOCK !== 0) throw new CseIntegrityError('CSE_INVALID_SIZE', 'CBC range is not block aligned');
  const d = cbcDecipher(ck.key, iv, false);
  return Buffer.concat([d.update(body), d.final()]);
}
