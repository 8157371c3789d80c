/** One-chunk AEAD through node:crypto (OpenSSL): the hot path. Cross-checked against @noble/ciphers in tests. */
import { createCipheriv, createDecipheriv } from 'node:crypto';
import type { CipherName } from './header.js';
import { TAG_SIZE } from './layout.js';

export const CHUNK_NONCE_SIZE = 12;

/** 96-bit nonce = 32 zero bits || chunk index as 64-bit big-endian. Unique because a data key seals one object. */
export function chunkNonce(index: number): Buffer {
  const nonce = Buffer.alloc(CHUNK_NONCE_SIZE);
  nonce.writeBigUInt64BE(BigInt(index), 4);
  return nonce;
}

/** Returns ciphertext || 16-byte tag. */
export function sealChunk(cipher: CipherName, key: Uint8Array, index: number, aad: Uint8Array, plaintext: Uint8Array): Buffer {
  const [body, tag] = sealChunkParts(cipher, key, index, aad, plaintext);
  return Buffer.concat([body, tag], body.length + TAG_SIZE);
}

/** Ciphertext and tag as two buffers, sparing a copy of the chunk on the hot path. */
export function sealChunkParts(cipher: CipherName, key: Uint8Array, index: number, aad: Uint8Array, plaintext: Uint8Array): [Buffer, Buffer] {
  const c = createCipheriv(cipher, key, chunkNonce(index), { authTagLength: TAG_SIZE } as never);
  (c as unknown as { setAAD(b: Uint8Array, o?: object): void }).setAAD(aad, { plaintextLength: plaintext.length });
  const body = c.update(plaintext);
  c.final();
  return [body, (c as unknown as { getAuthTag(): Buffer }).getAuthTag()];
}

/** Returns the plaintext, or null when authentication fails. */
export function openChunk(cipher: CipherName, key: Uint8Array, index: number, aad: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < TAG_SIZE) return null;
  const bodyLen = sealed.length - TAG_SIZE;
  const d = createDecipheriv(cipher, key, chunkNonce(index), { authTagLength: TAG_SIZE } as never) as unknown as {
    setAAD(b: Uint8Array, o?: object): void; setAuthTag(t: Uint8Array): void; update(b: Uint8Array): Buffer; final(): Buffer;
  };
  d.setAuthTag(sealed.subarray(bodyLen));
  d.setAAD(aad, { plaintextLength: bodyLen });
  const body = d.update(sealed.subarray(0, bodyLen));
  try {
    d.final();
  } catch {
    return null;
  }
  return body;
}
