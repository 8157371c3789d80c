/**
 * Envelope encryption of one object version: a fresh data key wrapped under the master key's KEK,
 * a header that commits to that data key, and the per-chunk AEAD bound to the header.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import {
  COMMITMENT_OFFSET, decodeHeader, encodeHeader, FORMAT_VERSION, HEADER_SIZE, isValidChunkSize,
  WRAP_AAD_END, WRAP_NONCE_SIZE, type CipherName, type ObjectHeader,
} from './header.js';
import { deriveObjectKeys, type DerivedKeys } from './kdf.js';
import { openChunk, sealChunk, sealChunkParts } from './chunk.js';
import { IntegrityError } from './errors.js';

const DATA_KEY_SIZE = 32;
/** How many neighbouring indexes a failed chunk is tried at, to tell reordering from tampering. */
const REORDER_SEARCH_RADIUS = 64;

export interface ObjectParams {
  cipher: CipherName;
  chunkSize: number;
}

/** Finds the derived keys for a key id (several during key rotation). */
export type KeyRing = DerivedKeys | ((keyId: Buffer) => DerivedKeys | undefined);

/** Seals and opens the chunks of one object version. Holds the content key, never the master key. */
export class ObjectCipher {
  readonly cipher: CipherName;
  readonly chunkSize: number;
  private readonly aadMiddle: Buffer;
  private readonly aadFinal: Buffer;

  constructor(readonly header: Buffer, params: ObjectParams, private readonly contentKey: Buffer) {
    this.cipher = params.cipher;
    this.chunkSize = params.chunkSize;
    // AAD = whole header || final flag: binds every chunk to this header and marks the end.
    this.aadMiddle = Buffer.concat([header, Buffer.from([0])]);
    this.aadFinal = Buffer.concat([header, Buffer.from([1])]);
  }

  sealChunk(index: number, final: boolean, plaintext: Uint8Array): Buffer {
    if (plaintext.length > this.chunkSize) throw new RangeError('chunk larger than chunk size');
    return sealChunk(this.cipher, this.contentKey, index, final ? this.aadFinal : this.aadMiddle, plaintext);
  }

  /** Same as sealChunk, as [ciphertext, tag]: the caller concatenates while copying anyway. */
  sealChunkParts(index: number, final: boolean, plaintext: Uint8Array): [Buffer, Buffer] {
    if (plaintext.length > this.chunkSize) throw new RangeError('chunk larger than chunk size');
    return sealChunkParts(this.cipher, this.contentKey, index, final ? this.aadFinal : this.aadMiddle, plaintext);
  }

  /** Opens chunk `index` of an object that has `chunkTotal` chunks; throws a classified IntegrityError. */
  openChunk(index: number, chunkTotal: number, sealed: Uint8Array): Buffer {
    const final = index === chunkTotal - 1;
    const plain = this.tryOpen(index, final, sealed);
    if (plain) return plain;
    throw this.classifyFailure(index, final, sealed);
  }

  private tryOpen(index: number, final: boolean, sealed: Uint8Array): Buffer | null {
    return openChunk(this.cipher, this.contentKey, index, final ? this.aadFinal : this.aadMiddle, sealed);
  }

  // Only runs on the failure path, so the extra trial decryptions cost nothing in normal operation.
  private classifyFailure(index: number, final: boolean, sealed: Uint8Array): IntegrityError {
    if (this.tryOpen(index, !final, sealed)) {
      return final
        ? new IntegrityError('TRUNCATED', `object truncated: chunk ${index} is not the final chunk`, index)
        : new IntegrityError('EXTENDED', `data follows the final chunk ${index}`, index);
    }
    const from = Math.max(0, index - REORDER_SEARCH_RADIUS);
    for (let j = from; j <= index + REORDER_SEARCH_RADIUS; j++) {
      if (j === index) continue;
      if (this.tryOpen(j, false, sealed) || this.tryOpen(j, true, sealed)) {
        return new IntegrityError('CHUNK_REORDERED', `chunk ${j} found at position ${index}`, index);
      }
    }
    return new IntegrityError('CHUNK_TAMPERED', `chunk ${index} failed authentication`, index);
  }
}

/** Starts a new object version under `keys`: fresh data key, wrapped, committed. */
export function newObjectCipher(keys: DerivedKeys, params: ObjectParams, rand: (n: number) => Buffer = randomBytes): ObjectCipher {
  if (!isValidChunkSize(params.chunkSize)) throw new RangeError(`invalid chunk size ${params.chunkSize}`);
  const dataKey = rand(DATA_KEY_SIZE);
  const draft: ObjectHeader = {
    version: FORMAT_VERSION,
    cipher: params.cipher,
    chunkSize: params.chunkSize,
    keyId: keys.keyId,
    wrapNonce: rand(WRAP_NONCE_SIZE),
    wrappedKey: Buffer.alloc(48),
    commitment: Buffer.alloc(32),
  };
  const prefix = encodeHeader(draft);
  draft.wrappedKey = Buffer.from(xchacha20poly1305(keys.kek, draft.wrapNonce, prefix.subarray(0, WRAP_AAD_END)).encrypt(dataKey));
  const withKey = encodeHeader(draft);
  const { commitment, contentKey } = deriveObjectKeys(dataKey, withKey.subarray(0, COMMITMENT_OFFSET));
  draft.commitment = commitment;
  dataKey.fill(0);
  return new ObjectCipher(encodeHeader(draft), params, contentKey);
}

/** Authenticates a header and recovers the object's content key. */
export function openObjectHeader(ring: KeyRing, headerBytes: Uint8Array): ObjectCipher {
  const header = decodeHeader(headerBytes);
  const raw = Buffer.from(headerBytes.subarray(0, HEADER_SIZE));
  const keys = typeof ring === 'function' ? ring(header.keyId) : (ring.keyId.equals(header.keyId) ? ring : undefined);
  if (!keys) throw new IntegrityError('KEY_ID_MISMATCH', `object was sealed with another master key (key id ${header.keyId.toString('hex')})`);
  let dataKey: Uint8Array;
  try {
    dataKey = xchacha20poly1305(keys.kek, header.wrapNonce, raw.subarray(0, WRAP_AAD_END)).decrypt(header.wrappedKey);
  } catch {
    throw new IntegrityError('KEY_UNWRAP_FAILED', 'wrapped data key failed authentication');
  }
  const { commitment, contentKey } = deriveObjectKeys(dataKey, raw.subarray(0, COMMITMENT_OFFSET));
  dataKey.fill(0);
  if (!timingSafeEqual(commitment, header.commitment)) throw new IntegrityError('COMMITMENT_MISMATCH', 'header does not commit to its data key');
  return new ObjectCipher(raw, { cipher: header.cipher, chunkSize: header.chunkSize }, contentKey);
}
