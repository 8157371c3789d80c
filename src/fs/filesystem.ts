/**
 * EncryptedFileSystem: POSIX-like operations over the engine, independent of any FUSE binding.
 * Every operation resolves, or rejects with an FsError carrying an errno; unexpected failures are
 * EIO (and reported to `onError`). Paths are what the kernel passes ("/a/b").
 *
 * Modules: paths.ts (path rules, inode table), handles.ts (file handles), cache.ts (attribute,
 * directory and negative caches), open-file.ts + spool.ts (the write path), attrs.ts (POSIX
 * metadata in sealed object attributes). See docs/semantics.md for the semantics and their limits.
 */
import { constants as fsc } from 'node:fs';
import { isEngineError } from '../engine/errors.js';
import type { DirObject } from '../engine/index.js';
import type { EntryInfo } from '../engine/types.js';
import { lastModifiedSeconds } from '../format/dir-index.js';
import {
  decodePosix, foreignAttributes, encodePosix, msToNs, nowNs, typeBits, PERM_MASK,
  type NodeType, type PosixMeta,
} from './attrs.js';
import { MetadataCache, TtlMap, type DirListing } from './cache.js';
import { DirIndexKeeper, sameVersion, type DirIndexStats } from './dir-index.js';
import type { FsEngine } from './engine-port.js';
import { FsError } from './errno.js';
import { isNotFound as isNotFoundError, toFsError } from './errors.js';
import { HandleTable } from './handles.js';
import { OpenFile, type CommitResult } from './open-file.js';
import { baseName, InodeTable, isWithin, join, parentOf, rebase, toRelative } from './paths.js';
import { SpoolDir } from './spool.js';
import {
  DEFAULT_ATTR_TTL_MS, DEFAULT_ATTR_WRITEBACK_MS, DEFAULT_CACHE_ENTRIES, DEFAULT_DIR_INDEX_DELAY_MS, DEFAULT_DIR_TTL_MS, DEFAULT_NEGATIVE_TTL_MS, DEFAULT_STREAM_BUFFER_BYTES,
  type DirEntry, type FsOptions, type FsStat, type NodeInfo, type StatFs,
} from './types.js';

interface PendingMeta {
  meta: PosixMeta;
  foreign: Record<string, string>;
  timer: NodeJS.Timeout;
  /** When the oldest change in `meta` was made: it is stored attrWritebackMs after that at the latest. */
  since: number;
}

interface Handle {
  file: OpenFile;
  flags: number;
  writable: boolean;
}

/** utimens values: nanoseconds, or the UTIME_NOW / UTIME_OMIT requests. */
export type TimeSpec = bigint | 'now' | 'omit';

/** Longest symlink target we store (sealed attributes travel in S3 metadata, limited to 2 KiB). */
export const MAX_SYMLINK_TARGET = 1024;
/** Reported st_blksize: the preferred I/O size (matches the mount's max_write). */
export const PREFERRED_IO_SIZE = 128 * 1024;
/** An open() trusts cached attributes this young; older ones are re-read (close-to-open consistency). */
const OPEN_REVALIDATE_MS = 1000;
const COPY_CONCURRENCY = 8;
/**
 * Lookups in one directory (within the directory TTL) after which the whole directory is listed
 * once instead of answering each lookup with a HEAD (+ a LIST for names that do not exist).
 */
const HOT_DIR_LOOKUPS = 8;
const O_ACCMODE = 3;

export class EncryptedFileSystem {
  readonly cache: MetadataCache;
  private readonly inodes = new InodeTable();
  private readonly handles = new HandleTable<Handle>();
  private readonly openFiles = new Map<string, OpenFile>();
  /** Directory attributes changed in this session (also stored in the directory's marker). */
  private readonly dirMeta = new Map<string, PosixMeta>();
  /** Directory attribute indexes (null when disabled); see dir-index.ts. */
  private readonly dirIndex: DirIndexKeeper | null;
  /** Directories whose last readdir found entries its index could not answer: lookups there refill it. */
  private readonly healing: TtlMap<true>;
  /** The root directory's stored attributes (the root has no marker; see Engine.readDirObject). */
  private rootMeta: PosixMeta = {};
  private rootMetaLoad: Promise<void> | null = null;
  private readonly inflight = new Map<string, Promise<unknown>>();
  /** Attribute changes of closed files not stored yet (see FsOptions.attrWritebackMs). */
  private readonly pendingMeta = new Map<string, PendingMeta>();
  private readonly metaFlushes = new Map<string, Promise<void>>();
  private readonly attrWritebackMs: number;
  /** Lookups per directory whose listing is not cached (see HOT_DIR_LOOKUPS). */
  private readonly dirLookups: TtlMap<number>;
  private readonly mountTimeNs = nowNs();
  private readonly readOnly: boolean;
  private readonly defaultUid: number;
  private readonly defaultGid: number;
  private readonly streamBufferBytes: number;
  // Mutation tracking, so a lookup that raced with our own change does not cache stale results.
  private seq = 0;
  private touched = new Map<string, number>();
  private touchFloor = 0;
  private closed = false;

  private constructor(
    private readonly engine: FsEngine,
    private readonly spools: SpoolDir,
    private readonly opts: FsOptions,
  ) {
    this.readOnly = !!opts.readOnly;
    this.defaultUid = opts.defaultUid ?? (process.getuid ? process.getuid() : 0);
    this.defaultGid = opts.defaultGid ?? (process.getgid ? process.getgid() : 0);
    this.streamBufferBytes = opts.streamBufferBytes ?? DEFAULT_STREAM_BUFFER_BYTES;
    this.attrWritebackMs = opts.attrWritebackMs ?? DEFAULT_ATTR_WRITEBACK_MS;
    this.dirLookups = new TtlMap(opts.dirTtlMs ?? DEFAULT_DIR_TTL_MS, 10_000);
    this.healing = new TtlMap(opts.dirTtlMs ?? DEFAULT_DIR_TTL_MS, 10_000);
    this.dirIndex = opts.dirIndex === false ? null : new DirIndexKeeper(engine, {
      delayMs: opts.dirIndexDelayMs ?? DEFAULT_DIR_INDEX_DELAY_MS,
      busy: (p) => this.pendingMeta.has(p) || !!this.openFiles.get(p)?.dirty,
      onError: (dir, err) => this.opts.onError?.('dir-index', dir, err),
    });
    this.cache = new MetadataCache({
      attrTtlMs: opts.attrTtlMs ?? DEFAULT_ATTR_TTL_MS,
      dirTtlMs: opts.dirTtlMs ?? DEFAULT_DIR_TTL_MS,
      negativeTtlMs: opts.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS,
      maxEntries: opts.cacheEntries ?? DEFAULT_CACHE_ENTRIES,
    });
  }

  static async create(engine: FsEngine, opts: FsOptions = {}): Promise<EncryptedFileSystem> {
    const spools = await SpoolDir.create(opts.spoolDir);
    return new EncryptedFileSystem(engine, spools, opts);
  }

  // ------------------------------------------------------------------ metadata

  getattr(fusePath: string): Promise<FsStat> {
    return this.op('getattr', fusePath, async (path) => this.statOf(path, await this.node(path)));
  }

  /** Same as getattr; for bindings with a separate lookup. */
  lookup(fusePath: string): Promise<FsStat> {
    return this.getattr(fusePath);
  }

  fgetattr(fusePath: string, fh: number): Promise<FsStat> {
    return this.op('fgetattr', fusePath, async (path) => {
      const h = this.handles.find(fh);
      if (!h) return this.statOf(path, await this.node(path));
      return this.statOf(h.file.path, this.openFileInfo(h.file));
    });
  }

  readdir(fusePath: string): Promise<DirEntry[]> {
    return this.op('readdir', fusePath, async (path) => {
      const node = await this.node(path);
      if (node.type !== 'dir') throw new FsError('ENOTDIR');
      const listing = await this.listing(path);
      const self = this.statOf(path, node);
      const out: DirEntry[] = [
        { name: '.', stat: self },
        { name: '..', stat: path === '' ? self : { ...self, ino: this.inodes.ino(parentOf(path)) } },
      ];
      const seen = new Set<string>();
      for (const [name, entry] of listing.entries) {
        seen.add(name);
        out.push({ name, stat: this.entryStat(join(path, name), entry) });
      }
      for (const file of this.openFiles.values()) {
        if (parentOf(file.path) === path && !seen.has(baseName(file.path))) {
          out.push({ name: baseName(file.path), stat: this.statOf(file.path, this.openFileInfo(file)) });
        }
      }
      return out;
    });
  }

  readlink(fusePath: string): Promise<string> {
    return this.op('readlink', fusePath, async (path) => {
      const node = await this.node(path);
      if (node.type !== 'symlink' || node.meta?.target === undefined) throw new FsError('EINVAL');
      return node.meta.target;
    });
  }

  statfs(_fusePath: string): Promise<StatFs> {
    // An object store has no meaningful capacity: report a large, constant amount of free space.
    const blocks = 0xffffffff;
    return Promise.resolve({
      bsize: PREFERRED_IO_SIZE, frsize: 4096, blocks, bfree: blocks, bavail: blocks,
      files: 0xffffffff, ffree: 0xffffffff, favail: 0xffffffff, fsid: 0, flag: 0, namemax: 255,
    });
  }

  access(fusePath: string, mode: number): Promise<void> {
    return this.op('access', fusePath, async (path) => {
      await this.node(path);
      if (mode & fsc.W_OK && this.readOnly) throw new FsError('EROFS');
    });
  }

  // ------------------------------------------------------------------ files

  open(fusePath: string, flags: number): Promise<number> {
    return this.op('open', fusePath, async (path) => {
      const writable = (flags & O_ACCMODE) !== fsc.O_RDONLY;
      if (writable && this.readOnly) throw new FsError('EROFS');
      let file = await this.liveFile(path);
      if (!file) {
        // A pending attribute change moves into a read-only open (stored at its close or later:
        // rsync's chmod through an O_RDONLY descriptor); a writer's open stores it first.
        if (writable) await this.flushMeta(path);
        const pending = writable ? undefined : await this.dropMeta(path);
        try {
          file = await this.openExisting(path);
          if (pending) {
            await file.setMeta(pending.meta, pending.since);
            this.storeOpenMetaBy(file, pending.since + this.attrWritebackMs);
          }
        } catch (err) {
          if (pending) await this.storeMeta(path, pending).catch(() => {});
          throw err;
        }
      }
      file.refs++;
      const fh = this.handles.add({ file, flags, writable });
      if (writable && flags & fsc.O_TRUNC) await file.truncate(0);
      return fh;
    });
  }

  /** A long-open file does not hold back an attribute change that was due to be stored. */
  private storeOpenMetaBy(file: OpenFile, due: number): void {
    const timer = setTimeout(() => {
      if (this.openFiles.get(file.path) !== file || file.closing || !file.metaOnlyDirty) return;
      this.commit(file, () => file.flush()).catch((err: unknown) => this.opts.onError?.('setattr', file.path, err));
    }, Math.max(0, due - Date.now()));
    timer.unref();
  }

  /** The OpenFile of a stored file (revalidated when it may have changed elsewhere). */
  private async openExisting(path: string): Promise<OpenFile> {
    let node = await this.node(path);
    if (node.type === 'dir') throw new FsError('EISDIR');
    if (node.type === 'symlink') throw new FsError('ELOOP');
    if (!this.openFiles.has(path) && (!node.etag || (!node.own && (node.fetchedAt ?? 0) < Date.now() - OPEN_REVALIDATE_MS))) {
      // Close-to-open: see the latest version of a file changed elsewhere.
      const fresh = await this.fetchNode(path, true);
      node = fresh;
      if (node.type !== 'file') throw new FsError(node.type === 'dir' ? 'EISDIR' : 'ELOOP');
    }
    let file = await this.liveFile(path);
    if (!file) {
      file = this.newOpenFile(path, { etag: node.etag!, size: node.size }, node.meta ?? {}, node.foreign ?? {}, false);
      this.openFiles.set(path, file);
    }
    return file;
  }

  create(fusePath: string, mode: number, flags: number = fsc.O_RDWR): Promise<number> {
    return this.op('create', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      if (path === '') throw new FsError('EEXIST');
      this.checkKeyLength(path);
      await this.requireDir(parentOf(path));
      let file = await this.liveFile(path);
      if (file) {
        if (flags & fsc.O_EXCL) throw new FsError('EEXIST');
        file.refs++;
        const fh = this.handles.add({ file, flags, writable: true });
        await file.truncate(0);
        return fh;
      }
      const now = nowNs();
      file = this.newOpenFile(path, null, { mode: mode & PERM_MASK, mtimeNs: now, atimeNs: now, ctimeNs: now }, {}, true);
      this.openFiles.set(path, file);
      file.refs++;
      this.mark(path);
      this.cache.noteExists(path, this.openFileInfo(file));
      return this.handles.add({ file, flags, writable: true });
    });
  }

  read(fusePath: string, fh: number, length: number, offset: number): Promise<Buffer> {
    return this.op('read', fusePath, async () => this.handles.get(fh).file.read(offset, length));
  }

  /** read() as parts in order (views of cached plaintext), for a binding that replies with them unjoined. */
  readParts(fusePath: string, fh: number, length: number, offset: number): Promise<Buffer[]> {
    return this.op('read', fusePath, async () => this.handles.get(fh).file.readParts(offset, length));
  }

  write(fusePath: string, fh: number, data: Uint8Array, offset: number): Promise<number> {
    return this.op('write', fusePath, async () => {
      const h = this.handles.get(fh);
      if (!h.writable) throw new FsError('EBADF');
      return h.file.write(offset, data);
    });
  }

  /**
   * close() of one descriptor: uploads pending data; resolves once durable. (A file created with
   * nothing written yet is stored at its release instead: see OpenFile.flush.)
   */
  flush(fusePath: string, fh: number): Promise<void> {
    return this.op('flush', fusePath, async () => {
      const h = this.handles.find(fh);
      if (!h) return;
      // Attributes alone are stored like those of a closed file (deferred at release), not here.
      if (this.attrWritebackMs > 0 && h.file.metaOnlyDirty) return;
      await this.commit(h.file, () => h.file.flush({ deferEmptyCreate: true }));
    });
  }

  fsync(fusePath: string, fh: number, _datasync = false): Promise<void> {
    return this.op('fsync', fusePath, async () => {
      const h = this.handles.find(fh);
      if (!h) return;
      await this.commit(h.file, () => h.file.flush());
    });
  }

  /** Last close of a descriptor: uploads anything still pending, frees the handle. */
  release(fusePath: string, fh: number): Promise<void> {
    return this.op('release', fusePath, async () => {
      const h = this.handles.remove(fh);
      if (!h) return;
      const file = h.file;
      file.refs--;
      if (file.refs > 0) return;
      file.closing = true;
      const done = (async () => {
        try {
          // An attribute-only change (rsync: utimens, then chmod through another descriptor, then
          // rename) waits like one made to a closed file, so the three merge into the rename's copy.
          const deferred = this.attrWritebackMs > 0 ? await file.takeMetaOnly() : null;
          if (deferred) this.deferMeta(file.path, deferred.meta, file.foreign, deferred.since, this.openFileInfo(file));
          await this.commit(file, () => file.release());
        } finally {
          if (this.openFiles.get(file.path) === file) this.openFiles.delete(file.path);
        }
      })();
      file.closed = done.then(() => {}, () => {});
      await done;
    });
  }

  truncate(fusePath: string, size: number): Promise<void> {
    return this.op('truncate', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      if (size < 0) throw new FsError('EINVAL');
      const existing = await this.liveFile(path);
      if (existing) {
        await existing.truncate(size);
        await this.commit(existing, () => existing.flush());
        return;
      }
      await this.flushMeta(path);
      const node = await this.node(path);
      if (node.type === 'dir') throw new FsError('EISDIR');
      if (node.type !== 'file') throw new FsError('EINVAL');
      const file = this.newOpenFile(path, { etag: node.etag!, size: node.size }, node.meta ?? {}, node.foreign ?? {}, false);
      if (!node.etag) {
        const fresh = await this.fetchNode(path, true);
        file.rebase(path, { etag: fresh.etag!, size: fresh.size });
      }
      this.openFiles.set(path, file);
      file.refs++;
      try {
        await file.truncate(size);
        await this.commit(file, () => file.release());
      } finally {
        file.refs--;
        if (this.openFiles.get(path) === file && file.refs === 0) this.openFiles.delete(path);
      }
    });
  }

  ftruncate(fusePath: string, fh: number, size: number): Promise<void> {
    return this.op('ftruncate', fusePath, async () => {
      if (this.readOnly) throw new FsError('EROFS');
      if (size < 0) throw new FsError('EINVAL');
      await this.handles.get(fh).file.truncate(size);
    });
  }

  unlink(fusePath: string): Promise<void> {
    return this.op('unlink', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      const node = await this.node(path);
      if (node.type === 'dir') throw new FsError('EISDIR');
      await this.dropMeta(path);
      this.dirIndex?.forgetFile(path);
      const file = await this.liveFile(path);
      if (file) {
        this.openFiles.delete(path);
        const committed = !file.uncommitted;
        await file.markUnlinked();
        if (committed) await this.engine.delete(path);
      } else {
        await this.engine.delete(path);
      }
      this.mark(path);
      this.cache.noteGone(path);
      this.inodes.forget(path);
      await this.keepParent(parentOf(path));
    });
  }

  // ------------------------------------------------------------------ directories, links

  mkdir(fusePath: string, mode: number): Promise<void> {
    return this.op('mkdir', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      if (path === '') throw new FsError('EEXIST');
      this.checkKeyLength(path);
      await this.requireDir(parentOf(path));
      if (await this.exists(path)) throw new FsError('EEXIST');
      const now = nowNs();
      const meta: PosixMeta = { mode: mode & PERM_MASK, mtimeNs: now, atimeNs: now, ctimeNs: now };
      const attrs = encodePosix(meta);
      await this.engine.mkdirMarker(path, { attributes: attrs });
      this.dirMeta.set(path, meta);
      if (this.writableIndex) this.dirIndex!.noteDir(path, attrs);
      this.mark(path);
      this.cache.noteExists(path, { type: 'dir', size: 0, own: true });
      // A directory we just created is empty: lookups inside it need no requests until the TTL.
      this.cache.dirs.set(path, { entries: new Map() });
    });
  }

  rmdir(fusePath: string): Promise<void> {
    return this.op('rmdir', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      if (path === '') throw new FsError('EBUSY');
      const node = await this.node(path);
      if (node.type !== 'dir') throw new FsError('ENOTDIR');
      for (const f of this.openFiles.values()) if (isWithin(f.path, path)) throw new FsError('ENOTEMPTY');
      if (!(await this.isEmptyDir(path))) throw new FsError('ENOTEMPTY');
      await this.dirIndex?.cancel(path);
      await this.engine.removeDirMarker(path);
      this.mark(path);
      this.cache.noteGone(path, true);
      this.forgetDirMeta(path);
      this.inodes.forget(path);
      await this.keepParent(parentOf(path));
    });
  }

  symlink(target: string, fusePath: string): Promise<void> {
    return this.op('symlink', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      this.checkKeyLength(path);
      if (Buffer.byteLength(target, 'utf8') > MAX_SYMLINK_TARGET) throw new FsError('ENAMETOOLONG', `symlink targets are limited to ${MAX_SYMLINK_TARGET} bytes`);
      if (target === '') throw new FsError('ENOENT');
      await this.requireDir(parentOf(path));
      if (await this.exists(path)) throw new FsError('EEXIST');
      const now = nowNs();
      const meta: PosixMeta = { type: 'symlink', target, mode: 0o777, mtimeNs: now, atimeNs: now, ctimeNs: now };
      const stored = await this.engine.putBuffer(path, Buffer.alloc(0), { attributes: encodePosix(meta) });
      this.mark(path);
      this.cache.noteExists(path, { type: 'symlink', size: Buffer.byteLength(target, 'utf8'), etag: stored.etag, meta, foreign: {}, own: true });
      this.noteStored(path, stored.etag, 0, encodePosix(meta));
    });
  }

  link(_from: string, fusePath: string): Promise<void> {
    return this.op('link', fusePath, async () => {
      throw new FsError('EPERM', 'hard links are not supported');
    });
  }

  mknod(fusePath: string, _mode: number, _dev: number): Promise<void> {
    return this.op('mknod', fusePath, async () => {
      throw new FsError('EPERM', 'device nodes, FIFOs and sockets are not supported');
    });
  }

  fsyncdir(_fusePath: string): Promise<void> {
    return Promise.resolve(); // directory operations are synchronous against the bucket
  }

  rename(fromFuse: string, toFuse: string): Promise<void> {
    return this.op('rename', fromFuse, async (from) => {
      if (this.readOnly) throw new FsError('EROFS');
      const to = toRelative(toFuse);
      if (from === '' || to === '') throw new FsError('EBUSY');
      this.checkKeyLength(to);
      if (from === to) {
        await this.node(from);
        return;
      }
      if (isWithin(to, from)) throw new FsError('EINVAL', 'cannot move a directory into itself');
      const src = await this.node(from);
      await this.requireDir(parentOf(to));
      const dst = await this.node(to).catch((err: unknown) => {
        if (err instanceof FsError && err.code === 'ENOENT') return null;
        throw err;
      });
      if (src.type === 'dir') {
        if (dst && dst.type !== 'dir') throw new FsError('ENOTDIR');
        await this.renameDir(from, to, dst !== null);
      } else {
        if (dst && dst.type === 'dir') throw new FsError('EISDIR');
        await this.renameFile(from, to, src, dst);
      }
      await this.keepParent(parentOf(from));
    });
  }

  // ------------------------------------------------------------------ attributes

  chmod(fusePath: string, mode: number): Promise<void> {
    return this.op('chmod', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      await this.changeMeta(path, { mode: mode & PERM_MASK });
    });
  }

  chown(fusePath: string, uid: number, gid: number): Promise<void> {
    return this.op('chown', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      const change: PosixMeta = {};
      if (uid >= 0 && uid !== 0xffffffff) change.uid = uid;
      if (gid >= 0 && gid !== 0xffffffff) change.gid = gid;
      if (change.uid === undefined && change.gid === undefined) return;
      await this.changeMeta(path, change);
    });
  }

  utimens(fusePath: string, atime: TimeSpec, mtime: TimeSpec): Promise<void> {
    return this.op('utimens', fusePath, async (path) => {
      if (this.readOnly) throw new FsError('EROFS');
      const now = nowNs();
      const change: PosixMeta = {};
      if (atime !== 'omit') change.atimeNs = atime === 'now' ? now : atime;
      if (mtime !== 'omit') change.mtimeNs = mtime === 'now' ? now : mtime;
      if (change.atimeNs === undefined && change.mtimeNs === undefined) return;
      await this.changeMeta(path, change);
    });
  }

  // ------------------------------------------------------------------ lifecycle

  /** Directory attribute index counters (null when indexes are disabled). */
  get dirIndexStats(): DirIndexStats | null {
    return this.dirIndex?.stats ?? null;
  }

  /** Number of open file handles. */
  get openHandles(): number {
    return this.handles.size;
  }

  /** Paths with data or attributes not yet stored. */
  dirtyPaths(): string[] {
    const out: string[] = [];
    for (const f of this.openFiles.values()) if (f.dirty) out.push(f.path);
    for (const p of this.pendingMeta.keys()) out.push(p);
    return out;
  }

  /** Paths open for writing. */
  writablePaths(): string[] {
    const out = new Set<string>();
    for (const h of this.handles.values()) if (h.writable && !h.file.unlinked) out.add(h.file.path);
    return [...out];
  }

  /**
   * Uploads every pending change now. With `skipOpenForWriting`, files some descriptor still has
   * open for writing are left alone (their writer is not done: uploading them now would store a
   * half-written file). Failures are returned, not thrown.
   */
  async flushAll(opts: { skipOpenForWriting?: boolean } = {}): Promise<{ path: string; error: unknown }[]> {
    const writing = new Set<OpenFile>();
    if (opts.skipOpenForWriting) for (const h of this.handles.values()) if (h.writable) writing.add(h.file);
    const failures: { path: string; error: unknown }[] = [];
    await Promise.all([...this.pendingMeta.keys()].map(async (path) => {
      try {
        await this.flushMeta(path);
      } catch (error) {
        failures.push({ path, error });
      }
    }));
    await Promise.all([...new Set(this.openFiles.values())].map(async (file) => {
      if (!file.dirty || writing.has(file)) return;
      try {
        await this.commit(file, () => file.flush());
      } catch (error) {
        failures.push({ path: file.path, error });
      }
    }));
    return failures;
  }

  /**
   * Waits until no file is open for writing and nothing is pending (after a lazy unmount the kernel
   * keeps sending writes for descriptors that were open), or until `gone()` says the kernel
   * connection has ended. Resolves with what is still pending when `timeoutMs` runs out.
   */
  async drain(timeoutMs: number, opts: { pollMs?: number; gone?: () => Promise<boolean> } = {}): Promise<string[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const busy = [...new Set([...this.writablePaths(), ...this.dirtyPaths()])];
      if (busy.length === 0) return [];
      // The kernel connection is gone: every descriptor was closed (and flushed) even if its
      // RELEASE never arrived. What is still dirty is stored by close().
      if (opts.gone && (await opts.gone())) return [];
      if (Date.now() >= deadline) return busy;
      await new Promise((r) => setTimeout(r, opts.pollMs ?? 100));
    }
  }

  /** Gives up on every file open for writing: its pending changes are discarded, nothing is uploaded. */
  async abortWrites(): Promise<string[]> {
    const files = new Set<OpenFile>();
    for (const h of this.handles.values()) if (h.writable && !h.file.unlinked) files.add(h.file);
    for (const file of files) {
      if (this.openFiles.get(file.path) === file) this.openFiles.delete(file.path);
      await file.markUnlinked();
      this.cache.invalidate(file.path);
    }
    return [...files].map((f) => f.path);
  }

  /** Uploads what is pending, then frees every handle and the spool directory. */
  async close(): Promise<{ path: string; error: unknown }[]> {
    if (this.closed) return [];
    this.closed = true;
    const failures = await this.flushAll();
    for (const file of new Set(this.openFiles.values())) await file.release().catch(() => {});
    // Indexes last: they list what the flushes above stored.
    await this.dirIndex?.flushAll();
    this.dirIndex?.close();
    this.openFiles.clear();
    await this.spools.close();
    return failures;
  }

  // ------------------------------------------------------------------ internals

  /** A name whose (encrypted) key S3 cannot hold fails now with ENAMETOOLONG, not later at close(). */
  private checkKeyLength(path: string): void {
    this.engine.objectKey(path);
  }

  private async op<T>(name: string, fusePath: string, fn: (path: string) => Promise<T>): Promise<T> {
    let path = fusePath;
    try {
      path = toRelative(fusePath);
      return await fn(path);
    } catch (err) {
      const e = toFsError(err);
      if (e.code === 'EIO') this.opts.onError?.(name, path, err);
      throw e;
    }
  }

  private newOpenFile(path: string, base: { etag: string; size: number } | null, meta: PosixMeta, foreign: Record<string, string>, isNew: boolean): OpenFile {
    return new OpenFile({ engine: this.engine, spools: this.spools, streamBufferBytes: this.streamBufferBytes }, path, base, meta, foreign, isNew);
  }

  private async commit(file: OpenFile, fn: () => Promise<CommitResult | null>): Promise<void> {
    const path = file.path;
    let result: CommitResult | null;
    try {
      result = await fn();
    } catch (err) {
      this.mark(path);
      this.cache.invalidate(path);
      throw err;
    }
    if (!result || file.unlinked) return;
    this.mark(file.path);
    this.cache.noteExists(file.path, { type: 'file', size: result.size, etag: result.etag, meta: result.meta, foreign: file.foreign, own: true });
    this.noteStored(file.path, result.etag, result.size, encodePosix(result.meta, file.foreign));
  }

  /** The open file at `path`, after waiting for any file there that is closing to finish closing. */
  private async liveFile(path: string): Promise<OpenFile | undefined> {
    for (;;) {
      const f = this.openFiles.get(path);
      if (!f || !f.closing) return f;
      await f.closed;
      if (this.openFiles.get(path) === f) this.openFiles.delete(path);
    }
  }

  /** Our write stored this version of `path` with these attributes: the parent's index learns it. */
  private noteStored(path: string, etag: string, size: number, attrs: Record<string, string>): void {
    if (this.writableIndex) this.dirIndex!.noteFile(path, { etag, size, mtimeSec: null, attrs });
  }

  private mark(path: string): void {
    const s = ++this.seq;
    this.touched.set(path, s);
    this.touched.set(parentOf(path), s);
    if (this.touched.size > 50_000) {
      this.touched = new Map();
      this.touchFloor = s;
    }
  }

  private unchangedSince(path: string, start: number): boolean {
    return start >= this.touchFloor && (this.touched.get(path) ?? 0) <= start;
  }

  /** Reads the root's stored attributes once per mount (the root has no parent listing to bring them). */
  private loadRootMeta(): Promise<void> {
    this.rootMetaLoad ??= this.engine.dirAttributes('').then(
      (attrs) => {
        if (attrs) this.rootMeta = decodePosix(attrs);
      },
      (err: unknown) => {
        this.rootMetaLoad = null; // defaults for now, ask again next time
        this.opts.onError?.('getattr', '', err);
      },
    );
    return this.rootMetaLoad;
  }

  private rootInfo(): NodeInfo {
    return { type: 'dir', size: 0, own: true };
  }

  private openFileInfo(file: OpenFile): NodeInfo {
    return { type: 'file', size: file.size, etag: file.etag, meta: file.meta, foreign: file.foreign, own: true };
  }

  /** What `path` is: from open files, the caches, or the bucket. Throws ENOENT. */
  private async node(path: string): Promise<NodeInfo> {
    if (path === '') {
      await this.loadRootMeta();
      return this.rootInfo();
    }
    const file = this.openFiles.get(path);
    if (file) return this.openFileInfo(file);
    const cached = this.cache.attrs.get(path);
    if (cached && (cached.type === 'dir' || cached.meta)) return this.withPendingMeta(path, cached);
    if (this.cache.negative.get(path)) throw new FsError('ENOENT');
    return this.withPendingMeta(path, await this.fetchNode(path, false));
  }

  private withPendingMeta(path: string, info: NodeInfo): NodeInfo {
    const pending = this.pendingMeta.get(path);
    return pending && info.type !== 'dir' ? { ...info, meta: pending.meta } : info;
  }

  private fetchNode(path: string, fresh: boolean): Promise<NodeInfo> {
    const key = `${fresh ? 'head' : 'node'}:${path}`;
    let p = this.inflight.get(key) as Promise<NodeInfo> | undefined;
    if (!p) {
      p = this.doFetchNode(path, fresh).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async doFetchNode(path: string, fresh: boolean): Promise<NodeInfo> {
    const start = this.seq;
    let info: NodeInfo | null;
    const parent = parentOf(path);
    let listing = fresh ? undefined : this.cache.dirs.get(parent);
    if (!listing && !fresh && this.cache.dirs.enabled) {
      const n = (this.dirLookups.get(parent) ?? 0) + 1;
      this.dirLookups.set(parent, n);
      if (n >= HOT_DIR_LOOKUPS) {
        this.dirLookups.delete(parent);
        listing = await this.listing(parent);
      }
    }
    if (listing) {
      const entry = listing.entries.get(baseName(path));
      if (!entry) info = null;
      else if (entry.type === 'dir') info = { type: 'dir', size: 0, meta: entry.meta ?? (await this.storedDirMeta(path)), fetchedAt: Date.now() };
      // Attributes from a validated index entry (foreign set) are complete; patched entries are not.
      else if (entry.meta && entry.foreign) info = { ...entry, fetchedAt: Date.now() };
      else info = await this.head(path);
    } else {
      info = await this.head(path);
      if (!info && (await this.dirExists(path))) info = { type: 'dir', size: 0, meta: await this.storedDirMeta(path), fetchedAt: Date.now() };
    }
    if (this.unchangedSince(path, start)) {
      if (info) this.cache.noteExists(path, info);
      else this.cache.negative.set(path, true);
    }
    if (!info) throw new FsError('ENOENT');
    return info;
  }

  private async head(path: string): Promise<NodeInfo | null> {
    let st;
    try {
      st = await this.engine.stat(path);
    } catch (err) {
      if (isEngineError(err, 'INVALID_PATH')) return null; // e.g. the reserved config name
      throw err;
    }
    if (!st) return null;
    // A lookup the directory's index could not answer: remember it for the index's next rewrite.
    if (this.writableIndex && this.healing.get(parentOf(path))) {
      this.dirIndex!.noteFile(path, { etag: st.etag, size: st.size, mtimeSec: lastModifiedSeconds(st.lastModified), attrs: st.attributes });
    }
    return fileInfo(st.size, st.etag, st.lastModified, st.attributes);
  }

  /** The attributes stored in a directory's marker (one HEAD); {} when it has none. */
  private async storedDirMeta(path: string): Promise<PosixMeta> {
    let attrs: Record<string, string> | null;
    try {
      attrs = await this.engine.dirAttributes(path);
    } catch (err) {
      if (isEngineError(err, 'INVALID_PATH')) return {};
      throw err;
    }
    if (this.writableIndex && this.healing.get(parentOf(path))) this.dirIndex!.noteDir(path, attrs ?? {});
    return decodePosix(attrs ?? {});
  }

  private get writableIndex(): boolean {
    return this.dirIndex !== null && !this.readOnly;
  }

  /** GET of the directory's marker: its attributes and index (null when disabled or unreadable). */
  private async readDirObject(dir: string): Promise<DirObject | null> {
    if (!this.dirIndex) return null;
    try {
      const obj = await this.engine.readDirObject(dir);
      this.dirIndex.stats.reads++;
      if (obj.error) {
        this.dirIndex.stats.invalid++;
        this.opts.onError?.('dir-index', dir, obj.error);
      }
      return obj;
    } catch (err) {
      if (!isEngineError(err, 'INVALID_PATH')) this.opts.onError?.('dir-index', dir, err);
      return null; // only costs HEADs
    }
  }

  private async dirExists(path: string): Promise<boolean> {
    try {
      return await this.engine.dirExists(path);
    } catch (err) {
      if (isEngineError(err, 'INVALID_PATH')) return false;
      throw err;
    }
  }

  private async exists(path: string): Promise<boolean> {
    try {
      await this.node(path);
      return true;
    } catch (err) {
      if (err instanceof FsError && err.code === 'ENOENT') return false;
      throw err;
    }
  }

  private async requireDir(path: string): Promise<void> {
    const node = await this.node(path);
    if (node.type !== 'dir') throw new FsError('ENOTDIR');
  }

  /** The complete listing of `dir` (cached). */
  private listing(dir: string): Promise<DirListing> {
    const cached = this.cache.dirs.get(dir);
    if (cached) return Promise.resolve(cached);
    const key = `list:${dir}`;
    let p = this.inflight.get(key) as Promise<DirListing> | undefined;
    if (!p) {
      p = this.fetchListing(dir).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  /**
   * Lists `dir` and reads its attribute index alongside (ceil(N/1000) LISTs + 1 GET). Files whose
   * listed version (ETag, size, LastModified second) matches their index entry get full attributes
   * without a HEAD; the others are looked up one by one as before, and those lookups refill the index.
   */
  private async fetchListing(dir: string): Promise<DirListing> {
    const start = this.seq;
    const entries = new Map<string, NodeInfo>();
    const files: EntryInfo[] = [];
    const subdirs: string[] = [];
    const [, dirObj] = await Promise.all([
      (async () => {
        for await (const page of this.engine.listAll(dir)) {
          files.push(...page.files);
          subdirs.push(...page.dirs);
        }
      })(),
      this.readDirObject(dir),
    ]);
    const index = dirObj?.index ?? null;
    const now = Date.now();
    const validated: [string, NodeInfo][] = [];
    for (const f of files) {
      const e = index?.files.get(baseName(f.path));
      if (sameVersion(e, f)) {
        const info = fileInfo(f.size, f.etag, f.lastModified, e.attrs, now);
        entries.set(baseName(f.path), info);
        validated.push([f.path, info]);
      } else {
        entries.set(baseName(f.path), { type: 'file', size: f.size, etag: f.etag, lastModified: f.lastModified });
      }
    }
    const unknownDirs: string[] = [];
    for (const d of subdirs) {
      const name = baseName(d.replace(/\/+$/, ''));
      if (name === '' || entries.has(name)) continue;
      const attrs = index?.dirs.get(name);
      entries.set(name, { type: 'dir', size: 0, meta: attrs ? decodePosix(attrs) : undefined });
      if (!attrs) unknownDirs.push(name);
    }
    if (this.dirIndex) {
      this.dirIndex.stats.hits += validated.length;
      this.dirIndex.stats.misses += files.length - validated.length;
    }
    if (this.writableIndex && (validated.length < files.length || unknownDirs.length > 0)) this.healing.set(dir, true);
    // readdir reports directories as exact: read the attributes of those the index does not have.
    await runLimited(unknownDirs, COPY_CONCURRENCY, async (name) => {
      const entry = entries.get(name);
      if (entry) entry.meta = await this.storedDirMeta(join(dir, name));
    });
    const listing: DirListing = { entries };
    if (this.unchangedSince(dir, start)) {
      this.cache.dirs.set(dir, listing);
      // A listing is fresher than cached attributes of objects that changed since: drop those.
      for (const f of files) {
        const a = this.cache.attrs.get(f.path);
        if (a && a.etag !== undefined && a.etag !== f.etag) this.cache.attrs.delete(f.path);
        this.cache.negative.delete(f.path);
      }
      for (const [path, info] of validated) {
        if (!this.pendingMeta.has(path) && !this.openFiles.has(path)) this.cache.attrs.set(path, info);
      }
      if (dirObj?.exists) {
        const meta = decodePosix(dirObj.attributes ?? {});
        if (dir === '') this.rootMeta = meta;
        else this.cache.attrs.set(dir, { ...this.cache.attrs.get(dir), type: 'dir', size: 0, meta, fetchedAt: now });
      }
    }
    return listing;
  }

  /** readdir's stat for one entry: full when known, else type and size from the listing. */
  private entryStat(path: string, entry: NodeInfo): FsStat {
    const file = this.openFiles.get(path);
    if (file) return this.statOf(path, this.openFileInfo(file));
    const cached = this.cache.attrs.get(path);
    if (cached && (cached.type === 'dir' || cached.meta) && (entry.etag === undefined || cached.etag === undefined || cached.etag === entry.etag)) {
      return this.statOf(path, cached);
    }
    const st = this.statOf(path, entry);
    // An empty object may be a symlink: leave the type unknown so the kernel asks (DT_UNKNOWN).
    if (entry.type === 'file' && entry.size === 0 && !entry.meta) st.mode = 0;
    return st;
  }

  private statOf(path: string, node: NodeInfo): FsStat {
    const meta: PosixMeta = node.type === 'dir' ? { ...(path === '' ? this.rootMeta : node.meta), ...this.dirMeta.get(path) } : node.meta ?? {};
    const defaultPerm = node.type === 'dir' ? 0o755 : node.type === 'symlink' ? 0o777 : 0o644;
    let perm = meta.mode ?? defaultPerm;
    if (this.opts.umask !== undefined && node.type !== 'symlink') perm &= ~this.opts.umask & PERM_MASK;
    const fallback = node.lastModified ? msToNs(node.lastModified.getTime()) : this.mountTimeNs;
    const mtimeNs = meta.mtimeNs ?? fallback;
    const size = node.type === 'dir' ? 4096 : node.size;
    return {
      type: node.type,
      mode: typeBits(node.type) | perm,
      uid: this.opts.uid ?? meta.uid ?? this.defaultUid,
      gid: this.opts.gid ?? meta.gid ?? this.defaultGid,
      size,
      nlink: node.type === 'dir' ? 2 : 1,
      ino: this.inodes.ino(path),
      blksize: PREFERRED_IO_SIZE,
      blocks: Math.ceil(size / 512),
      mtimeNs,
      atimeNs: meta.atimeNs ?? mtimeNs,
      ctimeNs: meta.ctimeNs ?? mtimeNs,
    };
  }

  private async changeMeta(path: string, change: PosixMeta): Promise<void> {
    let node = await this.node(path);
    if (node.type === 'dir') {
      const session = { ...this.dirMeta.get(path), ...change, ctimeNs: nowNs() };
      this.dirMeta.set(path, session);
      // Stored in the directory's marker (the root's index object) and the parent's index.
      const attrs = encodePosix({ ...(path === '' ? this.rootMeta : node.meta), ...session, type: undefined, target: undefined });
      await this.engine.setDirAttributes(path, attrs);
      if (this.writableIndex) {
        this.dirIndex!.noteOwnAttributes(path, attrs);
        this.dirIndex!.noteDir(path, attrs);
      }
      return;
    }
    const file = await this.liveFile(path);
    if (file) {
      // Folded into the upload at the next flush/close.
      await file.setMeta(change);
      return;
    }
    if (this.openFiles.has(path) || !node.meta) node = await this.node(path);
    const meta: PosixMeta = { ...node.meta, ...change, ctimeNs: nowNs() };
    this.mark(path);
    if (this.attrWritebackMs <= 0) {
      const attrs = encodePosix(meta, node.foreign);
      const { etag } = await this.engine.setAttributes(path, attrs);
      this.cache.noteExists(path, { ...node, meta, etag: undefined, own: true });
      this.noteStored(path, etag, node.type === 'symlink' ? 0 : node.size, attrs);
      return;
    }
    this.deferMeta(path, meta, node.foreign ?? {}, this.pendingMeta.get(path)?.since ?? Date.now(), node);
  }

  /** Stores `meta` attrWritebackMs after `since` (unless a later change or a rename takes it first). */
  private deferMeta(path: string, meta: PosixMeta, foreign: Record<string, string>, since: number, node: NodeInfo): void {
    const prev = this.pendingMeta.get(path);
    if (prev) clearTimeout(prev.timer);
    const timer = setTimeout(() => {
      this.flushMeta(path).catch(() => {}); // reported through onError
    }, Math.max(0, since + this.attrWritebackMs - Date.now()));
    timer.unref();
    this.pendingMeta.set(path, { meta, foreign, timer, since });
    this.cache.noteExists(path, { ...node, meta, own: true });
  }

  /** Stores the pending attribute change of `path` now (no-op when there is none). */
  private async flushMeta(path: string): Promise<void> {
    const running = this.metaFlushes.get(path);
    if (running) await running.catch(() => {});
    const pending = this.pendingMeta.get(path);
    if (!pending) return;
    clearTimeout(pending.timer);
    this.pendingMeta.delete(path);
    await this.storeMeta(path, pending);
  }

  /** Stores a pending attribute change taken off pendingMeta. */
  private async storeMeta(path: string, pending: PendingMeta): Promise<void> {
    const p = (async () => {
      try {
        const attrs = encodePosix(pending.meta, pending.foreign);
        const { etag } = await this.engine.setAttributes(path, attrs);
        this.mark(path);
        const cached = this.cache.attrs.get(path);
        if (cached) this.cache.noteExists(path, { ...cached, meta: pending.meta, etag: undefined, own: true });
        if (cached?.type === 'file') this.noteStored(path, etag, cached.size, attrs);
        else if (cached?.type === 'symlink') this.noteStored(path, etag, 0, attrs);
      } catch (err) {
        this.mark(path);
        this.cache.invalidate(path);
        if (!isNotFoundError(err)) this.opts.onError?.('setattr', path, err);
        throw err;
      }
    })();
    this.metaFlushes.set(path, p);
    try {
      await p;
    } finally {
      if (this.metaFlushes.get(path) === p) this.metaFlushes.delete(path);
    }
  }

  /** Forgets the pending attribute change of `path` (it is being removed or replaced); returns it. */
  private async dropMeta(path: string): Promise<PendingMeta | undefined> {
    const running = this.metaFlushes.get(path);
    if (running) await running.catch(() => {});
    const pending = this.pendingMeta.get(path);
    if (pending) {
      clearTimeout(pending.timer);
      this.pendingMeta.delete(path);
    }
    return pending;
  }

  private forgetDirMeta(dir: string): void {
    for (const p of [...this.dirMeta.keys()]) if (isWithin(p, dir)) this.dirMeta.delete(p);
  }

  /**
   * A directory without a marker exists only while something is below it. After removing its last
   * entry, give it a marker so it does not vanish (POSIX: the directory stays until rmdir).
   */
  private async keepParent(dir: string): Promise<void> {
    if (dir === '') return;
    const listing = this.cache.dirs.get(dir);
    if (listing && listing.entries.size > 0) return;
    for (const f of this.openFiles.values()) if (isWithin(f.path, dir)) return;
    if (!(await this.isEmptyDir(dir))) return;
    // An existing marker keeps its attributes and index.
    const session = this.dirMeta.get(dir);
    await this.engine.mkdirMarker(dir, { ifMissing: true, attributes: session ? encodePosix(session) : undefined });
  }

  /** Asks the bucket (not the cache) whether anything is stored below `dir`. */
  private async isEmptyDir(dir: string): Promise<boolean> {
    // The directory's own marker is hidden from the listing but still counts against maxKeys.
    const page = await this.engine.list(dir, { maxKeys: 2 });
    return page.files.length === 0 && page.dirs.length === 0 && !page.nextToken;
  }

  private async renameFile(from: string, to: string, src: NodeInfo, dst: NodeInfo | null): Promise<void> {
    const file = await this.liveFile(from);
    if (dst && (await this.liveFile(to)) === undefined) dst = await this.node(to).catch(() => null);
    src = await this.node(from);
    if (file?.dirty) await this.commit(file, () => file.flush());
    const replacedEtag = dst ? dst.etag ?? (await this.engine.stat(to))?.etag : undefined;
    // Pending attribute changes of the source travel with the copy; the target's are moot.
    await this.dropMeta(to);
    const pending = await this.dropMeta(from);
    const copyOpts = pending ? { attributes: encodePosix(pending.meta, pending.foreign) } : {};
    if (pending) src = { ...src, meta: pending.meta };
    let { etag } = await this.engine.copy(from, to, copyOpts);
    if (replacedEtag !== undefined && etag === replacedEtag) {
      // The server kept the replaced object's ETag for the new content (s3rver does this for a
      // CopyObject onto an existing key). Every object has its own random data key, so equal ETags
      // mean equal ciphertext only when the destination was a server-side copy of the source, and
      // then copying once more is harmless: replace the destination from scratch so that versions
      // (and the chunk cache, which is keyed by ETag) stay distinct.
      await this.engine.delete(to);
      ({ etag } = await this.engine.copy(from, to, copyOpts));
    }
    await this.engine.delete(from);
    const replaced = this.openFiles.get(to);
    if (replaced) {
      this.openFiles.delete(to);
      await replaced.markUnlinked();
    }
    let info: NodeInfo = { ...src, etag, own: true };
    if (file && this.openFiles.get(from) === file) {
      this.openFiles.delete(from);
      await file.rebase(to, { etag, size: file.size });
      this.openFiles.set(to, file);
      info = { ...this.openFileInfo(file) };
    }
    this.mark(from);
    this.mark(to);
    this.cache.noteGone(from);
    this.cache.noteExists(to, info);
    this.inodes.rename(from, to, false);
    this.dirIndex?.forgetFile(from);
    if (src.meta && (src.foreign || copyOpts.attributes) && !(file && this.openFiles.get(to) === file && file.dirty)) {
      this.noteStored(to, etag, src.type === 'symlink' ? 0 : src.size, copyOpts.attributes ?? encodePosix(src.meta, src.foreign));
    }
  }

  private async renameDir(from: string, to: string, targetExists: boolean): Promise<void> {
    if (targetExists) {
      for (const f of this.openFiles.values()) if (isWithin(f.path, to)) throw new FsError('ENOTEMPTY');
      if (!(await this.isEmptyDir(to))) throw new FsError('ENOTEMPTY');
    }
    // Everything below `from` is stored first, so the listing is complete.
    for (const p of [...this.pendingMeta.keys()]) if (isWithin(p, from)) await this.flushMeta(p);
    for (const p of [...this.pendingMeta.keys()]) if (isWithin(p, to)) await this.dropMeta(p);
    for (const f of [...this.openFiles.values()]) if (isWithin(f.path, from)) await this.liveFile(f.path);
    for (const f of [...this.openFiles.values()]) {
      if (isWithin(f.path, from) && f.dirty) await this.commit(f, () => f.flush());
    }
    const files: EntryInfo[] = [];
    const markers: string[] = [];
    for await (const page of this.engine.listAll(from, { recursive: true })) {
      files.push(...page.files);
      for (const d of page.dirs) markers.push(d.replace(/\/+$/, ''));
    }
    const copied: string[] = [];
    const etags = new Map<string, string>();
    await this.dirIndex?.cancel(from);
    // Directory attributes move with their markers; the indexes do not (they are bound to the old
    // keys) and are rebuilt by later lookups.
    const moveMarker = async (dir: string) => {
      const attrs = await this.engine.dirAttributes(dir);
      const dst = rebase(dir, from, to);
      await this.engine.mkdirMarker(dst, { attributes: attrs && Object.keys(attrs).length ? attrs : undefined });
      if (dst === to && this.writableIndex) this.dirIndex!.noteDir(to, attrs ?? {});
    };
    try {
      await moveMarker(from);
      await runLimited(markers, COPY_CONCURRENCY, moveMarker);
      await runLimited(files, COPY_CONCURRENCY, async (f) => {
        const dst = rebase(f.path, from, to);
        const { etag } = await this.engine.copy(f.path, dst);
        copied.push(dst);
        etags.set(dst, etag);
      });
    } catch (err) {
      // Leave the source intact; remove what was copied so far (best effort).
      if (copied.length) await this.engine.deleteMany(copied).catch(() => {});
      this.cache.noteGone(to, true);
      throw err;
    }
    if (files.length) {
      const { errors } = await this.engine.deleteMany(files.map((f) => f.path));
      if (errors.length) throw new FsError('EIO', `rename: could not delete ${errors.length} source objects (first: ${errors[0].path}: ${errors[0].message})`);
    }
    await runLimited(markers, COPY_CONCURRENCY, (m) => this.engine.removeDirMarker(m));
    await this.engine.removeDirMarker(from);
    // Open files below the directory follow it.
    for (const f of [...this.openFiles.values()]) {
      if (!isWithin(f.path, from)) continue;
      const dst = rebase(f.path, from, to);
      this.openFiles.delete(f.path);
      await f.rebase(dst, f.uncommitted ? null : { etag: etags.get(dst) ?? f.etag ?? '', size: f.size });
      this.openFiles.set(dst, f);
    }
    for (const p of [...this.dirMeta.keys()]) {
      if (!isWithin(p, from)) continue;
      const m = this.dirMeta.get(p)!;
      this.dirMeta.delete(p);
      this.dirMeta.set(rebase(p, from, to), m);
    }
    this.mark(from);
    this.mark(to);
    this.cache.noteGone(from, true);
    this.cache.attrs.deleteWhere((k) => isWithin(k, to));
    this.cache.dirs.deleteWhere((k) => isWithin(k, to));
    this.cache.negative.deleteWhere((k) => isWithin(k, to));
    this.cache.noteExists(to, { type: 'dir', size: 0, own: true });
    this.inodes.rename(from, to);
  }
}

async function runLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (failure === null && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        failure ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== null) throw failure;
}

/** What a file's stored attributes say it is (a symlink is an empty object with a target). */
function fileInfo(size: number, etag: string, lastModified: Date, attrs: Record<string, string>, fetchedAt = Date.now()): NodeInfo {
  const meta = decodePosix(attrs);
  const type: NodeType = meta.type === 'symlink' && meta.target !== undefined ? 'symlink' : 'file';
  return {
    type,
    size: type === 'symlink' ? Buffer.byteLength(meta.target!, 'utf8') : size,
    etag,
    lastModified,
    meta,
    foreign: foreignAttributes(attrs),
    fetchedAt,
  };
}
