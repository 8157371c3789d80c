/**
 * FUSE binding over fuse-native 2.2.6 (libfuse 2.9, high-level API, multi-threaded loop; every
 * request waits on a FUSE thread while our async handler runs on the Node event loop).
 *
 * fuse-native facts this adapter works around (docs/semantics.md lists them for users):
 *  - It only knows a fixed list of mount options. Options it does not know (big_writes, max_write,
 *    max_background, ...) are appended to the `subtype` option: fuse-native joins options with ","
 *    so libfuse parses them as separate options. Without big_writes the kernel writes 4 KiB at a
 *    time (measured: ~55 MB/s for dd vs ~500 MB/s with big_writes,max_write=131072).
 *  - It answers any request still running after `timeout` (default 15 s) with ETIMEDOUT while our
 *    handler keeps running. Data and namespace operations get no timeout (flush/release may upload
 *    a large file); pure metadata reads get a long one as a last-resort guard.
 *  - utimens receives the access time in both slots and only millisecond precision, and libfuse 2
 *    drops one-sided updates (`touch -m`, `touch -a`) without calling us. We store the value we get
 *    as both atime and mtime. Stat times are also reported with millisecond precision.
 *  - Its fgetattr calls getattr by path (fine: libfuse 2 renames unlinked-but-open files to
 *    .fuse_hidden* instead of removing them, so the path stays valid).
 *  - Its unmount is lazy (fusermount -uz). MountHandle.unmount() tries a plain unmount first.
 *  - fs.*Sync calls on the mount from this process deadlock it (the event loop is blocked while the
 *    kernel waits for our handler).
 */
import { execFile } from 'node:child_process';
import { constants as fsc } from 'node:fs';
import { access, readdir, readFile, readlink, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import type { FsStat } from '../../src/fs/types.js';
import { MountError, type FsOperations, type FuseBinding, type MountHandle, type MountOptions } from '../types.js';

const execFileP = promisify(execFile);

/** The parts of fuse-native's API we use (it ships no type declarations). */
interface NativeStat {
  mode: number; uid: number; gid: number; size: number; dev: number; nlink: number; ino: number;
  rdev: number; blksize: number; blocks: number; atime: number; mtime: number; ctime: number;
}
type Cb = (...args: unknown[]) => void;
interface FuseInstance {
  mount(cb: (err: Error | null) => void): void;
  unmount(cb: (err: Error | null) => void): void;
  /** fuse-native's per-mount thread record (an internal: see releaseLoop()). */
  _thread?: Buffer;
}
interface FuseClass {
  new (mnt: string, ops: Record<string, (...args: never[]) => void>, opts: Record<string, unknown>): FuseInstance;
}

const EIO = 5;
/** Metadata reads: answered with ETIMEDOUT after this long (our handler keeps running). */
const METADATA_TIMEOUT_MS = 300_000;
const MOUNT_TIMEOUT_MS = 30_000;
/** Requests that must never be cut short: they move data or change the namespace. */
const NO_TIMEOUT_OPS = [
  'init', 'open', 'create', 'read', 'write', 'flush', 'fsync', 'fsyncdir', 'release', 'releasedir',
  'truncate', 'ftruncate', 'unlink', 'rename', 'mkdir', 'rmdir', 'symlink', 'link', 'mknod',
  'chmod', 'chown', 'utimens',
];

let loaded: FuseClass | null = null;
let loadError: unknown = null;

function loadFuseNative(): FuseClass {
  if (loaded) return loaded;
  try {
    loaded = createRequire(import.meta.url)('fuse-native') as FuseClass;
    return loaded;
  } catch (err) {
    loadError = err;
    throw err;
  }
}

export class FuseNativeBinding implements FuseBinding {
  readonly name = 'fuse-native';

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
      loadFuseNative();
    } catch {
      const msg = loadError instanceof Error ? loadError.message : String(loadError);
      return /libfuse\.so\.2/.test(msg)
        ? 'libfuse 2 is not installed (Debian/Ubuntu: apt-get install libfuse2)'
        : `the fuse-native module cannot be loaded: ${msg.split('\n')[0]}`;
    }
    if (!(await findFusermount())) return 'fusermount is not installed (Debian/Ubuntu: apt-get install fuse3)';
    return null;
  }

  async mount(mountpoint: string, fs: FsOperations, options: MountOptions): Promise<MountHandle> {
    const reason = await this.unavailableReason();
    if (reason) throw new MountError('FUSE_UNAVAILABLE', `FUSE is not available: ${reason}`);
    const mnt = path.resolve(mountpoint);
    await checkMountpoint(mnt);
    const Fuse = loadFuseNative();
    const fuse = new Fuse(mnt, makeOps(fs, options), nativeOptions(options));
    const fdsBefore = await fuseDeviceFds();
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new MountError('MOUNT_FAILED', `mounting ${mnt} timed out`)), MOUNT_TIMEOUT_MS);
      fuse.mount((err) => {
        clearTimeout(timer);
        if (!err) return resolve();
        const msg = err.message === 'fuse failed'
          ? `mounting ${mnt} failed (libfuse printed the reason above)`
          : /in use/i.test(err.message) ? `${mnt} is already a mount point` : `mounting ${mnt} failed: ${err.message}`;
        reject(new MountError(/in use/i.test(err.message) ? 'MOUNTPOINT_BUSY' : 'MOUNT_FAILED', msg, { cause: err }));
      });
    });
    // The /dev/fuse descriptor libfuse opened for this mount: it is closed when the connection ends.
    const before = new Set(fdsBefore);
    const ours = (await fuseDeviceFds()).filter((fd) => !before.has(fd));
    let unmounted = false;
    return {
      mountpoint: mnt,
      async connected() {
        if (ours.length === 0) return true; // unknown: assume it is still there
        const now = new Set(await fuseDeviceFds());
        return ours.some((fd) => now.has(fd));
      },
      async unmount(opts: { lazy?: boolean } = {}) {
        if (unmounted) return;
        if (!opts.lazy) {
          const bin = (await findFusermount()) ?? 'fusermount';
          try {
            await execFileP(bin, ['-u', mnt]);
          } catch (err) {
            const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim();
            throw new MountError('MOUNTPOINT_BUSY', `cannot unmount ${mnt}: ${stderr || (err as Error).message}`, { cause: err });
          }
          unmounted = true;
          releaseLoop(fuse, mnt);
          return;
        }
        await new Promise<void>((resolve, reject) => fuse.unmount((err) => (err ? reject(err) : resolve())));
        unmounted = true;
      },
    };
  }
}

/**
 * After a plain `fusermount -u`, fuse.unmount() cannot be used (its lazy unmount of a path no longer
 * mounted fails before it releases anything), so its native half is called directly: it unrefs the
 * mount's uv_async, which otherwise keeps the process alive after the unmount.
 */
function releaseLoop(fuse: FuseInstance, mnt: string): void {
  try {
    const req = createRequire(import.meta.url);
    const dir = path.dirname(req.resolve('fuse-native/package.json'));
    const gypBuild = req(req.resolve('node-gyp-build', { paths: [dir] })) as (d: string) => { fuse_native_unmount(m: string, t: Buffer): void };
    if (fuse._thread) gypBuild(dir).fuse_native_unmount(mnt, fuse._thread);
  } catch {
    // Best effort: at worst the process must exit by itself (the CLI does).
  }
}

/** This process's descriptors open on /dev/fuse. */
async function fuseDeviceFds(): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir('/proc/self/fd').catch(() => [] as string[])) {
    if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === '/dev/fuse') out.push(fd);
  }
  return out;
}

async function findFusermount(): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    for (const name of ['fusermount', 'fusermount3']) {
      const p = path.join(dir, name);
      try {
        await access(p, fsc.X_OK);
        return p;
      } catch {
        // try the next one
      }
    }
  }
  return null;
}

/** Refuses missing, non-directory, stale and already-mounted mount points with a clear reason. */
export async function checkMountpoint(mnt: string): Promise<void> {
  let st;
  try {
    st = await stat(mnt);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTCONN') {
      throw new MountError('MOUNTPOINT_STALE', `${mnt} is a stale FUSE mount (Transport endpoint is not connected): run \`fusermount -u ${mnt}\` (or \`umount -l ${mnt}\`) and mount again`);
    }
    if (code === 'ENOENT') throw new MountError('MOUNTPOINT_MISSING', `mount point ${mnt} does not exist`);
    throw new MountError('MOUNT_FAILED', `cannot use ${mnt} as a mount point: ${(err as Error).message}`, { cause: err });
  }
  if (!st.isDirectory()) throw new MountError('MOUNTPOINT_NOT_DIR', `mount point ${mnt} is not a directory`);
  if (await isMountpoint(mnt)) {
    throw new MountError('MOUNTPOINT_BUSY', `${mnt} is already a mount point (unmount it first: fusermount -u ${mnt})`);
  }
}

async function isMountpoint(mnt: string): Promise<boolean> {
  try {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    return info.split('\n').some((line) => unescape(line.split(' ')[4] ?? '') === mnt);
  } catch {
    return false;
  }
}

function nativeOptions(o: MountOptions): Record<string, unknown> {
  const extra = [
    'big_writes',
    `max_write=${o.maxWrite ?? 131072}`,
    `max_background=${o.maxBackground ?? 64}`,
    `congestion_threshold=${Math.max(1, Math.floor(((o.maxBackground ?? 64) * 3) / 4))}`,
    `attr_timeout=${o.kernelAttrTimeoutSec ?? 1}`,
    `entry_timeout=${o.kernelEntryTimeoutSec ?? 1}`,
    'nonempty',
  ];
  if (o.readOnly) extra.push('ro');
  const timeout: Record<string, number | false> = { default: METADATA_TIMEOUT_MS };
  for (const op of NO_TIMEOUT_OPS) timeout[op] = false;
  return {
    force: false,
    mkdir: false,
    debug: !!o.debug,
    allowOther: !!o.allowOther,
    defaultPermissions: o.defaultPermissions ?? !!o.allowOther,
    autoUnmount: o.autoUnmount ?? true,
    fsname: sanitizeOption(o.fsName ?? 's3cryptfs'),
    subtype: ['s3cryptfs', ...extra].join(','),
    timeout,
  };
}

/** libfuse splits options at "," and treats "\" as an escape: keep both out of free text. */
function sanitizeOption(s: string): string {
  return s.replace(/[,\\\s]/g, '_').slice(0, 200);
}

function errnoOf(err: unknown): number {
  const n = (err as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' && n > 0 && n < 4096 ? n : EIO;
}

function toNative(st: FsStat): NativeStat {
  const ms = (ns: bigint) => Number(ns / 1_000_000n);
  return {
    mode: st.mode, uid: st.uid, gid: st.gid, size: st.size, dev: 0, nlink: st.nlink, ino: st.ino, rdev: 0,
    blksize: st.blksize, blocks: st.blocks, atime: ms(st.atimeNs), mtime: ms(st.mtimeNs), ctime: ms(st.ctimeNs),
  };
}

/** fuse-native's ops table: every callback maps a promise onto (0 | -errno, result). */
export function makeOps(fs: FsOperations, options: Pick<MountOptions, 'onOpError'> = {}): Record<string, (...args: never[]) => void> {
  const fail = (op: string, p: string, cb: Cb) => (err: unknown) => {
    const errno = errnoOf(err);
    options.onOpError?.(op, p, errno, err);
    cb(-errno);
  };
  const done = (op: string, p: string, promise: Promise<unknown>, cb: Cb) => {
    promise.then(() => cb(0), fail(op, p, cb));
  };
  const ops = {
    init: (cb: Cb) => cb(0),
    getattr: (p: string, cb: Cb) => {
      fs.getattr(p).then((st) => cb(0, toNative(st)), fail('getattr', p, cb));
    },
    readdir: (p: string, cb: Cb) => {
      fs.readdir(p).then((entries) => cb(0, entries.map((e) => e.name), entries.map((e) => toNative(e.stat))), fail('readdir', p, cb));
    },
    readlink: (p: string, cb: Cb) => {
      fs.readlink(p).then((target) => cb(0, target), fail('readlink', p, cb));
    },
    statfs: (p: string, cb: Cb) => {
      fs.statfs(p).then((s) => cb(0, s), fail('statfs', p, cb));
    },
    access: (p: string, mode: number, cb: Cb) => done('access', p, fs.access(p, mode), cb),
    open: (p: string, flags: number, cb: Cb) => {
      fs.open(p, flags).then((fh) => cb(0, fh), fail('open', p, cb));
    },
    create: (p: string, mode: number, cb: Cb) => {
      fs.create(p, mode).then((fh) => cb(0, fh), fail('create', p, cb));
    },
    read: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      fs.read(p, fd, len, pos).then((data) => {
        // fuse-native's buffer is FUSE's own memory: copy before answering.
        const n = data.copy(buf, 0, 0, Math.min(len, data.length));
        cb(n);
      }, fail('read', p, cb));
    },
    write: (p: string, fd: number, buf: Buffer, len: number, pos: number, cb: Cb) => {
      fs.write(p, fd, buf.subarray(0, len), pos).then((n) => cb(n), fail('write', p, cb));
    },
    flush: (p: string, fd: number, cb: Cb) => done('flush', p, fs.flush(p, fd), cb),
    fsync: (p: string, datasync: number, fd: number, cb: Cb) => done('fsync', p, fs.fsync(p, fd, !!datasync), cb),
    fsyncdir: (p: string, _datasync: number, _fd: number, cb: Cb) => done('fsyncdir', p, fs.fsyncdir(p), cb),
    release: (p: string, fd: number, cb: Cb) => done('release', p, fs.release(p, fd), cb),
    truncate: (p: string, size: number, cb: Cb) => done('truncate', p, fs.truncate(p, size), cb),
    ftruncate: (p: string, fd: number, size: number, cb: Cb) => done('ftruncate', p, fs.ftruncate(p, fd, size), cb),
    unlink: (p: string, cb: Cb) => done('unlink', p, fs.unlink(p), cb),
    rename: (src: string, dest: string, cb: Cb) => done('rename', src, fs.rename(src, dest), cb),
    mkdir: (p: string, mode: number, cb: Cb) => done('mkdir', p, fs.mkdir(p, mode), cb),
    rmdir: (p: string, cb: Cb) => done('rmdir', p, fs.rmdir(p), cb),
    symlink: (target: string, p: string, cb: Cb) => done('symlink', p, fs.symlink(target, p), cb),
    link: (src: string, dest: string, cb: Cb) => done('link', dest, fs.link(src, dest), cb),
    mknod: (p: string, mode: number, dev: number, cb: Cb) => done('mknod', p, fs.mknod(p, mode, dev), cb),
    chmod: (p: string, mode: number, cb: Cb) => done('chmod', p, fs.chmod(p, mode), cb),
    chown: (p: string, uid: number, gid: number, cb: Cb) => done('chown', p, fs.chown(p, uid, gid), cb),
    utimens: (p: string, atime: number, _mtime: number, cb: Cb) => {
      // fuse-native passes the access time in both slots (see the header comment).
      const ns = BigInt(Math.round(atime)) * 1_000_000n;
      done('utimens', p, fs.utimens(p, ns, ns), cb);
    },
  };
  return ops as unknown as Record<string, (...args: never[]) => void>;
}
