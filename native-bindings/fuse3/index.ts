/**
 * FUSE binding over our own N-API addon for libfuse3's low-level API (src/fuse3.c).
 *
 * The addon reads requests from /dev/fuse on the Node event loop and hands each to `dispatch()`
 * here; we answer it when the filesystem's promise settles. Nothing blocks a thread, requests are up
 * to 1 MiB, and every request is answered exactly once (the addon refuses a second reply).
 *
 * The kernel names files by inode number; src/fs is path-based. The InodeTable (inodes.ts) maps
 * between them and counts lookups (readdirplus and lookup take references, FORGET drops them).
 * File handles given to the kernel are 64-bit values of our own (above 2^32, JS safe integers) that
 * map to src/fs's handles.
 *
 * What this fixes compared with fuse-native (docs/semantics.md, "FUSE bindings"): utimens sets atime
 * and mtime separately with nanoseconds (and UTIME_NOW / UTIME_OMIT), stat times have nanoseconds,
 * requests up to 1 MiB, readdirplus, 64-bit handles, interrupts, no thread per request, and a plain
 * (not lazy) unmount.
 */
import { execFile } from 'node:child_process';
import { constants as fsc } from 'node:fs';
import { access, readFile, realpath, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { lend, reclaim } from '../../src/engine/lease.js';
import type { FsStat } from '../../src/fs/types.js';
import { checkMountpoint } from '../fuse-native/index.js';
import { MountError, type FsOperations, type FuseBinding, type MountHandle, type MountOptions } from '../types.js';
import { InodeTable, joinPath, parentPath, ROOT_INO, S_IFMT, type Inode } from './inodes.js';
import { A, F, loadAddon, OpenReplyFlags, type NativeAddon, type NativeSession, type NativeStats, type OpName } from './native.js';
import { WriteBuffers } from './write-buffers.js';

const execFileP = promisify(execFile);

const MiB = 1024 * 1024;
/** About what the engine's writer holds of lent write data while sealing it (its STAGE_LIMIT + a run). */
const LENT_BYTES = 3 * MiB;
export const DEFAULT_MAX_WRITE = MiB;
export const DEFAULT_KERNEL_READAHEAD_KIB = 1024;
const MOUNT_TIMEOUT_MS = 30_000;
const UNMOUNT_WAIT_MS = 10_000;
/** Kernel file handles start above 2^32: they are 64-bit values all the way through. */
export const FIRST_HANDLE = 2 ** 32 + 1;

const E = { EPERM: 1, ENOENT: 2, EINTR: 4, EIO: 5, EBADF: 9, EEXIST: 17, ENOTDIR: 20, EINVAL: 22, ESTALE: 116 } as const;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const RENAME_NOREPLACE = 1;
const O_ACCMODE = 3;

export interface Fuse3MountOptions extends MountOptions {
  /** Largest read the kernel asks for in one request (readahead window). Default = maxWrite. */
  maxReadahead?: number;
  /**
   * The kernel's readahead for this mount (its bdi's read_ahead_kb), in KiB. FUSE mounts start at
   * 128 KiB, so a sequential read reaches us as 128 KiB requests; 1024 lets the kernel send 1 MiB
   * requests (fewer round trips through the daemon). Needs root (sysfs); otherwise left as it is.
   * Default 1024; 0 leaves the kernel's default.
   */
  kernelReadaheadKiB?: number;
  /** Called with every request's op name (tests count lookups this way). */
  onRequest?: (op: OpName) => void;
  /**
   * readdirplus hands the kernel the attributes a directory listing gives for files whose sealed
   * attributes were not read yet (type and size exact; mode, owner and times defaults or the object's
   * date) instead of letting it look each one up. `ls -l` of a cold directory then costs no HEAD per
   * file, but stat() shows those approximations until the kernel's attribute cache expires. Off by
   * default: such entries go without attributes and the kernel looks them up (exact, one HEAD each).
   */
  listingAttributes?: boolean;
  /**
   * Write-behind: a write is answered as soon as it is queued, while earlier ones are still being
   * applied (encrypted), so the writer's next request overlaps with our work. At most this many bytes
   * are queued per mount (default 8 MiB; 0 = answer every write once applied). Writes of an inode are
   * applied in order, and every other request on that inode (getattr, setattr, read, flush, fsync,
   * release, lookup, open, rename, unlink) waits until its queued writes are applied. A failed queued
   * write is reported by the next write, flush (close) or fsync of the file, as on NFS.
   */
  writeBehindBytes?: number;
}

/** src/fs keeps a metadata cache; an entry whose sealed attributes it holds has an exact stat. */
interface AttrCacheProbe {
  cache?: { attrs: { get(path: string): { type: string; meta?: unknown } | undefined } };
}

/** What tests and benchmarks can see of a live mount. */
export interface Fuse3MountHandle extends MountHandle {
  readonly binding: 'fuse3';
  stats(): Fuse3Stats;
  /** Resolves when the kernel connection is gone (unmounted by anyone). */
  readonly ended: Promise<void>;
  /** False once the kernel connection is gone. */
  connected(): Promise<boolean>;
}

export interface Fuse3Stats extends NativeStats {
  inodes: number;
  referencedInodes: number;
  handles: number;
  maxHandle: number;
  kernelWant: number;
}

interface FileHandle {
  kind: 'file';
  inode: Inode;
  fsFh: number;
  path: string;
}

interface DirHandle {
  kind: 'dir';
  inode: Inode;
  path: string;
  names: string[] | null;
  stats: FsStat[] | null;
  attrs: Float64Array | null;
}

type Handle = FileHandle | DirHandle;

/** The queued (answered, not yet applied) writes of one inode. */
interface WriteQueue {
  tail: Promise<void>;
  count: number;
  /** The first failure of a write already answered: reported by the next write/flush/fsync. */
  error: unknown;
}

const DEFAULT_WRITE_BEHIND = 8 * MiB;

/** `fs.read` with an optional AbortSignal (src/fs may accept one; extra arguments are ignored otherwise). */
type ReadWithSignal = (path: string, fh: number, length: number, offset: number, signal?: AbortSignal) => Promise<Buffer | Buffer[]>;
/** The addon's limit on the parts of one read reply. */
const REPLY_PARTS_MAX = 64;

export class Fuse3Binding implements FuseBinding {
  readonly name = 'fuse3';

  async unavailableReason(): Promise<string | null> {
    try {
      await access('/dev/fuse', fsc.R_OK | fsc.W_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      return code === 'ENOENT'
        ? '/dev/fuse does not exist (load the fuse kernel module; in a container, pass --device /dev/fuse --cap-add SYS_ADMIN)'
        : `/dev/fuse is not accessible (${code})`;
    }
    try {
      loadAddon();
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      return /libfuse3\.so/.test(msg) ? 'libfuse3 is not installed (Debian/Ubuntu: apt-get install fuse3)' : msg.split('\n')[0];
    }
    // libfuse3 runs fusermount3 to mount as a user and, for every user, to unmount when we die (auto_unmount).
    if (!(await findFusermount3())) return 'fusermount is not installed (fusermount3; Debian/Ubuntu: apt-get install fuse3)';
    return null;
  }

  async mount(mountpoint: string, fs: FsOperations, options: Fuse3MountOptions): Promise<Fuse3MountHandle> {
    const reason = await this.unavailableReason();
    if (reason) throw new MountError('FUSE_UNAVAILABLE', `FUSE is not available: ${reason}`);
    const mnt = path.resolve(mountpoint);
    await checkMountpoint(mnt);
    const mount = new Fuse3Mount(loadAddon(), mnt, fs, options);
    await mount.start();
    return mount.handle();
  }

  releaseFreeMemory(): void {
    loadAddon().trimMalloc();
  }
}

async function findFusermount3(): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    const p = path.join(dir, 'fusermount3');
    try {
      await access(p, fsc.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return null;
}

/** The mount's device ("0:42") from /proc/self/mountinfo; null when not found. */
export async function mountDevice(mnt: string): Promise<string | null> {
  const info = await readFile('/proc/self/mountinfo', 'utf8').catch(() => '');
  // Fields: id parent major:minor root mountpoint ...; the mount point escapes space, tab, \n and \\ as octal.
  const unescape = (f: string) => f.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  let dev: string | null = null;
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    if (f.length > 4 && unescape(f[4]) === mnt) dev = f[2]; // the last one listed is the one on top
  }
  return dev;
}

/** Best effort: sets read_ahead_kb of the mount's bdi (root only). Returns whether it took. */
export async function setKernelReadahead(mnt: string, kib: number): Promise<boolean> {
  // mountinfo lists the path with symlinks resolved; the parent's is enough (no lookup in our own mount).
  const real = await realpath(path.dirname(mnt)).then((d) => path.join(d, path.basename(mnt)), () => mnt);
  const dev = await mountDevice(real);
  if (!dev || !/^\d+:\d+$/.test(dev)) return false;
  return writeFile(`/sys/class/bdi/${dev}/read_ahead_kb`, String(Math.floor(kib))).then(() => true, () => false);
}

/** libfuse splits options at "," and treats "\" as an escape: keep both out of free text. */
/** Large write data arrives as a Uint8Array view of a pooled receive block; the fs layer takes Buffers. */
function asBuffer(d: Uint8Array): Buffer {
  return Buffer.isBuffer(d) ? d : Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

function sanitizeOption(s: string): string {
  return s.replace(/[,\\\s]/g, '_').slice(0, 200);
}

function errnoOf(err: unknown): number {
  const n = (err as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' && n > 0 && n < 4096 ? n : E.EIO;
}

const NS = 1_000_000_000n;

/** Writes one attribute record (st with inode number `ino`) at `o`. */
export function putAttr(a: Float64Array, o: number, ino: number, st: FsStat, blksize: number): void {
  a[o + A.INO] = ino;
  a[o + A.MODE] = st.mode;
  a[o + A.NLINK] = st.nlink;
  a[o + A.UID] = st.uid;
  a[o + A.GID] = st.gid;
  a[o + A.SIZE] = st.size;
  a[o + A.BLOCKS] = st.blocks;
  a[o + A.BLKSIZE] = blksize;
  putTime(a, o + A.ATIME_S, st.atimeNs);
  putTime(a, o + A.MTIME_S, st.mtimeNs);
  putTime(a, o + A.CTIME_S, st.ctimeNs);
}

/** Seconds (floor) and nanoseconds (0..999999999) of a nanosecond timestamp. */
export function splitNs(ns: bigint): [number, number] {
  let s = ns / NS;
  let r = ns - s * NS;
  if (r < 0n) {
    s -= 1n;
    r += NS;
  }
  return [Number(s), Number(r)];
}

function putTime(a: Float64Array, o: number, ns: bigint): void {
  const [s, n] = splitNs(ns);
  a[o] = s;
  a[o + 1] = n;
}

function joinNs(s: number, n: number): bigint {
  return BigInt(s) * NS + BigInt(n);
}

class Fuse3Mount {
  private session!: NativeSession;
  private readonly scratch = new Float64Array(64);
  private readonly inodes = new InodeTable();
  private readonly handles = new Map<number, Handle>();
  private nextHandle = FIRST_HANDLE;
  private maxHandle = 0;
  /** Requests that stop waiting on an interrupt (read-only ops), with their AbortController. */
  private readonly abortable = new Map<number, AbortController>();
  private readonly queues = new Map<Inode, WriteQueue>();
  private queuedBytes = 0;
  private readonly writeBehind: number;
  private readonly attrTimeout: number;
  private readonly entryTimeout: number;
  private readonly maxWrite: number;
  private readonly writeBuffers: WriteBuffers;
  private readonly OP: Record<OpName, number>;
  private readonly opNames: OpName[];
  private readonly setattrBits: Record<string, number>;
  private kernelWant = 0;
  private initResolve!: () => void;
  private readonly initDone: Promise<void>;
  private endResolve!: () => void;
  readonly ended: Promise<void>;
  private endedFlag = false;

  constructor(
    private readonly addon: NativeAddon,
    readonly mnt: string,
    private readonly fs: FsOperations,
    private readonly options: Fuse3MountOptions,
  ) {
    this.attrTimeout = options.kernelAttrTimeoutSec ?? 1;
    this.entryTimeout = options.kernelEntryTimeoutSec ?? 1;
    this.maxWrite = Math.min(Math.max(options.maxWrite ?? DEFAULT_MAX_WRITE, 4096), MiB);
    this.writeBehind = Math.max(0, options.writeBehindBytes ?? DEFAULT_WRITE_BEHIND);
    // The addon reads each request into one of these blocks (max_write plus room for the headers)
    // and hands a large write's data over as a view of it. A full write-behind queue's worth, what
    // the engine's writer holds while sealing lent blocks, and the block being read into stay
    // resident: with fewer, a sequential writer's queue filling and draining threw blocks away and
    // allocated fresh ones (page faults in the kernel's copy into them, about 1 in 5 requests with 4 kept).
    const block = this.maxWrite + (addon.constants.RECEIVE_HEADROOM ?? 4096);
    this.writeBuffers = new WriteBuffers(block, Math.ceil((this.writeBehind + LENT_BYTES) / this.maxWrite) + 2);
    this.OP = addon.ops;
    this.opNames = [];
    for (const [name, n] of Object.entries(addon.ops)) this.opNames[n] = name as OpName;
    this.setattrBits = addon.constants;
    this.initDone = new Promise((resolve) => (this.initResolve = resolve));
    this.ended = new Promise((resolve) => (this.endResolve = resolve));
  }

  async start(): Promise<void> {
    const o = this.options;
    const opts = [`fsname=${sanitizeOption(o.fsName ?? 's3cryptfs')}`, 'subtype=s3cryptfs'];
    if (o.allowOther) opts.push('allow_other');
    if (o.defaultPermissions ?? !!o.allowOther) opts.push('default_permissions');
    if (o.readOnly) opts.push('ro');
    if (o.autoUnmount ?? true) opts.push('auto_unmount');
    const args = ['-o', opts.join(',')];
    if (o.debug) args.push('-d');
    const maxBackground = o.maxBackground ?? 64;
    try {
      this.session = this.addon.mount(this.mnt, args, {
        maxWrite: this.maxWrite,
        maxReadahead: o.maxReadahead ?? this.maxWrite,
        maxBackground,
        congestionThreshold: Math.max(1, Math.floor((maxBackground * 3) / 4)),
        writeback: !!o.writeback,
        readdirplus: true,
        debug: !!o.debug,
      }, (op, id, ...args) => this.dispatch(op, id, args), this.scratch, (size) => this.writeBuffers.take(size));
    } catch (err) {
      const msg = (err as Error).message;
      throw new MountError(/busy|already mounted/i.test(msg) ? 'MOUNTPOINT_BUSY' : 'MOUNT_FAILED', `mounting ${this.mnt} failed: ${msg.trim()}`, { cause: err });
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new MountError('MOUNT_FAILED', `mounting ${this.mnt} timed out (no INIT from the kernel)`)), MOUNT_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.initDone, timeout]);
    } catch (err) {
      this.session.close();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    const ra = o.kernelReadaheadKiB ?? DEFAULT_KERNEL_READAHEAD_KIB;
    if (ra > 0) await setKernelReadahead(this.mnt, ra);
  }

  handle(): Fuse3MountHandle {
    const self = this;
    let unmounted = false;
    return {
      binding: 'fuse3',
      mountpoint: this.mnt,
      ended: this.ended,
      stats: () => this.stats(),
      connected: async () => !this.endedFlag,
      async unmount(opts: { lazy?: boolean } = {}) {
        if (unmounted) return;
        if (self.endedFlag) {
          unmounted = true;
          return;
        }
        const bin = (await findFusermount3()) ?? 'fusermount3';
        try {
          await execFileP(bin, opts.lazy ? ['-u', '-z', self.mnt] : ['-u', self.mnt]);
        } catch (err) {
          if (!self.endedFlag) {
            const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
            throw new MountError('MOUNTPOINT_BUSY', `cannot unmount ${self.mnt}: ${stderr || (err as Error).message}`, { cause: err });
          }
        }
        unmounted = true;
        if (opts.lazy) return; // keep serving open files until the kernel lets go (then 'ended')
        // The kernel closes the connection once the unmount is through: wait for it, then close.
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([self.ended, new Promise((r) => (timer = setTimeout(r, UNMOUNT_WAIT_MS)))]);
        clearTimeout(timer);
        self.end();
      },
    };
  }

  stats(): Fuse3Stats {
    return {
      ...this.session.stats(),
      inodes: this.inodes.size,
      referencedInodes: this.inodes.referenced,
      handles: this.handles.size,
      maxHandle: this.maxHandle,
      kernelWant: this.kernelWant,
    };
  }

  private end(): void {
    if (this.endedFlag) return;
    this.endedFlag = true;
    this.session.close();
    for (const c of this.abortable.values()) c.abort();
    this.abortable.clear();
    this.endResolve();
  }

  // ---------------------------------------------------------------------------------------------

  private dispatch(op: number, id: number, a: unknown[]): void {
    const OP = this.OP;
    this.options.onRequest?.(this.opNames[op]);
    switch (op) {
      case OP.getattr: return this.run(op, id, this.getattr(id, a[0] as number, a[1] as number));
      case OP.lookup: return this.run(op, id, this.lookup(id, a[0] as number, a[1] as string), true);
      case OP.forget: return this.inodes.forget(a[0] as number, a[1] as number);
      case OP.readdirplus:
      case OP.readdir: return this.run(op, id, this.readdir(id, a[1] as number, a[2] as number, a[3] as number, op === OP.readdirplus), true);
      case OP.read: return this.read(id, a[1] as number, a[2] as number, a[3] as number);
      case OP.write: return this.run(op, id, this.write(id, a[1] as number, asBuffer(a[2] as Uint8Array), a[3] as number));
      case OP.open: return this.run(op, id, this.open(id, a[0] as number, a[1] as number), true);
      case OP.flush: return this.run(op, id, this.withFile(a[1] as number, async (h) => {
        await this.applied(h.inode, true);
        await this.fs.flush(h.path, h.fsFh);
      }).then(() => this.ok(id)));
      case OP.release: return this.run(op, id, this.release(id, a[1] as number));
      case OP.fsync: return this.run(op, id, this.withFile(a[1] as number, async (h) => {
        await this.applied(h.inode, true);
        await this.fs.fsync(h.path, h.fsFh, !!a[2]);
      }).then(() => this.ok(id)));
      case OP.setattr: return this.run(op, id, this.setattr(id, a as number[]));
      case OP.readlink: return this.run(op, id, this.readlink(id, a[0] as number), true);
      case OP.mknod: return this.run(op, id, this.mknod(id, a[0] as number, a[1] as string, a[2] as number, a[3] as number));
      case OP.mkdir: return this.run(op, id, this.mkdir(id, a[0] as number, a[1] as string, a[2] as number));
      case OP.unlink: return this.run(op, id, this.remove(id, a[0] as number, a[1] as string, false));
      case OP.rmdir: return this.run(op, id, this.remove(id, a[0] as number, a[1] as string, true));
      case OP.symlink: return this.run(op, id, this.symlink(id, a[0] as number, a[1] as string, a[2] as string));
      case OP.rename: return this.run(op, id, this.rename(id, a[0] as number, a[1] as string, a[2] as number, a[3] as string, a[4] as number));
      case OP.link: return this.run(op, id, this.link(id, a[0] as number, a[1] as number, a[2] as string));
      case OP.opendir: return this.run(op, id, this.opendir(id, a[0] as number), true);
      case OP.releasedir: return this.releasedir(id, a[1] as number);
      case OP.fsyncdir: return this.run(op, id, this.fs.fsyncdir(this.pathOf(a[0] as number)).then(() => this.ok(id)));
      case OP.statfs: return this.run(op, id, this.statfs(id, a[0] as number), true);
      case OP.access: return this.run(op, id, this.fs.access(this.pathOf(a[0] as number), a[1] as number).then(() => this.ok(id)), true);
      case OP.create: return this.run(op, id, this.create(id, a[0] as number, a[1] as string, a[2] as number, a[3] as number));
      case OP.interrupt: return this.interrupt(id);
      case OP.init:
        this.kernelWant = a[3] as number;
        this.initResolve();
        return;
      case OP.ended: return this.end();
      default:
        this.session.replyErr(id, 38 /* ENOSYS */);
    }
  }

  /**
   * Runs one request: `work` replies on success; a rejection is answered with its errno. Read-only
   * requests (`abortable`) stop waiting when the kernel interrupts them.
   */
  private run(op: number, id: number, work: Promise<unknown>, abortable = false): void {
    if (abortable) this.abortable.set(id, new AbortController());
    work.then(
      () => {
        if (abortable) this.abortable.delete(id);
      },
      (err: unknown) => {
        if (abortable) this.abortable.delete(id);
        const errno = errnoOf(err);
        if (this.session.replyErr(id, errno) && errno !== E.ENOENT) this.options.onOpError?.(this.opNames[op], '', errno, err);
      },
    );
  }

  private interrupt(id: number): void {
    const ctl = this.abortable.get(id);
    if (!ctl) return; // a request that changes something: let it finish, the kernel waits for it
    this.abortable.delete(id);
    ctl.abort();
    this.session.replyErr(id, E.EINTR);
  }

  private ok(id: number): void {
    this.session.replyErr(id, 0);
  }

  /**
   * Resolves once the writes queued for `node` so far are applied. With `report`, a failure of one
   * of them that was not reported yet is thrown (once).
   */
  private async applied(node: Inode | undefined, report = false): Promise<void> {
    const q = node && this.queues.get(node);
    if (!q) return;
    await q.tail;
    if (report && q.error !== null) {
      const err = q.error;
      q.error = null;
      if (q.count === 0) this.queues.delete(node);
      throw err;
    }
  }

  private inode(ino: number): Inode {
    const node = this.inodes.get(ino);
    if (!node) throw Object.assign(new Error(`unknown inode ${ino}`), { errno: E.ESTALE });
    return node;
  }

  private pathOf(ino: number): string {
    return this.inode(ino).path;
  }

  /** The path for a name in a directory the kernel knows. */
  private child(parent: number, name: string): string {
    const dir = this.inode(parent);
    if (dir.detached) throw Object.assign(new Error('directory was removed'), { errno: E.ENOENT });
    return joinPath(dir.path, name);
  }

  private allocHandle(h: Handle): number {
    let fh = this.nextHandle;
    while (this.handles.has(fh)) fh = fh >= Number.MAX_SAFE_INTEGER ? FIRST_HANDLE : fh + 1;
    this.nextHandle = fh >= Number.MAX_SAFE_INTEGER ? FIRST_HANDLE : fh + 1;
    this.handles.set(fh, h);
    if (fh > this.maxHandle) this.maxHandle = fh;
    return fh;
  }

  private fileHandle(fh: number): FileHandle {
    const h = this.handles.get(fh);
    if (!h || h.kind !== 'file') throw Object.assign(new Error(`no file handle ${fh}`), { errno: E.EBADF });
    return h;
  }

  private async withFile<T>(fh: number, fn: (h: FileHandle) => Promise<T>): Promise<T> {
    return fn(this.fileHandle(fh));
  }

  /** Attributes of an inode: through an open handle when there is one (unlinked-but-open files). */
  private async statOf(node: Inode, fh = -1): Promise<FsStat> {
    const h = fh >= 0 ? this.handles.get(fh) : undefined;
    if (h && h.kind === 'file') return this.fs.fgetattr(h.path, h.fsFh);
    if (node.detached && node.open > 0) {
      for (const other of this.handles.values()) {
        if (other.kind === 'file' && other.inode === node) return this.fs.fgetattr(other.path, other.fsFh);
      }
    }
    if (node.detached) throw Object.assign(new Error('stale inode'), { errno: E.ENOENT });
    return this.fs.getattr(node.path);
  }

  private replyEntry(id: number, path: string, st: FsStat): void {
    const node = this.inodes.ensure(path, st.mode);
    putAttr(this.scratch, 0, node.ino, st, this.maxWrite);
    if (this.session.replyEntry(id, this.entryTimeout, this.attrTimeout)) this.inodes.ref(node);
  }

  // ---------------------------------------------------------------------------------------------

  private async getattr(id: number, ino: number, fh: number): Promise<void> {
    const node = this.inode(ino);
    await this.applied(node);
    const st = await this.statOf(node, fh);
    putAttr(this.scratch, 0, ino, st, this.maxWrite);
    this.session.replyAttr(id, this.attrTimeout);
  }

  private async lookup(id: number, parent: number, name: string): Promise<void> {
    const p = this.child(parent, name);
    await this.applied(this.inodes.peek(p));
    const st = await this.fs.getattr(p);
    this.replyEntry(id, p, st);
  }

  private async setattr(id: number, a: number[]): Promise<void> {
    const [ino, valid, fh, mode, uid, gid, size, as, ans, ms, mns] = a;
    const c = this.setattrBits;
    const node = this.inode(ino);
    await this.applied(node);
    const p = node.path;
    const h = fh >= 0 ? this.handles.get(fh) : undefined;
    const file = h && h.kind === 'file' ? h : undefined;
    if (valid & c.FUSE_SET_ATTR_MODE) await this.fs.chmod(p, mode);
    if (valid & (c.FUSE_SET_ATTR_UID | c.FUSE_SET_ATTR_GID)) {
      await this.fs.chown(p, valid & c.FUSE_SET_ATTR_UID ? uid : -1, valid & c.FUSE_SET_ATTR_GID ? gid : -1);
    }
    if (valid & c.FUSE_SET_ATTR_SIZE) {
      if (file) await this.fs.ftruncate(file.path, file.fsFh, size);
      else await this.fs.truncate(p, size);
    }
    const at = valid & c.FUSE_SET_ATTR_ATIME_NOW ? 'now' : valid & c.FUSE_SET_ATTR_ATIME ? joinNs(as, ans) : 'omit';
    const mt = valid & c.FUSE_SET_ATTR_MTIME_NOW ? 'now' : valid & c.FUSE_SET_ATTR_MTIME ? joinNs(ms, mns) : 'omit';
    if (at !== 'omit' || mt !== 'omit') await this.fs.utimens(p, at, mt);
    const st = await this.statOf(node, fh);
    putAttr(this.scratch, 0, ino, st, this.maxWrite);
    this.session.replyAttr(id, this.attrTimeout);
  }

  private async readlink(id: number, ino: number): Promise<void> {
    const target = await this.fs.readlink(this.pathOf(ino));
    this.session.replyReadlink(id, target);
  }

  private async mknod(id: number, parent: number, name: string, mode: number, rdev: number): Promise<void> {
    const p = this.child(parent, name);
    if ((mode & S_IFMT) === S_IFREG) {
      const fsFh = await this.fs.create(p, mode & 0o7777, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL);
      await this.fs.release(p, fsFh);
    } else {
      await this.fs.mknod(p, mode, rdev);
    }
    this.replyEntry(id, p, await this.fs.getattr(p));
  }

  private async mkdir(id: number, parent: number, name: string, mode: number): Promise<void> {
    const p = this.child(parent, name);
    await this.fs.mkdir(p, mode & 0o7777);
    this.replyEntry(id, p, await this.fs.getattr(p));
  }

  private async remove(id: number, parent: number, name: string, dir: boolean): Promise<void> {
    const p = this.child(parent, name);
    await this.applied(this.inodes.peek(p));
    if (dir) await this.fs.rmdir(p);
    else await this.fs.unlink(p);
    this.inodes.removed(p);
    this.ok(id);
  }

  private async symlink(id: number, parent: number, name: string, target: string): Promise<void> {
    const p = this.child(parent, name);
    await this.fs.symlink(target, p);
    this.replyEntry(id, p, await this.fs.getattr(p));
  }

  private async rename(id: number, parent: number, name: string, newParent: number, newName: string, flags: number): Promise<void> {
    if (flags & ~RENAME_NOREPLACE) throw Object.assign(new Error('RENAME_EXCHANGE / RENAME_WHITEOUT are not supported'), { errno: E.EINVAL });
    const from = this.child(parent, name);
    const to = this.child(newParent, newName);
    await this.applied(this.inodes.peek(from));
    await this.applied(this.inodes.peek(to));
    if (flags & RENAME_NOREPLACE) {
      const exists = await this.fs.getattr(to).then(() => true, (err: unknown) => {
        if (errnoOf(err) === E.ENOENT) return false;
        throw err;
      });
      if (exists) throw Object.assign(new Error('target exists'), { errno: E.EEXIST });
    }
    await this.fs.rename(from, to);
    this.inodes.renamed(from, to);
    for (const h of this.handles.values()) {
      if (h.path === from || h.path.startsWith(from + '/')) h.path = h.inode.path;
    }
    this.ok(id);
  }

  private async link(id: number, ino: number, newParent: number, newName: string): Promise<void> {
    const p = this.child(newParent, newName);
    await this.fs.link(this.pathOf(ino), p);
    this.replyEntry(id, p, await this.fs.getattr(p));
  }

  private async open(id: number, ino: number, flags: number): Promise<void> {
    const node = this.inode(ino);
    await this.applied(node);
    let f = flags;
    // With the writeback cache the kernel reads pages around partial writes, and appends itself.
    if (this.options.writeback) {
      if ((f & O_ACCMODE) === fsc.O_WRONLY) f = (f & ~O_ACCMODE) | fsc.O_RDWR;
      f &= ~fsc.O_APPEND;
    }
    const p = node.path;
    const fsFh = await this.fs.open(p, f);
    const h: FileHandle = { kind: 'file', inode: node, fsFh, path: p };
    const fh = this.allocHandle(h);
    this.inodes.opened(node);
    if (!this.session.replyOpen(id, fh, this.openReplyFlags(flags, false))) {
      // Interrupted while opening: nobody will release this handle but us.
      this.handles.delete(fh);
      this.inodes.closed(node);
      await this.fs.release(p, fsFh);
    }
  }

  /**
   * O_DIRECT: no page cache for this descriptor; its reads are synchronous requests (interruptible).
   * A write-only descriptor that starts the content afresh (O_TRUNC, or a new file: cp, dd, tar,
   * rsync, `>`) skips the page cache too, unless the writeback cache is on: a buffered FUSE write
   * copies every page into the cache before the request goes out, measured 3-4x slower per MiB here
   * (bench:native). Nothing reads or maps through a write-only descriptor, and truncation dropped the
   * file's cached pages; docs/semantics.md has the one window this leaves (other readers).
   */
  private openReplyFlags(flags: number, created: boolean): number {
    if (flags & fsc.O_DIRECT) return OpenReplyFlags.DIRECT_IO;
    const fresh = created || (flags & fsc.O_TRUNC) !== 0;
    if ((flags & O_ACCMODE) === fsc.O_WRONLY && fresh && !this.options.writeback) return OpenReplyFlags.DIRECT_IO;
    return 0;
  }

  private async create(id: number, parent: number, name: string, mode: number, flags: number): Promise<void> {
    const p = this.child(parent, name);
    let f = flags;
    if (this.options.writeback) {
      if ((f & O_ACCMODE) === fsc.O_WRONLY) f = (f & ~O_ACCMODE) | fsc.O_RDWR;
      f &= ~fsc.O_APPEND;
    }
    const fsFh = await this.fs.create(p, mode & 0o7777, f);
    const st = await this.fs.fgetattr(p, fsFh);
    const node = this.inodes.ensure(p, st.mode || S_IFREG);
    const fh = this.allocHandle({ kind: 'file', inode: node, fsFh, path: p });
    this.inodes.opened(node);
    putAttr(this.scratch, 0, node.ino, st, this.maxWrite);
    if (this.session.replyCreate(id, fh, this.openReplyFlags(flags, true), this.entryTimeout, this.attrTimeout)) {
      this.inodes.ref(node);
    } else {
      this.handles.delete(fh);
      this.inodes.closed(node);
      await this.fs.release(p, fsFh);
    }
  }

  private read(id: number, fh: number, size: number, offset: number): void {
    const ctl = new AbortController();
    this.abortable.set(id, ctl);
    let h: FileHandle;
    try {
      h = this.fileHandle(fh);
    } catch (err) {
      this.abortable.delete(id);
      this.session.replyErr(id, errnoOf(err));
      return;
    }
    const file = h;
    const pending = this.queues.get(h.inode);
    // Parts (views of cached chunks) go out as one writev: no joined copy of each read.
    const readFn = (this.fs.readParts ?? this.fs.read).bind(this.fs) as ReadWithSignal;
    const reading = pending
      ? this.applied(h.inode).then(() => readFn(file.path, file.fsFh, size, offset, ctl.signal))
      : readFn(h.path, h.fsFh, size, offset, ctl.signal);
    reading.then(
      (data) => {
        this.abortable.delete(id);
        const parts = Array.isArray(data) ? data : [data];
        if (parts.length > REPLY_PARTS_MAX) {
          const joined = Buffer.concat(parts);
          this.session.replyBuf(id, joined, Math.min(size, joined.length));
        } else {
          this.session.replyBuf(id, parts, Math.min(size, parts.reduce((n, p) => n + p.length, 0)));
        }
      },
      (err: unknown) => {
        this.abortable.delete(id);
        const errno = errnoOf(err);
        if (this.session.replyErr(id, errno)) this.options.onOpError?.('read', h.path, errno, err);
      },
    );
  }

  /**
   * Applies a write; answers it at once (write-behind) while fewer than writeBehindBytes are queued,
   * else once applied. Writes of one inode are applied in order. `data` may be a pooled block: it is
   * given back once the filesystem is done with it (applied, failed or skipped; or, lent to the
   * engine's writer, once sealed), never before.
   */
  private async write(id: number, fh: number, data: Buffer, offset: number): Promise<void> {
    let h: FileHandle;
    try {
      h = this.fileHandle(fh);
    } catch (err) {
      this.writeBuffers.give(data);
      throw err;
    }
    const node = h.inode;
    let q = this.queues.get(node);
    if (q && q.error !== null) {
      this.writeBuffers.give(data);
      return this.applied(node, true);
    }
    const early = this.queuedBytes + data.length <= this.writeBehind;
    if (!q && !early) {
      const n = await this.applyWrite(h, data, offset);
      this.session.replyWrite(id, n);
      return;
    }
    if (!q) {
      q = { tail: Promise.resolve(), count: 0, error: null };
      this.queues.set(node, q);
    }
    const queue = q;
    queue.count++;
    if (early) this.queuedBytes += data.length;
    // h.path is read when the write runs: a rename in between has updated it.
    let handedOver = false; // to applyWrite, which gives the block back
    const done = queue.tail.then(async () => {
      // After a failed queued write the rest of the queue is not applied: it fails the same way
      // (reported once, by this request if it was not answered yet).
      if (queue.error !== null) {
        const err = queue.error;
        if (!early) queue.error = null;
        throw err;
      }
      handedOver = true;
      const n = await this.applyWrite(h, data, offset);
      if (n !== data.length) throw Object.assign(new Error(`short write (${n} of ${data.length} bytes)`), { errno: E.EIO });
    });
    queue.tail = done.then(
      () => {},
      (err: unknown) => {
        if (early && queue.error === null) {
          queue.error = err;
          this.options.onOpError?.('write', h.path, errnoOf(err), err);
        }
      },
    ).finally(() => {
      if (!handedOver) this.writeBuffers.give(data); // skipped after a failure
      if (early) this.queuedBytes -= data.length;
      if (--queue.count === 0 && queue.error === null && this.queues.get(node) === queue) this.queues.delete(node);
    });
    if (early) {
      this.session.replyWrite(id, data.length);
      return;
    }
    await done;
    this.session.replyWrite(id, data.length);
  }

  /**
   * fs.write with the data lent (src/engine/lease.ts): the engine's writer may keep reading a pooled
   * block after the write settled, sealing it without a copy, and gives it back itself; else the
   * block comes back here once the write settled.
   */
  private async applyWrite(h: FileHandle, data: Buffer, offset: number): Promise<number> {
    lend(data, () => this.writeBuffers.give(data));
    try {
      return await this.fs.write(h.path, h.fsFh, data, offset);
    } finally {
      if (reclaim(data)) this.writeBuffers.give(data);
    }
  }

  private async release(id: number, fh: number): Promise<void> {
    const h = this.handles.get(fh);
    if (!h || h.kind !== 'file') return this.ok(id);
    this.handles.delete(fh);
    try {
      // Queued writes first; a failure among them was (or is now) reported by flush: the release
      // itself cannot report anything to the kernel.
      await this.applied(h.inode, true).catch(() => {});
      await this.fs.release(h.path, h.fsFh);
    } finally {
      this.inodes.closed(h.inode);
    }
    this.ok(id);
  }

  private async opendir(id: number, ino: number): Promise<void> {
    const node = this.inode(ino);
    const st = await this.statOf(node);
    if ((st.mode & S_IFMT) !== S_IFDIR) throw Object.assign(new Error('not a directory'), { errno: E.ENOTDIR });
    const h: DirHandle = { kind: 'dir', inode: node, path: node.path, names: null, stats: null, attrs: null };
    const fh = this.allocHandle(h);
    this.inodes.opened(node);
    if (!this.session.replyOpen(id, fh, 0)) {
      this.handles.delete(fh);
      this.inodes.closed(node);
    }
  }

  private releasedir(id: number, fh: number): void {
    const h = this.handles.get(fh);
    if (h && h.kind === 'dir') {
      this.handles.delete(fh);
      this.inodes.closed(h.inode);
    }
    this.ok(id);
  }

  /**
   * readdir / readdirplus: the listing is read at offset 0 and kept in the handle; each call packs
   * entries from `offset` (entry i has offset i + 1). For readdirplus every packed entry with a known
   * type takes a kernel reference, counted here.
   */
  private async readdir(id: number, fh: number, size: number, offset: number, plus: boolean): Promise<void> {
    const h = this.handles.get(fh);
    if (!h || h.kind !== 'dir') throw Object.assign(new Error(`no directory handle ${fh}`), { errno: E.EBADF });
    if (offset === 0 || !h.names) {
      const entries = await this.fs.readdir(h.path);
      h.names = entries.map((e) => e.name);
      h.stats = entries.map((e) => e.stat);
      h.attrs = new Float64Array(entries.length * A.STRIDE);
    }
    const names = h.names;
    const stats = h.stats!;
    const attrs = h.attrs!;
    if (offset >= names.length) return void this.session.replyDir(id, [], attrs, 0);
    // Every entry takes at least 24 bytes (readdir) or 152 (readdirplus): fill only what can fit.
    const end = Math.min(names.length, offset + Math.floor(size / (plus ? 152 : 24)) + 1);
    const dir = h.inode;
    const nodes: (Inode | null)[] = [];
    for (let i = offset; i < end; i++) {
      const name = names[i];
      const st = stats[i];
      let node: Inode | null = null;
      let num: number;
      if (name === '.') num = dir.ino;
      else if (name === '..') num = dir.ino === ROOT_INO ? ROOT_INO : this.inodes.peek(parentPath(dir.path))?.ino ?? ROOT_INO;
      else {
        node = this.inodes.ensure(joinPath(h.path, name), st.mode);
        num = node.ino;
      }
      nodes.push(node);
      putAttr(attrs, i * A.STRIDE, num, st, this.maxWrite);
      attrs[i * A.STRIDE + A.ENTRY] = node && plus && !this.queues.has(node) && this.exact(node.path, st) ? 1 : 0;
    }
    const sent = this.session.replyDir(id, names, attrs, offset, this.entryTimeout, this.attrTimeout);
    if (plus && typeof sent === 'number') {
      for (let k = 0; k < sent; k++) {
        const node = nodes[k];
        if (node && (stats[offset + k].mode & S_IFMT) !== 0 && attrs[(offset + k) * A.STRIDE + A.ENTRY] === 1) this.inodes.ref(node);
      }
    }
  }

  /**
   * Whether a readdir stat is exact: directories (their attributes live in this session), filesystems
   * without a metadata cache (their readdir is taken at its word), and entries whose sealed attributes
   * src/fs has cached. Listing-only stats are exact only with `listingAttributes`.
   */
  private exact(path: string, st: FsStat): boolean {
    if ((st.mode & S_IFMT) === S_IFDIR || this.options.listingAttributes) return true;
    const cache = (this.fs as unknown as AttrCacheProbe).cache;
    if (!cache) return true;
    const known = cache.attrs.get(path.slice(1));
    return known !== undefined && (known.type === 'dir' || known.meta !== undefined);
  }

  private async statfs(id: number, ino: number): Promise<void> {
    const s = await this.fs.statfs(this.pathOf(ino));
    const a = this.scratch;
    a[F.BSIZE] = s.bsize;
    a[F.FRSIZE] = s.frsize;
    a[F.BLOCKS] = s.blocks;
    a[F.BFREE] = s.bfree;
    a[F.BAVAIL] = s.bavail;
    a[F.FILES] = s.files;
    a[F.FFREE] = s.ffree;
    a[F.FAVAIL] = s.favail;
    a[F.FSID] = s.fsid;
    a[F.FLAG] = s.flag;
    a[F.NAMEMAX] = s.namemax;
    this.session.replyStatfs(id);
  }
}
