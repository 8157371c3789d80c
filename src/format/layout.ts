/**
 * Plaintext <-> ciphertext offset maths. Pure; no I/O.
 *
 * Object = header | chunk 0 | chunk 1 | ... | chunk n-1
 * Every chunk but the last carries exactly `chunkSize` plaintext bytes plus a TAG_SIZE tag.
 * The last chunk carries 1..chunkSize bytes, or 0 bytes only when the whole object is empty.
 */
import { HEADER_SIZE } from './header.js';

export const TAG_SIZE = 16;

export interface ChunkSpan {
  first: number;        // index of the first chunk touched
  last: number;         // index of the last chunk touched (inclusive)
}

export interface ByteRange {
  start: number;
  endExclusive: number;
}

/** Number of chunks an object of `plainSize` bytes is sealed into (an empty object has one empty chunk). */
export function chunkCount(plainSize: number, chunkSize: number): number {
  return plainSize === 0 ? 1 : Math.ceil(plainSize / chunkSize);
}

export function ciphertextSize(plainSize: number, chunkSize: number): number {
  return HEADER_SIZE + plainSize + chunkCount(plainSize, chunkSize) * TAG_SIZE;
}

/** Inverse of ciphertextSize; null when no object can have this many bytes. */
export function plaintextSize(cipherSize: number, chunkSize: number): number | null {
  if (!Number.isSafeInteger(cipherSize)) return null;
  const body = cipherSize - HEADER_SIZE;
  if (body < TAG_SIZE) return null;
  const sealedChunk = chunkSize + TAG_SIZE;
  const fullChunks = Math.floor(body / sealedChunk);
  const rest = body - fullChunks * sealedChunk;
  if (rest === 0) return fullChunks * chunkSize;
  // An empty last chunk only exists for the empty object; a partial tag never exists.
  if (rest < TAG_SIZE || (rest === TAG_SIZE && fullChunks > 0)) return null;
  return fullChunks * chunkSize + rest - TAG_SIZE;
}

/** Plaintext bytes held by chunk `index`. */
export function chunkPlainLength(index: number, plainSize: number, chunkSize: number): number {
  const start = index * chunkSize;
  return Math.max(0, Math.min(chunkSize, plainSize - start));
}

/** Chunks covering plaintext [start, endExclusive), clamped to the object; null when the range is empty. */
export function chunksForRange(start: number, endExclusive: number, plainSize: number, chunkSize: number): ChunkSpan | null {
  const end = Math.min(endExclusive, plainSize);
  if (start < 0 || start >= end) return null;
  return { first: Math.floor(start / chunkSize), last: Math.floor((end - 1) / chunkSize) };
}

/** Ciphertext bytes holding chunks first..last (inclusive). */
export function ciphertextRangeOfChunks(span: ChunkSpan, plainSize: number, chunkSize: number): ByteRange {
  const sealedChunk = chunkSize + TAG_SIZE;
  const start = HEADER_SIZE + span.first * sealedChunk;
  const lastStart = HEADER_SIZE + span.last * sealedChunk;
  return { start, endExclusive: lastStart + chunkPlainLength(span.last, plainSize, chunkSize) + TAG_SIZE };
}

/** Offset of chunk `index` inside the ciphertext. */
export function chunkCiphertextOffset(index: number, chunkSize: number): number {
  return HEADER_SIZE + index * (chunkSize + TAG_SIZE);
}
