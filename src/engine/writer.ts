/**
 * Streaming encrypted upload. Plaintext is sealed serially as it arrives; the ciphertext collects
 * into parts of partSize. With the native AEAD addon (native-bindings/aead), write() copies the
 * plaintext to where its ciphertext goes in the part buffer and returns; runs of whole chunks are
 * sealed there in place on the libuv threadpool, one run at a time, so the event loop serves other
 * work (the next FUSE requests) meanwhile. Data lent to the writer (./lease.ts: the fuse3 binding's
 * receive blocks) is not copied: its whole chunks are sealed from it into the part buffers, and the
 * lease is released once they are. At most STAGE_LIMIT bytes wait to be sealed per writer.
 * Without the addon, node:crypto seals on the event loop. An object that fits in one part is stored with one PutObject at close;
 * otherwise a multipart upload starts when the first part is full, with at most uploadConcurrency
 * parts in flight (write() waits for a slot), so memory stays near (concurrency + 1) * partSize.
 * Any failure aborts the multipart upload: nothing partial ever becomes visible.
 */
import { nativeChunkRunPort } from '../../native-bindings/aead/index.js';
import { HEADER_SIZE, newObjectCipher, ObjectSealer, TAG_SIZE, type ChunkRunPort, type ObjectCipher } from '../format/index.js';
import { attributesMetadata } from './attributes.js';
import { takeLease } from './lease.js';
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

/** Plaintext staged in the part buffers and not sealed yet: at most about this much per writer. */
const STAGE_LIMIT = 2 * 1024 * 1024;
/** Plaintext per run: parts fill and go while the next run is sealed. */
const RUN_BYTES = 1024 * 1024;

/** Lent plaintext: chunks first..first+n-1, whole, read from `src` (not copied) when sealed. */
interface Lent {
  first: number;
  n: number;
  src: Uint8Array;
  readonly release: () => void;
}

/** Lent runs gather up to this much plaintext (several leases) per sealing call. */
const LENT_RUN_BYTES = 2 * 1024 * 1024;
/** The addon takes at most 32 source pieces per call. */
const LENT_RUN_PIECES = 16;

/**
 * The run path's state. Plaintext is copied straight to where its ciphertext goes in the part
 * buffers (chunk i at HEADER_SIZE + i * (chunkSize + TAG_SIZE), room left for its tag) and sealed
 * there in place, one run at a time, while later writes are staged behind it. Chunks of lent data
 * are sealed from the lent buffers into the same place instead.
 */
interface Runs {
  readonly cipher: ObjectCipher;
  readonly port: ChunkRunPort;
  /** Plaintext bytes staged so far; chunks sealed so far (never the last one before close). */
  staged: number;
  sealed: number;
  /** The run being sealed; it never rejects (a failure goes to fail()). */
  job: Promise<void> | null;
  /** Part buffers not uploaded yet; the first one holds ciphertext offsets from windowStart. */
  readonly window: Buffer[];
  windowStart: number;
  /** Lent chunks not sealed yet, in chunk order (chunks between them are staged in place). */
  readonly lent: Lent[];
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
      this.runs = { cipher, port, staged: 0, sealed: 0, job: null, window: [], windowStart: 0, lent: [] };
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
      if (this.runs) await this.finishRuns();
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
    // A lease is taken for one slice's worth (FUSE writes are at most 1 MiB).
    let release = this.runs && data.length <= SEAL_SLICE ? takeLease(data) : null;
    try {
      for (let pos = 0; pos < data.length; pos += SEAL_SLICE) {
        const slice = data.subarray(pos, Math.min(data.length, pos + SEAL_SLICE));
        if (this.runs) {
          const r = release;
          release = null;
          await this.stage(slice, r);
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
      release?.();
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
   * The run path: copies `data` to its place in the part buffers (allocating them as needed), lets
   * the sealer take the chunks it completes, and sends parts already sealed whole. Waits first while
   * more than STAGE_LIMIT bytes wait to be sealed. `data` is not referenced once this resolves,
   * unless it is lent (`release`, called exactly once by the writer): then its whole chunks are
   * sealed from it, if it starts on a chunk boundary, and only a partial last chunk is copied.
   */
  private async stage(data: Uint8Array, release: (() => void) | null): Promise<void> {
    const r = this.runs!;
    const size = r.cipher.chunkSize;
    let pos = 0;
    try {
      await this.startRuns();
      while (r.job && r.staged - r.sealed * size > STAGE_LIMIT) await r.job;
      await this.throwIfFailed();
      if (release && r.staged % size === 0 && data.length >= size) {
        const whole = Math.floor(data.length / size) * size;
        const first = r.staged / size;
        // The part buffers its ciphertext goes to (tags included).
        await this.room(HEADER_SIZE + (first + whole / size) * (size + TAG_SIZE));
        await this.throwIfFailed();
        r.lent.push({ first, n: whole / size, src: data.subarray(0, whole), release });
        release = null;
        r.staged += whole;
        pos = whole;
      }
      await this.copyIn(data, pos);
    } finally {
      release?.(); // copied (or failed): nothing reads it any more
    }
    this.pump();
    await this.sendSealed();
  }

  /** Copies data[pos..] to its place in the part buffers (staged: sealed in place later). */
  private async copyIn(data: Uint8Array, pos: number): Promise<void> {
    const r = this.runs!;
    const size = r.cipher.chunkSize;
    while (pos < data.length) {
      const n = Math.min(size - (r.staged % size), data.length - pos);
      const off = this.cipherOffset(r.staged);
      await this.room(off + n);
      let from = pos;
      for (const view of this.views(off, off + n)) {
        view.set(data.subarray(from, from + view.length));
        from += view.length;
      }
      r.staged += n;
      pos += n;
    }
  }

  /** The header, at the start of the first part. */
  private async startRuns(): Promise<void> {
    const r = this.runs!;
    if (r.window.length > 0 || r.windowStart > 0) return;
    await this.room(HEADER_SIZE);
    r.cipher.header.copy(r.window[0]!, 0);
  }

  /** Starts sealing the chunks staged and known not to be the last, unless a run is in flight. */
  private pump(): void {
    const r = this.runs!;
    if (r.job || this.failure !== null) return;
    const size = r.cipher.chunkSize;
    const sealable = r.staged > 0 ? Math.floor((r.staged - 1) / size) : 0;
    if (sealable <= r.sealed) return;
    const first = r.sealed;
    let n: number;
    let src: Uint8Array[] | null = null;
    if (r.lent[0]?.first === first) {
      // Lent chunks: from consecutive leases, as far as they are sealable.
      src = [];
      n = 0;
      for (const l of r.lent) {
        if (l.first !== first + n || src.length === LENT_RUN_PIECES || n * size >= LENT_RUN_BYTES) break;
        const k = Math.min(l.n, sealable - first - n);
        if (k <= 0) break;
        src.push(k === l.n ? l.src : l.src.subarray(0, k * size));
        n += k;
      }
    } else {
      // Staged chunks, up to the next lent ones.
      const before = r.lent[0] ? r.lent[0].first : Infinity;
      n = Math.min(sealable - first, Math.max(1, Math.floor(RUN_BYTES / size)), before - first);
    }
    const from = HEADER_SIZE + first * (size + TAG_SIZE);
    let job: Promise<void>;
    try {
      job = r.cipher.sealRun(r.port, first, false, src, this.views(from, from + n * (size + TAG_SIZE)));
    } catch (err) {
      job = Promise.reject(err);
    }
    const lentRun = src !== null;
    r.job = job.then(
      () => {
        r.sealed += n;
        r.job = null;
        if (lentRun) this.consumeLent(n);
        this.pump();
      },
      (err: unknown) => {
        r.job = null;
        this.fail(err);
      },
    );
  }

  /** The first n lent chunks are sealed: leases used up are released. */
  private consumeLent(n: number): void {
    const r = this.runs!;
    const size = r.cipher.chunkSize;
    while (n > 0 && r.lent.length > 0) {
      const l = r.lent[0]!;
      const k = Math.min(n, l.n);
      l.first += k;
      l.n -= k;
      l.src = l.src.subarray(k * size);
      n -= k;
      if (l.n === 0) {
        r.lent.shift();
        l.release();
      }
    }
  }

  /** Uploads the parts sealed whole (data follows them: a sealed chunk is never the last before close). */
  private async sendSealed(): Promise<void> {
    const r = this.runs!;
    const partSize = this.ctx.partSize;
    const sealedEnd = HEADER_SIZE + r.sealed * (r.cipher.chunkSize + TAG_SIZE);
    while (r.window.length > 1 && r.windowStart + partSize <= sealedEnd) {
      const buf = r.window.shift()!;
      r.windowStart += partSize;
      await this.uploadPart(buf, buf);
    }
  }

  /** At close: waits for the runs, seals the last chunk, sends all but the last part (which becomes `part`). */
  private async finishRuns(): Promise<void> {
    const r = this.runs!;
    const size = r.cipher.chunkSize;
    await this.startRuns();
    while (r.job) await r.job;
    await this.throwIfFailed();
    const last = r.staged - r.sealed * size;
    const from = HEADER_SIZE + r.sealed * (size + TAG_SIZE);
    const end = from + last + TAG_SIZE;
    await this.room(end);
    const dst = this.views(from, end);
    // The last chunk is staged, or (whole) still in its lease.
    const lent = r.lent[0]?.first === r.sealed ? r.lent[0] : null;
    const src = lent ? [lent.src] : null;
    if (last < SYNC_RUN_BELOW) r.cipher.sealRunSync(r.port, r.sealed, true, src, dst);
    else {
      const job = r.cipher.sealRun(r.port, r.sealed, true, src, dst);
      // A failure is handled by close(); the lease goes back once nothing reads it.
      r.job = job.then(() => {}, () => {});
      try {
        await job;
      } finally {
        r.job = null;
      }
    }
    if (lent) this.consumeLent(1);
    r.sealed++;
    const partSize = this.ctx.partSize;
    while (r.window.length > 1) {
      const buf = r.window.shift()!;
      r.windowStart += partSize;
      await this.uploadPart(buf, buf);
    }
    this.part = r.window.shift()!;
    this.filled = end - r.windowStart;
  }

  /** Ciphertext offset of plaintext byte `p`. */
  private cipherOffset(p: number): number {
    const size = this.runs!.cipher.chunkSize;
    const i = Math.floor(p / size);
    return HEADER_SIZE + i * (size + TAG_SIZE) + (p - i * size);
  }

  /** Views of the window's part buffers covering ciphertext offsets [from, to). */
  private views(from: number, to: number): Buffer[] {
    const r = this.runs!;
    const partSize = this.ctx.partSize;
    const out: Buffer[] = [];
    for (let off = from; off < to;) {
      const k = Math.floor((off - r.windowStart) / partSize);
      const local = off - r.windowStart - k * partSize;
      const n = Math.min(partSize - local, to - off);
      out.push(r.window[k]!.subarray(local, local + n));
      off += n;
    }
    return out;
  }

  /**
   * Part buffers up to ciphertext offset `end`. Before taking another one it waits for an upload
   * slot, so at most uploadConcurrency + 1 part buffers exist, as on the synchronous path (unless one
   * chunk spans more parts than that: chunk size > part size).
   */
  private async room(end: number): Promise<void> {
    const r = this.runs!;
    const partSize = this.ctx.partSize;
    while (r.windowStart + r.window.length * partSize < end) {
      while (this.inflight.size > 0 && this.inflight.size + r.window.length > this.ctx.uploadConcurrency) await Promise.race(this.inflight);
      await this.throwIfFailed();
      r.window.push(this.spare.pop() ?? this.pool.take(partSize) ?? Buffer.allocUnsafe(partSize));
    }
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
    if (this.runs) {
      this.runs.window.length = 0;
      // Leases go back once the run in flight (which may read one) has settled.
      const lent = this.runs.lent.splice(0);
      const free = () => lent.forEach((l) => l.release());
      if (this.runs.job) void this.runs.job.then(free, free);
      else free();
    }
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
