/**
 * Typed access to the libfuse3 addon (src/fuse3.c, built by build.mjs into build/Release/fuse3.node).
 * S3CRYPTFS_FUSE3_ADDON names another build (e.g. the AddressSanitizer one in build-asan/).
 */
import { addonCandidates as candidates, requireAddon } from '../addon-file.js';

export type OpName =
  | 'init' | 'lookup' | 'forget' | 'getattr' | 'setattr' | 'readlink' | 'mknod' | 'mkdir' | 'unlink'
  | 'rmdir' | 'symlink' | 'rename' | 'link' | 'open' | 'read' | 'write' | 'flush' | 'release' | 'fsync'
  | 'opendir' | 'readdir' | 'releasedir' | 'fsyncdir' | 'statfs' | 'access' | 'create' | 'readdirplus'
  | 'interrupt' | 'ended';

/** Flags of replyOpen / replyCreate. */
export const OpenReplyFlags = { DIRECT_IO: 1, KEEP_CACHE: 2, NONSEEKABLE: 4, CACHE_READDIR: 8, NOFLUSH: 16 } as const;

/**
 * Attribute record layout (Float64Array, 15 values): see fill_stat() in fuse3.c. ENTRY is read by
 * replyDir for readdirplus only: 1 sends the attributes (the kernel takes a lookup reference), 0 the
 * name only (the kernel looks the entry up when it needs it).
 */
export const A = {
  INO: 0, MODE: 1, NLINK: 2, UID: 3, GID: 4, SIZE: 5, BLOCKS: 6, BLKSIZE: 7,
  ATIME_S: 8, ATIME_NS: 9, MTIME_S: 10, MTIME_NS: 11, CTIME_S: 12, CTIME_NS: 13, ENTRY: 14, STRIDE: 15,
} as const;

/** statfs record layout in the scratch array. */
export const F = { BSIZE: 0, FRSIZE: 1, BLOCKS: 2, BFREE: 3, BAVAIL: 4, FILES: 5, FFREE: 6, FAVAIL: 7, FSID: 8, FLAG: 9, NAMEMAX: 10 } as const;

export interface NativeStats {
  /** Requests handed to JavaScript and not answered yet. */
  pending: number;
  maxPending: number;
  slots: number;
  /** Replies to requests that were already answered (e.g. after an interrupt) or unknown. */
  repliesDropped: number;
  capable: number;
  want: number;
  requests: Record<OpName, number>;
}

/**
 * One FUSE session. Every reply method answers the request `id` once and returns true, or returns
 * false when that request was already answered (or never existed). Invalid arguments answer the
 * request with EIO and throw. Attribute replies read the session's scratch array (filled just before).
 */
export interface NativeSession {
  replyErr(id: number, errno: number): boolean;
  replyEntry(id: number, entryTimeout?: number, attrTimeout?: number): boolean;
  replyAttr(id: number, attrTimeout?: number): boolean;
  replyReadlink(id: number, target: string): boolean;
  replyOpen(id: number, fh: number, flags?: number): boolean;
  replyCreate(id: number, fh: number, flags: number, entryTimeout?: number, attrTimeout?: number): boolean;
  /** An array of parts is sent as one reply (writev), not joined first; at most 64 parts. */
  replyBuf(id: number, data: Uint8Array | readonly Uint8Array[], length?: number): boolean;
  replyWrite(id: number, count: number): boolean;
  replyStatfs(id: number): boolean;
  /** Packs names[start..] with attrs[i * 15..] until the kernel's buffer is full; returns how many. */
  replyDir(id: number, names: string[], attrs: Float64Array, start: number, entryTimeout?: number, attrTimeout?: number): number | false;
  isPending(id: number): boolean;
  stats(): NativeStats;
  /** Answers what is pending with EIO, detaches the mount if still attached, closes the device. */
  close(): void;
  /** Test sessions only: act as if the kernel sent this request. Returns the pending count. */
  inject(op: number, ino: number, ...args: unknown[]): number;
  /** Test sessions only: what the last reply was (kind bit, errno, length/ino/fh). */
  lastReply(): { kind: number; err: number; len: number };
}

export interface NativeMountOptions {
  maxWrite?: number;
  maxReadahead?: number;
  maxBackground?: number;
  congestionThreshold?: number;
  writeback?: boolean;
  readdirplus?: boolean;
  debug?: boolean;
}

// The arguments depend on the op (see fuse3.c); the binding's dispatcher reads them positionally.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Dispatch = (op: number, id: number, ...args: any[]) => void;

export interface NativeAddon {
  /**
   * writeBuffer(size): a Buffer of exactly `size` bytes (a pooled block) that requests are read into.
   * A write of at least constants.WRITE_VIEW_MIN bytes is dispatched as a Uint8Array view of its
   * block, which is then JavaScript's (the next request goes into another block); smaller ones as a
   * copy. Without it (or when it returns another size) requests go into a malloc'd buffer and all
   * write data is copied.
   */
  mount(mountpoint: string, args: string[], options: NativeMountOptions, dispatch: Dispatch, scratch: Float64Array, writeBuffer?: (size: number) => Buffer): NativeSession;
  testSession(dispatch: Dispatch, scratch: Float64Array, writeBuffer?: (size: number) => Buffer): NativeSession;
  /** The kernel-name decoding (strict UTF-8, no '/', 1..1024 bytes); null when rejected. */
  decodeName(bytes: Buffer, isName?: boolean): string | null;
  /** glibc malloc_trim(0): returns the C heap's free pages to the OS; true when any were. */
  trimMalloc(): boolean;
  ops: Record<OpName, number>;
  constants: Record<string, number>;
}


/** Where the addon may be (S3CRYPTFS_FUSE3_ADDON first). */
export function addonCandidates(): string[] {
  return candidates('fuse3', 'S3CRYPTFS_FUSE3_ADDON');
}

let cached: NativeAddon | null = null;

/** Loads the addon; throws an Error saying why it cannot. */
export function loadAddon(): NativeAddon {
  cached ??= requireAddon<NativeAddon>('fuse3', 'S3CRYPTFS_FUSE3_ADDON',
    'the libfuse3 addon is not built (needs libfuse3-dev, pkg-config and a C compiler; run `npm run build:native`)');
  return cached;
}
