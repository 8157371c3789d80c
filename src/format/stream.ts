/**
 * Incremental sealing and opening of a whole object, as pure state machines over byte pushes.
 * The engine feeds them from the network; tests and small objects feed them whole buffers.
 */
import type { DerivedKeys } from './kdf.js';
import { newObjectCipher, openObjectHeader, type KeyRing, type ObjectCipher, type ObjectParams } from './envelope.js';
import { HEADER_SIZE } from './header.js';
import { chunkCount, plaintextSize, TAG_SIZE } from './layout.js';
import { IntegrityError } from './errors.js';

/** Turns plaintext pushes into ciphertext: header first, then sealed chunks in order. */
export class ObjectSealer {
  private readonly pending: Buffer;
  private pendingLen = 0;
  private index = 0;
  private headerEmitted = false;
  private finished = false;
  plainBytes = 0;

  constructor(readonly objectCipher: ObjectCipher) {
    this.pending = Buffer.alloc(objectCipher.chunkSize);
  }

  /**
   * Returns ciphertext ready to send, as pieces (chunk bodies and tags) to be concatenated in order.
   * A full chunk is held back until we know whether it is the final one.
   */
  push(data: Uint8Array): Buffer[] {
    if (this.finished) throw new Error('sealer already finished');
    const out = this.takeHeader();
    const size = this.objectCipher.chunkSize;
    let pos = 0;
    while (pos < data.length) {
      if (this.pendingLen === size) {
        out.push(...this.objectCipher.sealChunkParts(this.index++, false, this.pending));
        this.pendingLen = 0;
      }
      if (this.pendingLen === 0 && data.length - pos > size) {
        // More data follows this whole chunk, so it is not final: seal it in place without copying.
        out.push(...this.objectCipher.sealChunkParts(this.index++, false, data.subarray(pos, pos + size)));
        pos += size;
        continue;
      }
      const n = Math.min(size - this.pendingLen, data.length - pos);
      this.pending.set(data.subarray(pos, pos + n), this.pendingLen);
      this.pendingLen += n;
      pos += n;
    }
    this.plainBytes += data.length;
    return out;
  }

  /** Seals the last chunk (possibly empty, for an empty object). */
  finish(): Buffer[] {
    if (this.finished) throw new Error('sealer already finished');
    this.finished = true;
    const out = this.takeHeader();
    out.push(...this.objectCipher.sealChunkParts(this.index++, true, this.pending.subarray(0, this.pendingLen)));
    this.pending.fill(0);
    return out;
  }

  private takeHeader(): Buffer[] {
    if (this.headerEmitted) return [];
    this.headerEmitted = true;
    return [this.objectCipher.header];
  }
}

/**
 * Turns ciphertext pushes into verified plaintext. Holds back one sealed chunk, because only the
 * end of the stream tells which chunk is final.
 */
export class ObjectOpener {
  private cipher: ObjectCipher | null = null;
  private buf: Buffer = Buffer.alloc(0);
  private index = 0;
  private done = false;

  constructor(private readonly ring: KeyRing) {}

  push(data: Uint8Array): Buffer[] {
    if (this.done) throw new Error('opener already finished');
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : Buffer.from(data);
    const out: Buffer[] = [];
    if (!this.cipher) {
      if (this.buf.length < HEADER_SIZE) return out;
      this.cipher = openObjectHeader(this.ring, this.buf.subarray(0, HEADER_SIZE));
      this.buf = this.buf.subarray(HEADER_SIZE);
    }
    const sealedSize = this.cipher.chunkSize + TAG_SIZE;
    // Strictly more than one chunk buffered: the first one cannot be the final chunk.
    while (this.buf.length > sealedSize) {
      out.push(this.cipher.openChunk(this.index, Number.MAX_SAFE_INTEGER, this.buf.subarray(0, sealedSize)));
      this.index++;
      this.buf = this.buf.subarray(sealedSize);
    }
    return out;
  }

  finish(): Buffer[] {
    if (this.done) throw new Error('opener already finished');
    this.done = true;
    if (!this.cipher) throw new IntegrityError('HEADER_TRUNCATED', 'object ends inside its header');
    if (this.buf.length < TAG_SIZE) throw new IntegrityError('INVALID_SIZE', 'object ends inside a chunk tag');
    // A non-final chunk opened fine, so these 16 bytes are a chunk cut short: an empty chunk only exists as the only chunk.
    if (this.buf.length === TAG_SIZE && this.index > 0) throw new IntegrityError('INVALID_SIZE', 'object ends with an empty chunk after a full chunk');
    return [this.cipher.openChunk(this.index, this.index + 1, this.buf)];
  }
}

export function encryptBuffer(keys: DerivedKeys, params: ObjectParams, plaintext: Uint8Array): Buffer {
  const sealer = new ObjectSealer(newObjectCipher(keys, params));
  return Buffer.concat([...sealer.push(plaintext), ...sealer.finish()]);
}

export function decryptBuffer(ring: KeyRing, ciphertext: Uint8Array): Buffer {
  const opener = new ObjectOpener(ring);
  const parts = [...opener.push(ciphertext), ...opener.finish()];
  return Buffer.concat(parts);
}

/** Plaintext size of a stored object, from its length alone. */
export function storedPlaintextSize(cipherSize: number, chunkSize: number): number {
  const size = plaintextSize(cipherSize, chunkSize);
  if (size === null) throw new IntegrityError('INVALID_SIZE', `no object can be ${cipherSize} bytes long with chunk size ${chunkSize}`);
  return size;
}

export { chunkCount };
