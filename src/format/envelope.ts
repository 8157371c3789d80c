/**
 * Envelope encryption of one object version: a fresh data key wrapped under the master key's KEK,
 * a header that commits to that data key, and the per-chunk AEAD bound to the header's immutable
 * fields and commitment (not to the wrap fields, so that rewrapHeader can move an object to another
 * master key without touching its chunks).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import {
  COMMITMENT_OFFSET, decodeHeader, encodeHeader, FORMAT_VERSION, HEADER_SIZE, IMMUTABLE_END, isValidChunkSize,
  WRAP_AAD_END, WRAP_NONCE_SIZE, type CipherName, type ObjectHeader,
} from './header.js';
import { deriveObjectKeys, type DerivedKeys } from './kdf.js';
import { openChunk, sealChunk, sealChunkParts, type ChunkRunPort } from './chunk.js';
import { IntegrityError } from './errors.js';
import { TAG_SIZE } from './layout.js';

const DATA_KEY_SIZE = 32;
/** How many neighbouring indexes a failed chunk is tried at, to tell reordering from tampering. */
const REORDER_SEARCH_RADIUS = 64;

export interface ObjectParams {
  cipher: CipherName;
  chunkSize: number;
}

/** Finds the derived keys for a key id (several during key rotation). */
export type KeyRing = DerivedKeys | ((keyId: Buffer) => DerivedKeys | undefined);

/** Pieces one openChunkPieces call hands the port (the AEAD addon takes up to 32 segments). */
const MAX_OPEN_PIECES = 30;

/** Seals and opens the chunks of one object version. Holds the content key, never the master key. */
export class ObjectCipher {
  readonly cipher: CipherName;
  readonly chunkSize: number;
  private readonly aadMiddle: Buffer;
  private readonly aadFinal: Buffer;

  constructor(readonly header: Buffer, params: ObjectParams, private readonly contentKey: Buffer) {
    this.cipher = params.cipher;
    this.chunkSize = params.chunkSize;
    // AAD = immutable header fields || commitment || final flag (45 bytes): binds every chunk to this
    // object version's parameters and data key, and marks the end. The wrap fields are left out.
    this.aadMiddle = chunkAad(header, 0);
    this.aadFinal = chunkAad(header, 1);
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

  /**
   * Seals chunks index, index + 1, ... from `src` into `dst` through `port` (ChunkRunPort: off the
   * caller's thread). Same bytes as sealChunkParts chunk by chunk; the content key goes to the port only.
   */
  sealRun(port: ChunkRunPort, index: number, final: boolean, src: readonly Uint8Array[] | null, dst: readonly Uint8Array[]): Promise<void> {
    return port.sealRun(this.cipher, this.contentKey, this.aadMiddle, this.aadFinal, index, this.chunkSize, final, src, dst);
  }

  /** sealRun on the caller's thread. */
  sealRunSync(port: ChunkRunPort, index: number, final: boolean, src: readonly Uint8Array[] | null, dst: readonly Uint8Array[]): void {
    port.sealRunSync(this.cipher, this.contentKey, this.aadMiddle, this.aadFinal, index, this.chunkSize, final, src, dst);
  }

  /** Opens chunk `index` of an object that has `chunkTotal` chunks; throws a classified IntegrityError. */
  openChunk(index: number, chunkTotal: number, sealed: Uint8Array): Buffer {
    const final = index === chunkTotal - 1;
    const plain = this.tryOpen(index, final, sealed);
    if (plain) return plain;
    throw this.classifyFailure(index, final, sealed);
  }

  /**
   * openChunk for a sealed chunk in pieces (views as they arrived), decrypted by `port` into a new
   * buffer without joining the pieces first. Same result and same classified errors as openChunk.
   */
  openChunkPieces(port: ChunkRunPort, index: number, chunkTotal: number, pieces: readonly Buffer[], sealedLength: number): Buffer {
    const final = index === chunkTotal - 1;
    const plain = Buffer.allocUnsafe(Math.max(0, sealedLength - TAG_SIZE));
    // The port takes a bounded number of pieces (TLS records are 16 KiB; chunks may be 16 MiB).
    const src = pieces.length > MAX_OPEN_PIECES ? [Buffer.concat(pieces, sealedLength)] : pieces;
    let failed: number;
    try {
      failed = port.openRunSync(this.cipher, this.contentKey, this.aadMiddle, this.aadFinal, index, this.chunkSize, final, src, [plain]);
    } catch {
      failed = index; // a length the port refuses (a short chunk where a whole one belongs): classified below
    }
    if (failed === -1 && sealedLength >= TAG_SIZE) return plain;
    return this.openChunk(index, chunkTotal, Buffer.concat(pieces, sealedLength)); // classifies (throws)
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
  const { commitment, contentKey } = deriveObjectKeys(dataKey, prefix.subarray(0, IMMUTABLE_END));
  draft.commitment = commitment;
  dataKey.fill(0);
  return new ObjectCipher(encodeHeader(draft), params, contentKey);
}

/** Authenticates a header and recovers the object's content key. */
export function openObjectHeader(ring: KeyRing, headerBytes: Uint8Array): ObjectCipher {
  const { raw, header, dataKey } = unwrapDataKey(ring, headerBytes);
  const { commitment, contentKey } = deriveObjectKeys(dataKey, raw.subarray(0, IMMUTABLE_END));
  dataKey.fill(0);
  if (!timingSafeEqual(commitment, header.commitment)) throw new IntegrityError('COMMITMENT_MISMATCH', 'header does not commit to its data key');
  return new ObjectCipher(raw, { cipher: header.cipher, chunkSize: header.chunkSize }, contentKey);
}

/** Key id (16 bytes) named by a header, after the header's structural checks. */
export function headerKeyId(headerBytes: Uint8Array): Buffer {
  return decodeHeader(headerBytes).keyId;
}

/**
 * Key rotation: the same object version's header with its data key wrapped under `to` instead
 * (new key id, fresh wrap nonce). The header is fully authenticated first (unwrap and commitment).
 * The immutable fields and the commitment are unchanged, so every chunk of the object stays valid
 * behind the new header: only these 132 bytes need rewriting.
 */
export function rewrapHeader(ring: KeyRing, headerBytes: Uint8Array, to: DerivedKeys, rand: (n: number) => Buffer = randomBytes): Buffer {
  const { raw, header, dataKey } = unwrapDataKey(ring, headerBytes);
  try {
    const { commitment } = deriveObjectKeys(dataKey, raw.subarray(0, IMMUTABLE_END));
    if (!timingSafeEqual(commitment, header.commitment)) throw new IntegrityError('COMMITMENT_MISMATCH', 'header does not commit to its data key');
    const next: ObjectHeader = { ...header, keyId: Buffer.from(to.keyId), wrapNonce: rand(WRAP_NONCE_SIZE), wrappedKey: Buffer.alloc(48) };
    const prefix = encodeHeader(next);
    next.wrappedKey = Buffer.from(xchacha20poly1305(to.kek, next.wrapNonce, prefix.subarray(0, WRAP_AAD_END)).encrypt(dataKey));
    return encodeHeader(next);
  } finally {
    dataKey.fill(0);
  }
}

function unwrapDataKey(ring: KeyRing, headerBytes: Uint8Array): { raw: Buffer; header: ObjectHeader; dataKey: Uint8Array } {
  const header = decodeHeader(headerBytes);
  const raw = Buffer.from(headerBytes.subarray(0, HEADER_SIZE));
  const keys = typeof ring === 'function' ? ring(header.keyId) : (ring.keyId.equals(header.keyId) ? ring : undefined);
  if (!keys) throw new IntegrityError('KEY_ID_MISMATCH', `object was sealed with another master key (key id ${header.keyId.toString('hex')})`);
  try {
    const dataKey = xchacha20poly1305(keys.kek, header.wrapNonce, raw.subarray(0, WRAP_AAD_END)).decrypt(header.wrappedKey);
    return { raw, header, dataKey };
  } catch {
    throw new IntegrityError('KEY_UNWRAP_FAILED', 'wrapped data key failed authentication');
  }
}

/** Chunk AAD: header[0..12) || header[100..132) || final flag. */
export function chunkAad(header: Uint8Array, finalFlag: 0 | 1): Buffer {
  return Buffer.concat([header.subarray(0, IMMUTABLE_END), header.subarray(COMMITMENT_OFFSET, HEADER_SIZE), Buffer.from([finalFlag])]);
}
