/**
 * The fixed-size object header. Pure encode/decode; no crypto here.
 *
 *  off len field
 *    0   4 magic "S3CF"
 *    4   1 format version (1)
 *    5   1 cipher id (1 = ChaCha20-Poly1305, 2 = AES-256-GCM)
 *    6   2 flags (reserved, must be 0)
 *    8   4 chunk size, big-endian
 *   12  16 key id of the master key
 *   28  24 XChaCha20 nonce of the key wrap
 *   52  48 wrapped data key (32 key + 16 tag)
 *  100  32 key commitment
 */
import { IntegrityError } from './errors.js';

export const MAGIC = Buffer.from('S3CF', 'ascii');
export const FORMAT_VERSION = 1;
export const HEADER_SIZE = 132;
export const KEY_ID_SIZE = 16;
export const WRAP_NONCE_SIZE = 24;
export const WRAPPED_KEY_SIZE = 48;
export const COMMITMENT_SIZE = 32;
/**
 * The fields that never change for an object version: magic, version, cipher id, flags, chunk size.
 * They salt the key commitment and content key and, with the commitment, form every chunk's AAD;
 * key id, wrap nonce and wrapped key (the wrap fields, bytes 12..100) are left out so that key
 * rotation can re-wrap the data key without touching the chunks (docs/format.md, section 3.4).
 */
export const IMMUTABLE_END = 12;
/** Bytes the key wrap authenticates: everything before the wrapped key. */
export const WRAP_AAD_END = 52;
/** Offset of the key commitment (the last field). */
export const COMMITMENT_OFFSET = 100;

export const MIN_CHUNK_SIZE = 4096;
export const MAX_CHUNK_SIZE = 16 * 1024 * 1024;

export type CipherName = 'chacha20-poly1305' | 'aes-256-gcm';
export const CIPHER_IDS: Record<CipherName, number> = { 'chacha20-poly1305': 1, 'aes-256-gcm': 2 };
const CIPHER_BY_ID = new Map<number, CipherName>(Object.entries(CIPHER_IDS).map(([n, id]) => [id, n as CipherName]));

export interface ObjectHeader {
  version: number;
  cipher: CipherName;
  chunkSize: number;
  keyId: Buffer;
  wrapNonce: Buffer;
  wrappedKey: Buffer;
  commitment: Buffer;
}

export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && n % 4096 === 0;
}

export function encodeHeader(h: ObjectHeader): Buffer {
  const out = Buffer.alloc(HEADER_SIZE);
  MAGIC.copy(out, 0);
  out[4] = h.version;
  out[5] = CIPHER_IDS[h.cipher];
  out.writeUInt16BE(0, 6);
  out.writeUInt32BE(h.chunkSize, 8);
  copyExact(h.keyId, out, 12, KEY_ID_SIZE);
  copyExact(h.wrapNonce, out, 28, WRAP_NONCE_SIZE);
  copyExact(h.wrappedKey, out, 52, WRAPPED_KEY_SIZE);
  copyExact(h.commitment, out, 100, COMMITMENT_SIZE);
  return out;
}

export function decodeHeader(bytes: Uint8Array): ObjectHeader {
  if (bytes.length < HEADER_SIZE) throw new IntegrityError('HEADER_TRUNCATED', `object is shorter than a header (${bytes.length} bytes)`);
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  if (!b.subarray(0, 4).equals(MAGIC)) throw new IntegrityError('BAD_MAGIC', 'not an s3cryptfs object (bad magic)');
  if (b[4] !== FORMAT_VERSION) throw new IntegrityError('UNSUPPORTED_VERSION', `unsupported format version ${b[4]}`);
  const cipher = CIPHER_BY_ID.get(b[5]);
  if (!cipher) throw new IntegrityError('UNKNOWN_CIPHER', `unknown cipher id ${b[5]}`);
  if (b.readUInt16BE(6) !== 0) throw new IntegrityError('BAD_FLAGS', 'reserved header flags are set');
  const chunkSize = b.readUInt32BE(8);
  if (!isValidChunkSize(chunkSize)) throw new IntegrityError('BAD_CHUNK_SIZE', `invalid chunk size ${chunkSize}`);
  return {
    version: b[4],
    cipher,
    chunkSize,
    keyId: Buffer.from(b.subarray(12, 28)),
    wrapNonce: Buffer.from(b.subarray(28, 52)),
    wrappedKey: Buffer.from(b.subarray(52, 100)),
    commitment: Buffer.from(b.subarray(100, 132)),
  };
}

function copyExact(src: Uint8Array, dst: Buffer, offset: number, len: number): void {
  if (src.length !== len) throw new RangeError(`header field at ${offset} must be ${len} bytes, got ${src.length}`);
  dst.set(src, offset);
}
