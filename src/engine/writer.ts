/**
 * Streaming encrypted upload. Plaintext is sealed serially as it arrives; the ciphertext collects
 * into parts of partSize. With the native AEAD addon (native-bindings/aead), each write's whole
 * chunks are sealed as one run on the libuv threadpool straight into the part buffer, so the event
 * loop serves other work (the next FUSE requests) meanwhile; one run is in flight per writer, and
 * write() resolves once its data is sealed. Without the addon, node:crypto seals on the event loop. An object that fits in one part is stored with one PutObject at close;
 * otherwise a multipart upload starts when the first part is full, with at most uploadConcurrency
 * parts in flight (write() waits for a slot), so memory stays near (concurrency + 1) * partSize.
 * Any failure aborts the multipart upload: nothing partial ever becomes visible.
 */
import { nativeChunkRunPort } from '../../native-bindings/aead/index.js';
import { newObjectCipher, ObjectSealer, sealedRunLength, type ChunkRunPort, type ObjectCipher } from '../format/index.js';
import { attributesMetadata } from './attributes.js';
import type { EngineContext } from './context.js';
import { EngineError } from './errors.js';
import type { ObjectWriter, WriteOptions } from './types.js';

/** Plaintext is fed to the sealer in slices this big, so one huge write() cannot balloon memory. */
const SEAL_SLICE = 1024 * 1024;
const CONTENT_TYPE = 'application/octet-stream';
/** S3's limit on parts per multipart upload. */
const MAX_PARTS = 10_000;
/** Runs with less plaintext are sealed on the event loop (still by the addon): a thread hop costs more. */
const SYNC_RUN_BELOW = 64 * 1024;
const EMPTY = new Uint8Array(0);

let runPort: ChunkRunPort | null | undefined;

/**
 * How writers created from now on seal: through `port` (off the event loop), or with null through
 * node:crypto on it. Returns the previous choice. Default: the native addon when it is built and
 * S3CRYPTFS_NATIVE_AEAD is not 0. For tests and benchmarks.
 */
export function setChunkRunPort(port: ChunkRunPort | null): ChunkRunPort | null {
  const prev = currentRunPort();
  runPort = port;
  return prev;
}

function currentRunPort(): ChunkRunPort | null {
  if (runPort === undefined) runPort = nativeChunkRunPort();
  return runPort;
}

/** The run path's state: the object's cipher, and the partial (or held-back full) last chunk. */
interface Runs {
  readonly cipher: ObjectCipher;
  readonly port: ChunkRunPort;
  readonly pending: Buffer;
  pendingLen: number;
  index: number;
  headerSent: boolean;
}

type State = 'open' | 'closing' | 'closed' | 'failed';

/**
 * Part buffers of finished writers, for reuse by later ones: a fresh multi-MiB buffer per object was
 * the main source of GC work (external memory pressure) for a stream of small PUTs. They only ever
 * hold ciphertext. Capped, because whatever a pool holds stays resident while the process is idle.
 */
export class PartPool {
  private readonly buffers: Buffer[] = [];
  private bytes = 0;

  constructor(readonly maxBytes: number) {}

  get pooledBytes(): number {
    return this.bytes;
  }

  take(size: number): Buffer | undefined {
    const i = this.buffers.findIndex((b) => b.length === size);
    if (i < 0) return undefined;
    const [buf] = this.buffers.splice(i, 1);
    this.bytes -= buf!.length;
    return buf;
  }

  give(buf: Buffer): void {
    if (buf.length > this.maxBytes) return;
    // Oldest out first, so buffers of an unusual size (a conditional PUT's) do not crowd out the rest.
    while (this.bytes + buf.length > this.maxBytes) this.bytes -= this.buffers.shift()!.length;
    this.buffers.push(buf);
    this.bytes += buf.length;
  }
}

export const DEFAULT_PART_POOL_BYTES = 64 * 1024 * 1024;
/** Used by every engine that has no pool of its own (EngineOptions.partPoolBytes), e.g. the gateway's. */
export const sharedPartPool = new PartPool(DEFAULT_PART_POOL_BYTES);

/**
 * Another object encoding (the AWS S3 Encryption Client format, src/engine/aws-cse/): the writer then
 * encrypts with `push`/`finish` instead of our chunk sealer, and adds `metadata` to the object's.
 */
export interface WriterCodec {
  push(data: Uint8Array): Buffer[];
  finish(): Buffer[];
  /** Extra object metadata; `complete` is true (with the final plaintext size) for a single PUT. */
  metadata(complete: boolean, plainBytes: number): Record<string, string>;
}

export class EngineWriter implements ObjectWriter {
  private readonly sealer: Pick<ObjectSealer, 'push' | 'finish'> | null;
  private readonly runs: Runs | null = null;
  private readonly metadata: Record<string, string> | undefined;
  /** The part being filled, and how much of it is. */
  private part: Buffer | null = null;
  private filled = 0;
  /** Part buffers whose upload finished, for reuse (at most uploadConcurrency + 1 exist at once). */
  private readonly spare: Buffer[] = [];
  private uploadId: string | null = null;
  private creating: Promise<string> | null = null;
  private nextPart = 1;
  private readonly parts: { partNumber: number; etag: string }[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private readonly cancel = new AbortController();
  private chain: Promise<void> = Promise.resolve();
  private state: State = 'open';
  private failure: unknown = null;
  private cleanup: Promise<void> | null = null;
  private readonly onAbortSignal: (() => void) | null = null;
  bytesWritten = 0;

  private get pool(): PartPool {
    return this.ctx.partPool ?? sharedPartPool;
  }

  constructor(
    private readonly ctx: EngineContext, readonly path: string, readonly key: string, private readonly opts: WriteOptions = {},
    private readonly codec?: WriterCodec,
  ) {
    const { config, keys } = ctx;
    const port = codec ? null : currentRunPort();
    if (port) {
      const cipher = newObjectCipher(keys, { cipher: config.cipher, chunkSize: config.chunkSize });
      this.sealer = null;
      this.runs = { cipher, port, pending: Buffer.alloc(cipher.chunkSize), pendingLen: 0, index: 0, headerSent: false };
    } else {
      this.sealer = codec ?? new ObjectSealer(newObjectCipher(keys, { cipher: config.cipher, chunkSize: config.chunkSize }));
    }
    this.metadata = opts.attributes ? attributesMetadata(ctx, key, opts.attributes) : undefined;
    const signal = opts.signal;
    if (signal) {
      if (signal.aborted) {
        this.fail(abortError(signal));
      } else {
        this.onAbortSignal = () => this.fail(abortError(signal));
        signal.addEventListener('abort', this.onAbortSignal, { once: true });
      }
    }
  }

  write(data: Uint8Array): Promise<void> {
    const run = this.chain.then(() => this.doWrite(data));
    this.chain = run.catch(() => {});
    return run;
  }

  async close(): Promise<{ etag: string; size: number }> {
    if (this.state === 'closing' || this.state === 'closed') throw new EngineError('CLOSED', `writer for "${this.path}" is already closed`);
    await this.chain;
    await this.throwIfFailed();
    this.state = 'closing';
    try {
      if (this.runs) await this.sealRun(EMPTY, true);
      else await this.take(this.sealer!.finish());
      let etag: string;
      if (this.uploadId === null) {
        etag = await this.putSingle();
        // The request settled (retries included), so nothing reads the buffer any more.
        if (this.part) this.spare.push(this.part);
        this.part = null;
      } else {
        await this.uploadPart(this.part!.subarray(0, this.filled), this.part!);
        this.part = null;
        await Promise.all(this.inflight);
        await this.throwIfFailed();
        const parts = [...this.parts].sort((x, y) => x.partNumber - y.partNumber);
        etag = (await this.ctx.store.completeMultipart(this.ctx.bucket, this.key, this.uploadId!, parts)).etag;
      }
      for (const buf of this.spare.splice(0)) this.pool.give(buf);
      this.state = 'closed';
      this.detachSignal();
      return { etag, size: this.bytesWritten };
    } catch (err) {
      this.fail(err);
      await this.throwIfFailed();
      throw err;
    }
  }

  async abort(): Promise<void> {
    if (this.state === 'closed') return;
    this.fail(new EngineError('ABORTED', `upload of "${this.path}" aborted`));
    await this.cleanup;
  }

  private async doWrite(data: Uint8Array): Promise<void> {
    if (this.state !== 'open' && this.state !== 'failed') throw new EngineError('CLOSED', `writer for "${this.path}" is closed`);
    await this.throwIfFailed();
    try {
      for (let pos = 0; pos < data.length; pos += SEAL_SLICE) {
        const slice = data.subarray(pos, Math.min(data.length, pos + SEAL_SLICE));
        if (this.runs) {
          await this.sealRun(slice, false);
          this.bytesWritten += slice.length;
          this.ctx.stats.bytesEncrypted += slice.length;
        } else {
          const sealed = this.sealer!.push(slice);
          this.bytesWritten += slice.length;
          this.ctx.stats.bytesEncrypted += slice.length;
          await this.take(sealed);
        }
        await this.throwIfFailed();
      }
    } catch (err) {
      // A write that stopped half-way leaves the object unusable: abort it.
      this.fail(err);
      await this.throwIfFailed();
      throw err;
    }
  }

  /**
   * Copies ciphertext into the current part. A full part is sent only once more data follows it,
   * so an object of exactly one part stays a single PUT.
   */
  private async take(pieces: Buffer[]): Promise<void> {
    const partSize = this.ctx.partSize;
    for (const piece of pieces) {
      let pos = 0;
      while (pos < piece.length) {
        if (this.part && this.filled === partSize) {
          const full = this.part;
          this.part = null;
          this.filled = 0;
          await this.uploadPart(full, full);
        }
        this.part ??= this.spare.pop() ?? this.pool.take(partSize) ?? Buffer.allocUnsafe(partSize);
        const n = piece.copy(this.part, this.filled, pos);
        this.filled += n;
        pos += n;
      }
    }
  }

  /**
   * The run path: seals the whole chunks that `data` completes (a full chunk is held back until more
   * data or close tells whether it is the last) as one run into the part buffer(s), then keeps the
   * rest as the pending chunk. `data` is not referenced once this resolves.
   */
  private async sealRun(data: Uint8Array, final: boolean): Promise<void> {
    const r = this.runs!;
    const size = r.cipher.chunkSize;
    if (!r.headerSent) {
      r.headerSent = true;
      await this.take([r.cipher.header]);
    }
    const total = r.pendingLen + data.length;
    const chunks = final ? Math.max(1, Math.ceil(total / size)) : total === 0 ? 0 : Math.floor((total - 1) / size);
    if (chunks > 0) {
      const plain = final ? total : chunks * size;
      const fromData = plain - r.pendingLen;
      const src = r.pendingLen > 0 ? [r.pending.subarray(0, r.pendingLen), data.subarray(0, fromData)] : [data.subarray(0, fromData)];
      const { dst, full } = await this.reserve(sealedRunLength(plain, size, final));
      if (plain < SYNC_RUN_BELOW) r.cipher.sealRunSync(r.port, r.index, final, src, dst);
      else await r.cipher.sealRun(r.port, r.index, final, src, dst);
      r.index += chunks;
      r.pendingLen = 0;
      data = data.subarray(fromData);
      await this.throwIfFailed();
      // Parts this run filled: sealed now, so they can go.
      for (const buf of full) await this.uploadPart(buf, buf);
    }
    r.pending.set(data, r.pendingLen);
    r.pendingLen += data.length;
    if (final) r.pending.fill(0);
  }

  /**
   * Room for `length` bytes of ciphertext in the part buffer(s), as the run's destination. A part
   * that was already full is sent first; parts the run will fill are returned in `full`, to be sent
   * once it is sealed. Before taking another buffer for the run's rest it waits for an upload slot,
   * so at most uploadConcurrency + 1 part buffers exist, as on the synchronous path (unless one
   * chunk spans more parts than that: chunk size > part size).
   */
  private async reserve(length: number): Promise<{ dst: Buffer[]; full: Buffer[] }> {
    const partSize = this.ctx.partSize;
    const dst: Buffer[] = [];
    const full: Buffer[] = [];
    while (length > 0) {
      if (this.part && this.filled === partSize) {
        const done = this.part;
        this.part = null;
        this.filled = 0;
        if (dst.length === 0) {
          await this.uploadPart(done, done);
        } else {
          full.push(done);
          while (this.inflight.size > 0 && this.inflight.size + full.length > this.ctx.uploadConcurrency) await Promise.race(this.inflight);
          await this.throwIfFailed();
        }
      }
      this.part ??= this.spare.pop() ?? this.pool.take(partSize) ?? Buffer.allocUnsafe(partSize);
      const n = Math.min(partSize - this.filled, length);
      dst.push(this.part.subarray(this.filled, this.filled + n));
      this.filled += n;
      length -= n;
    }
    return { dst, full };
  }

  private async putSingle(): Promise<string> {
    const body = this.part!.subarray(0, this.filled);
    const { etag } = await this.ctx.store.put(this.ctx.bucket, this.key, body, { metadata: this.objectMetadata(true), contentType: CONTENT_TYPE });
    this.ctx.stats.singlePutUploads++;
    this.ctx.stats.bytesUploaded += body.length;
    return etag;
  }

  /** Starts uploading one part; waits first while uploadConcurrency parts are in flight. */
  private async uploadPart(body: Buffer, buffer: Buffer): Promise<void> {
    const { store, bucket, stats } = this.ctx;
    if (this.uploadId === null) {
      this.creating ??= store.createMultipart(bucket, this.key, { metadata: this.objectMetadata(false), contentType: CONTENT_TYPE });
      this.uploadId = await this.creating;
      stats.multipartUploads++;
    }
    while (this.inflight.size >= this.ctx.uploadConcurrency) await Promise.race(this.inflight);
    await this.throwIfFailed();
    if (this.nextPart > MAX_PARTS) {
      const limit = (MAX_PARTS * this.ctx.partSize) / 1024 ** 3;
      throw new EngineError('TOO_LARGE', `"${this.path}" is larger than ${MAX_PARTS} parts of ${this.ctx.partSize} bytes (${limit.toFixed(0)} GiB): use a larger part size`);
    }
    const partNumber = this.nextPart++;
    const uploadId = this.uploadId;
    const upload = (async () => {
      stats.uploadsInFlight++;
      try {
        const etag = await store.uploadPart(bucket, this.key, uploadId, partNumber, body, { signal: this.cancel.signal });
        this.parts.push({ partNumber, etag });
        stats.partsUploaded++;
        stats.bytesUploaded += body.length;
        this.spare.push(buffer);
      } catch (err) {
        this.fail(err);
      } finally {
        stats.uploadsInFlight--;
      }
    })();
    this.inflight.add(upload);
    void upload.finally(() => this.inflight.delete(upload));
  }

  private objectMetadata(complete: boolean): Record<string, string> | undefined {
    if (!this.codec) return this.metadata;
    return { ...this.codec.metadata(complete, this.bytesWritten), ...this.metadata };
  }

  /** Records the first failure and starts the cleanup: cancel parts, abort the multipart upload. */
  private fail(err: unknown): void {
    if (this.failure !== null || this.state === 'closed') return;
    this.failure = err;
    this.state = 'failed';
    this.detachSignal();
    this.cancel.abort(err);
    this.part = null;
    this.spare.length = 0;
    this.cleanup = this.abortUpload();
  }

  private async abortUpload(): Promise<void> {
    const { store, bucket, stats } = this.ctx;
    await Promise.allSettled(this.inflight);
    const uploadId = this.uploadId ?? (this.creating ? await this.creating.catch(() => null) : null);
    if (uploadId === null) return;
    try {
      await store.abortMultipart(bucket, this.key, uploadId);
      stats.uploadsAborted++;
    } catch {
      // Best effort: a lifecycle rule or `s3cryptfs gc` has to reap it. Nothing was completed either way.
    }
  }

  private async throwIfFailed(): Promise<void> {
    if (this.failure === null) return;
    await this.cleanup;
    throw this.failure;
  }

  private detachSignal(): void {
    if (this.onAbortSignal) this.opts.signal?.removeEventListener('abort', this.onAbortSignal);
  }
}

function abortError(signal: AbortSignal): EngineError {
  return new EngineError('ABORTED', 'upload aborted', { cause: signal.reason });
}
