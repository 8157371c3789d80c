/**
 * The write path: one OpenFile per path with open handles, shared by all of them.
 *
 * Content is in one of three states:
 *  - object: exactly the stored object `base` (or empty when there is none); reads go to a shared
 *    engine reader (and so to the engine's chunk cache).
 *  - stream: written strictly sequentially from offset 0. Up to `streamBufferBytes` are buffered in
 *    memory (so small files become one PUT carrying their final attributes); past that an engine
 *    writer uploads as data arrives. Memory stays bounded.
 *  - spool: anything else. An encrypted local spool (see spool.ts) layered over the stored object,
 *    uploaded as a whole at flush.
 * A stream that sees a non-sequential write, a truncate or a read of written data is converted: a
 * buffered stream moves into a spool; one that already started uploading is committed first (the
 * object then holds the data written so far) and continues as a spool over it.
 *
 * flush()/fsync()/release() return once the object is durably stored; a failed upload is aborted by
 * the engine (nothing partial becomes visible) and rejects with the error (EIO for the caller).
 */
import { ciphertextSize } from '../format/layout.js';
import type { ObjectReader, ObjectWriter } from '../engine/types.js';
import { encodePosix, nowNs, type PosixMeta } from './attrs.js';
import type { FsEngine } from './engine-port.js';
import { FsError } from './errno.js';
import { Mutex } from './mutex.js';
import type { Spool, SpoolDir } from './spool.js';

export interface OpenFileDeps {
  engine: FsEngine;
  spools: SpoolDir;
  streamBufferBytes: number;
}

/** The committed object: what `base` reads come from. */
export interface BaseObject {
  etag: string;
  size: number;
}

type Mode = 'object' | 'stream' | 'spool';

export interface CommitResult {
  etag: string;
  size: number;
  meta: PosixMeta;
}

export class OpenFile {
  /** Handles referring to this file. */
  refs = 0;
  /** Set when the path was unlinked (or replaced) while open: nothing is uploaded any more. */
  unlinked = false;
  /**
   * Set when the last handle was released and the final upload is running. A closing file takes
   * no new handles or changes: path operations wait for `closed` and then work on what was stored.
   */
  closing = false;
  closed: Promise<void> = Promise.resolve();
  private mode: Mode;
  private _size: number;
  private dirtyData = false;
  private dirtyMeta = false;
  /** When the oldest attribute change not stored yet was made (bounds how long deferring may go on). */
  private metaSince: number | null = null;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private writer: ObjectWriter | null = null;
  /** Attributes the running writer was created with, and the setMeta() count at that time. */
  private writerMeta: PosixMeta | null = null;
  private writerMetaVersion = 0;
  private metaVersion = 0;
  private spool: Spool | null = null;
  private reader: ObjectReader | null = null;
  private readerFor: string | null = null;
  private readonly lock = new Mutex();

  constructor(
    private readonly deps: OpenFileDeps,
    public path: string,
    private base: BaseObject | null,
    public meta: PosixMeta,
    public foreign: Record<string, string>,
    isNew: boolean,
  ) {
    this._size = base?.size ?? 0;
    this.mode = isNew ? 'stream' : 'object';
    // A new file must come into existence at flush even if nothing is written.
    this.dirtyData = isNew;
  }

  get size(): number {
    return this._size;
  }

  get dirty(): boolean {
    return this.dirtyData || this.dirtyMeta;
  }

  /** True when the file has never been stored (a create not flushed yet). */
  get uncommitted(): boolean {
    return this.base === null;
  }

  get etag(): string | undefined {
    return this.base?.etag;
  }

  get state(): Mode {
    return this.mode;
  }

  async read(offset: number, length: number): Promise<Buffer> {
    const parts = await this.readParts(offset, length);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /** What read() returns, as parts in order (views of cached plaintext), for a caller that sends them without joining. */
  async readParts(offset: number, length: number): Promise<Buffer[]> {
    if (length <= 0 || offset >= this._size) return [];
    if (this.mode === 'object' && !this.lock.locked) return this.readObject(offset, length);
    return this.lock.run(async () => {
      if (offset >= this._size) return [];
      if (this.mode === 'stream') await this.leaveStream();
      if (this.mode === 'spool') return [await this.spool!.read(offset, length)];
      return this.readObject(offset, length);
    });
  }

  write(offset: number, data: Uint8Array): Promise<number> {
    return this.lock.run(async () => {
      if (this.mode === 'object' && this._size === 0 && offset === 0) {
        this.mode = 'stream';
        this.buffered = [];
        this.bufferedBytes = 0;
      }
      if (this.mode === 'stream' && offset !== this._size) await this.leaveStream();
      if (this.mode === 'object') await this.enterSpool();
      if (this.mode === 'stream') {
        await this.appendStream(data);
      } else {
        await this.spool!.write(offset, data);
      }
      this._size = Math.max(this._size, offset + data.length);
      this.dirtyData = true;
      const now = nowNs();
      this.meta = { ...this.meta, mtimeNs: now, ctimeNs: now };
      return data.length;
    });
  }

  truncate(size: number): Promise<void> {
    return this.lock.run(async () => {
      if (size === this._size) return;
      if (size === 0) {
        await this.dropContent();
        this.mode = 'stream';
      } else {
        if (this.mode === 'stream') await this.leaveStream();
        if (this.mode === 'object') await this.enterSpool();
        await this.spool!.truncate(size);
      }
      this._size = size;
      this.dirtyData = true;
      const now = nowNs();
      this.meta = { ...this.meta, mtimeNs: now, ctimeNs: now };
    });
  }

  /** Changes POSIX attributes; they are stored at the next flush. */
  setMeta(change: PosixMeta, since = Date.now()): Promise<void> {
    return this.lock.run(() => {
      this.meta = { ...this.meta, ...change, ctimeNs: change.ctimeNs ?? nowNs() };
      this.dirtyMeta = true;
      this.metaVersion++;
      this.metaSince ??= since;
    });
  }

  /** Only attributes wait to be stored (no data): a close may leave them to the caller's deferred store. */
  get metaOnlyDirty(): boolean {
    return this.dirtyMeta && !this.dirtyData && this.base !== null && !this.unlinked;
  }

  /** Takes an attribute-only change off the file (for the caller to store later); null when there is none. */
  takeMetaOnly(): Promise<{ meta: PosixMeta; since: number } | null> {
    return this.lock.run(() => {
      if (!this.metaOnlyDirty) return null;
      this.dirtyMeta = false;
      const since = this.metaSince ?? Date.now();
      this.metaSince = null;
      return { meta: this.meta, since };
    });
  }

  /**
   * Uploads pending data and attributes. Resolves once durable; null when nothing was pending.
   * With `deferEmptyCreate`, a file that was created and has had nothing written yet is not stored
   * as an empty object now but at the next flush/fsync/release: a shell's `> file` opens, dup2()s
   * and closes the descriptor (a FLUSH) before any data arrives, which would cost an extra PUT.
   */
  flush(opts: { deferEmptyCreate?: boolean } = {}): Promise<CommitResult | null> {
    return this.lock.run(() => {
      if (opts.deferEmptyCreate && this.base === null && this.mode === 'stream' && !this.writer && this.bufferedBytes === 0 && this.refs > 0) {
        return null;
      }
      return this.commit();
    });
  }

  /** Last handle closed: flush, then free the reader and the spool. */
  release(): Promise<CommitResult | null> {
    return this.lock.run(async () => {
      try {
        return await this.commit();
      } finally {
        await this.dropContent();
        this.closeReader();
      }
    });
  }

  /**
   * The path was unlinked or replaced while open: nothing is uploaded any more. Data not yet
   * uploaded stays readable through the open descriptors until they are closed (except for a large
   * file whose streaming upload had already started: that upload is aborted and its data is gone).
   */
  markUnlinked(): Promise<void> {
    return this.lock.run(async () => {
      this.unlinked = true;
      if (this.writer) {
        const w = this.writer;
        this.writer = null;
        this.writerMeta = null;
        await w.abort().catch(() => {});
        this.base = null;
        this.revertToObject();
      }
    });
  }

  /** The file was renamed: same content, new path and (after a server-side copy) a new version. */
  rebase(path: string, base: BaseObject | null): Promise<void> {
    return this.lock.run(() => {
      this.path = path;
      if (base) this.base = base;
      this.closeReader();
    });
  }

  // ---- internals (lock held) ----

  private attributes(): Record<string, string> {
    return encodePosix(this.meta, this.foreign);
  }

  private async readObject(offset: number, length: number): Promise<Buffer[]> {
    const base = this.base;
    if (!base || base.size === 0) return [];
    // Sequential readers are detected (reordered kernel readahead included) and streamed by the
    // engine reader's readahead: one reader per file, so each chunk is fetched and decrypted once.
    const reader = await this.getReader(base);
    const n = Math.min(length, base.size - offset);
    return reader.readParts ? reader.readParts(offset, n) : [await reader.read(offset, n)];
  }

  private async getReader(base: BaseObject): Promise<ObjectReader> {
    if (this.reader && this.readerFor === base.etag) return this.reader;
    this.closeReader();
    const known = { etag: base.etag, size: ciphertextSize(base.size, this.deps.engine.config.chunkSize) };
    const reader = await this.deps.engine.openReader(this.path, known);
    if (this.base?.etag !== base.etag) {
      reader.close();
      throw new FsError('EIO', `${this.path} changed while opening it`);
    }
    this.reader = reader;
    this.readerFor = base.etag;
    return reader;
  }

  private closeReader(): void {
    this.reader?.close();
    this.reader = null;
    this.readerFor = null;
  }

  private async appendStream(data: Uint8Array): Promise<void> {
    if (this.writer) {
      // The writer has sealed (copied) all of it when write() resolves, before FUSE gets its reply
      // and its buffer back: no copy needed (one less garbage buffer per write, see RSS).
      await this.writer.write(data);
      return;
    }
    const copy = Buffer.from(data); // kept past the reply: the caller's buffer belongs to FUSE
    this.buffered.push(copy);
    this.bufferedBytes += copy.length;
    if (this.bufferedBytes > this.deps.streamBufferBytes) {
      // A large file's stored mtime is the time its upload started: changing it at the end would
      // cost a server-side copy of the whole object.
      const writer = this.deps.engine.createWriter(this.path, { attributes: this.attributes() });
      this.writer = writer;
      this.writerMeta = { ...this.meta };
      this.writerMetaVersion = this.metaVersion;
      const pieces = this.buffered;
      this.buffered = [];
      this.bufferedBytes = 0;
      for (const piece of pieces) await writer.write(piece);
    }
  }

  /** stream -> spool (buffered data is copied) or -> object (a running upload is committed first). */
  private async leaveStream(): Promise<void> {
    if (this.mode !== 'stream') return;
    if (this.writer) {
      await this.commit();
      return; // now 'object'; a later write enters the spool over the committed object
    }
    const spool = await this.deps.spools.open(null, 0);
    let off = 0;
    for (const piece of this.buffered) {
      await spool.write(off, piece);
      off += piece.length;
    }
    this.buffered = [];
    this.bufferedBytes = 0;
    this.spool = spool;
    this.mode = 'spool';
  }

  /** object -> spool layered over the object (blocks are fetched only when touched). */
  private async enterSpool(): Promise<void> {
    const base = this.base;
    const spool = base && base.size > 0
      ? await this.deps.spools.open({ read: async (off, len) => (await this.getReader(this.base ?? base)).read(off, len) }, base.size)
      : await this.deps.spools.open(null, 0);
    this.spool = spool;
    this.mode = 'spool';
  }

  private async dropContent(): Promise<void> {
    if (this.writer) {
      const w = this.writer;
      this.writer = null;
      this.writerMeta = null;
      await w.abort().catch(() => {});
    }
    this.buffered = [];
    this.bufferedBytes = 0;
    if (this.spool) {
      const s = this.spool;
      this.spool = null;
      await s.close();
    }
  }

  private async commit(): Promise<CommitResult | null> {
    if (this.unlinked) {
      this.dirtyData = this.dirtyMeta = false;
      return null;
    }
    if (!this.dirtyData && !this.dirtyMeta) return null;
    const engine = this.deps.engine;
    let stored: { etag: string; size: number };
    if (this.dirtyData && this.mode === 'stream' && this.writer) {
      const writer = this.writer;
      this.writer = null;
      try {
        stored = await writer.close();
      } catch (err) {
        // The upload is gone (the engine aborted it); the file is what is stored.
        this.writerMeta = null;
        this.revertToObject();
        throw err;
      }
      const changed = this.metaVersion !== this.writerMetaVersion;
      if (!changed && this.writerMeta) this.meta = this.writerMeta;
      this.writerMeta = null;
      if (changed) {
        await engine.setAttributes(this.path, this.attributes());
        const st = await engine.stat(this.path);
        if (st) stored = { etag: st.etag, size: st.size };
      }
    } else if (this.dirtyData && this.mode === 'stream') {
      const data = Buffer.concat(this.buffered, this.bufferedBytes);
      stored = await engine.putBuffer(this.path, data, { attributes: this.attributes() });
      this.buffered = [];
      this.bufferedBytes = 0;
    } else if (this.dirtyData && this.mode === 'spool') {
      const spool = this.spool!;
      const writer = engine.createWriter(this.path, { attributes: this.attributes() });
      try {
        for await (const piece of spool.pieces(1024 * 1024)) await writer.write(piece);
        stored = await writer.close();
      } catch (err) {
        await writer.abort().catch(() => {});
        throw err; // the spool is kept: a later flush can retry
      }
      // The spool may still read through to the old object, which is now replaced: drop it.
      this.spool = null;
      await spool.close();
    } else if (this.base === null) {
      stored = await engine.putBuffer(this.path, Buffer.alloc(0), { attributes: this.attributes() });
    } else {
      await engine.setAttributes(this.path, this.attributes());
      const st = await engine.stat(this.path);
      stored = st ? { etag: st.etag, size: st.size } : { etag: this.base.etag, size: this.base.size };
    }
    this.base = { etag: stored.etag, size: stored.size };
    this._size = stored.size;
    this.mode = 'object';
    this.dirtyData = this.dirtyMeta = false;
    this.metaSince = null;
    return { etag: stored.etag, size: stored.size, meta: this.meta };
  }

  private revertToObject(): void {
    this.buffered = [];
    this.bufferedBytes = 0;
    this.mode = 'object';
    this._size = this.base?.size ?? 0;
    this.dirtyData = false;
  }
}
