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

/**
 * Seals or opens a run of consecutive chunks of one object off the caller's thread: implemented by
 * the native AEAD addon (native-bindings/aead) and injected by the engine, so this module stays
 * pure. `src` and `dst` are each one byte stream split over buffers (a chunk may straddle two).
 * The run's chunks get indexes index, index + 1, ...; with `final` its last chunk is the object's
 * last (aadFinal, and it may be short or empty), otherwise every chunk is full. Same bytes as
 * sealChunkParts per chunk, ciphertext || tag. Sealing with `src` null works in place: each chunk's
 * plaintext already sits in `dst` where its ciphertext goes, with TAG_SIZE bytes of room after it.
 */
export interface ChunkRunPort {
  sealRun(
    cipher: CipherName, key: Uint8Array, aadMiddle: Uint8Array, aadFinal: Uint8Array,
    index: number, chunkSize: number, final: boolean, src: readonly Uint8Array[] | null, dst: readonly Uint8Array[],
  ): Promise<void>;
  /** The same on the caller's thread: for runs too small to be worth a thread hop. */
  sealRunSync(
    cipher: CipherName, key: Uint8Array, aadMiddle: Uint8Array, aadFinal: Uint8Array,
    index: number, chunkSize: number, final: boolean, src: readonly Uint8Array[] | null, dst: readonly Uint8Array[],
  ): void;
  /** openRun on the caller's thread: -1, or the index of the first chunk that failed (dst zeroed). */
  openRunSync(
    cipher: CipherName, key: Uint8Array, aadMiddle: Uint8Array, aadFinal: Uint8Array,
    index: number, chunkSize: number, final: boolean, src: readonly Uint8Array[], dst: readonly Uint8Array[],
  ): number;
  /** Resolves to -1, or to the index of the first chunk that failed authentication (then dst is zeroed). */
  openRun(
    cipher: CipherName, key: Uint8Array, aadMiddle: Uint8Array, aadFinal: Uint8Array,
    index: number, chunkSize: number, final: boolean, src: readonly Uint8Array[], dst: readonly Uint8Array[],
  ): Promise<number>;
}

/** Ciphertext bytes of a run of `plainLength` plaintext bytes (ChunkRunPort's rule for `final`). */
export function sealedRunLength(plainLength: number, chunkSize: number, final: boolean): number {
  const chunks = final ? Math.max(1, Math.ceil(plainLength / chunkSize)) : plainLength / chunkSize;
  return plainLength + chunks * TAG_SIZE;
}
