/**
 * Data-key wrapping of the AWS S3 Encryption Client with raw master keys (symmetric AES, RSA).
 * KMS wrapping needs I/O and lives in src/engine/aws-cse/kms.ts.
 *
 * - legacy (V1, no x-amz-wrap-alg): AES/ECB/PKCS5Padding with an AES key; RSA PKCS#1 v1.5 with an RSA key
 * - AESWrap: RFC 3394 key wrap
 * - AES/GCM: 12-byte IV || ciphertext || 16-byte tag, AAD = the content algorithm name
 *   ("AES/GCM/NoPadding"; "115" for V3)
 * - RSA-OAEP-SHA1: OAEP (SHA-1, MGF1-SHA-1) of [key length byte][data key][content algorithm name]
 */
import { constants, createCipheriv, createDecipheriv, privateDecrypt, publicEncrypt, randomBytes, type KeyObject } from 'node:crypto';
import { CseIntegrityError, CseKeyMissingError } from './errors.js';
import type { CseEnvelope } from './metadata.js';

export interface RawMasterKeys {
  /** Symmetric master key (16, 24 or 32 bytes). */
  aesKey?: Buffer;
  /** RSA private key (its public half wraps). */
  rsaKey?: KeyObject;
}

const AESWRAP_IV = Buffer.from('A6A6A6A6A6A6A6A6', 'hex');

/** Opens the envelope's data key with a raw master key. KMS-wrapped keys throw (use the KMS path). */
export function unwrapDataKey(env: CseEnvelope, keys: RawMasterKeys): Buffer {
  const aad = Buffer.from(env.contentAlg, 'utf8');
  let key: Buffer;
  switch (env.wrapAlg) {
    case 'legacy':
      // An RSA-wrapped key is as long as the modulus; an AES/ECB one is 48 bytes (32 + padding).
      if (keys.rsaKey && (!keys.aesKey || env.encryptedKey.length === rsaBytes(keys.rsaKey))) key = unwrapRsaPkcs1(keys.rsaKey, env.encryptedKey);
      else if (keys.aesKey) key = unwrapAesEcb(keys.aesKey, env.encryptedKey);
      else throw new CseKeyMissingError('this V1 object needs the symmetric (--aws-cse-key-file) or RSA (--aws-cse-rsa-key) master key');
      break;
    case 'AESWrap':
      key = unwrapAesWrap(need(keys.aesKey, 'AESWrap', '--aws-cse-key-file'), env.encryptedKey);
      break;
    case 'AES/GCM':
      key = unwrapAesGcm(need(keys.aesKey, 'AES/GCM', '--aws-cse-key-file'), env.encryptedKey, aad);
      break;
    case 'RSA-OAEP-SHA1':
      key = unwrapRsaOaep(need(keys.rsaKey, 'RSA-OAEP-SHA1', '--aws-cse-rsa-key'), env.encryptedKey, env.contentAlg);
      break;
    case 'kms':
    case 'kms+context':
      throw new CseKeyMissingError(`this object's data key is wrapped by AWS KMS (${env.wrapAlg}): give --aws-cse-kms-key-id`);
  }
  return checkDataKey(key, env);
}

export function checkDataKey(key: Buffer, env: CseEnvelope): Buffer {
  const ok = env.version === 1 || env.contentAlg === 'AES/CBC/PKCS5Padding' ? [16, 24, 32].includes(key.length) : key.length === 32;
  if (!ok) throw new CseIntegrityError('CSE_KEY_UNWRAP_FAILED', `the unwrapped data key is ${key.length} bytes long`);
  return key;
}

function rsaBytes(key: KeyObject): number {
  return Math.ceil((key.asymmetricKeyDetails?.modulusLength ?? 0) / 8);
}

function need<T>(k: T | undefined, alg: string, flag: string): T {
  if (!k) throw new CseKeyMissingError(`this object's data key is wrapped with ${alg}: give ${flag}`);
  return k;
}

function fail(what: string): never {
  throw new CseIntegrityError('CSE_KEY_UNWRAP_FAILED', `the data key does not unwrap (${what}): wrong master key, or the wrapped key or envelope was modified`);
}

function aesName(key: Buffer, mode: string): string {
  if (![16, 24, 32].includes(key.length)) throw new CseKeyMissingError(`an AES master key must be 16, 24 or 32 bytes, got ${key.length}`);
  return `aes-${key.length * 8}-${mode}`;
}

export function unwrapAesEcb(master: Buffer, wrapped: Buffer): Buffer {
  try {
    const d = createDecipheriv(aesName(master, 'ecb'), master, null);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch (err) {
    if (err instanceof CseKeyMissingError) throw err;
    return fail('AES/ECB');
  }
}

export function wrapAesEcb(master: Buffer, dataKey: Buffer): Buffer {
  const c = createCipheriv(aesName(master, 'ecb'), master, null);
  return Buffer.concat([c.update(dataKey), c.final()]);
}

/** RFC 3394 AES key wrap with the default IV. */
export function wrapAesWrap(master: Buffer, dataKey: Buffer): Buffer {
  const c = createCipheriv(`id-aes${master.length * 8}-wrap`, master, AESWRAP_IV);
  return Buffer.concat([c.update(dataKey), c.final()]);
}

export function unwrapAesWrap(master: Buffer, wrapped: Buffer): Buffer {
  aesName(master, 'wrap');
  if (wrapped.length < 24 || wrapped.length % 8 !== 0) fail('AESWrap length');
  try {
    const d = createDecipheriv(`id-aes${master.length * 8}-wrap`, master, AESWRAP_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch {
    return fail('AESWrap');
  }
}

export function wrapAesGcm(master: Buffer, dataKey: Buffer, aad: string, iv: Buffer = randomBytes(12)): Buffer {
  const c = createCipheriv(aesName(master, 'gcm') as 'aes-256-gcm', master, iv, { authTagLength: 16 });
  c.setAAD(Buffer.from(aad, 'utf8'));
  return Buffer.concat([iv, c.update(dataKey), c.final(), c.getAuthTag()]);
}

export function unwrapAesGcm(master: Buffer, wrapped: Buffer, aad: Buffer): Buffer {
  const name = aesName(master, 'gcm') as 'aes-256-gcm';
  if (wrapped.length < 12 + 16 + 1) fail('AES/GCM length');
  try {
    const d = createDecipheriv(name, master, wrapped.subarray(0, 12), { authTagLength: 16 });
    d.setAAD(aad);
    d.setAuthTag(wrapped.subarray(wrapped.length - 16));
    return Buffer.concat([d.update(wrapped.subarray(12, wrapped.length - 16)), d.final()]);
  } catch {
    return fail('AES/GCM tag');
  }
}

export function wrapRsaOaep(rsaKey: KeyObject, dataKey: Buffer, contentAlg: string): Buffer {
  const plain = Buffer.concat([Buffer.from([dataKey.length]), dataKey, Buffer.from(contentAlg, 'utf8')]);
  return publicEncrypt({ key: rsaKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, plain);
}

export function unwrapRsaOaep(rsaKey: KeyObject, wrapped: Buffer, contentAlg: string): Buffer {
  let plain: Buffer;
  try {
    plain = privateDecrypt({ key: rsaKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, wrapped);
  } catch {
    return fail('RSA-OAEP-SHA1');
  }
  const len = plain[0] ?? 0;
  if (plain.length < 1 + len) fail('RSA-OAEP-SHA1 payload');
  const alg = plain.subarray(1 + len).toString('utf8');
  if (alg !== contentAlg) {
    throw new CseIntegrityError('CSE_KEY_UNWRAP_FAILED', `the RSA-wrapped data key is bound to content algorithm ${JSON.stringify(alg)}, the envelope says ${JSON.stringify(contentAlg)}`);
  }
  return plain.subarray(1, 1 + len);
}

/**
 * RSA PKCS#1 v1.5 (what V1 clients wrote with an RSA master key). Node refuses PKCS#1 v1.5
 * decryption, so the raw RSA result is unpadded here; every failure is reported the same way.
 */
export function unwrapRsaPkcs1(rsaKey: KeyObject, wrapped: Buffer): Buffer {
  let em: Buffer;
  try {
    em = privateDecrypt({ key: rsaKey, padding: constants.RSA_NO_PADDING }, wrapped);
  } catch {
    return fail('RSA PKCS#1');
  }
  // EM = 0x00 || 0x02 || PS (>= 8 non-zero bytes) || 0x00 || M
  let sep = -1;
  for (let i = 2; i < em.length; i++) {
    if (em[i] === 0 && sep < 0) sep = i;
  }
  if (em[0] !== 0 || em[1] !== 2 || sep < 10) fail('RSA PKCS#1 padding');
  return Buffer.from(em.subarray(sep + 1));
}
