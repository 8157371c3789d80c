/**
 * The seam between the filesystem semantics (src/fs) and a FUSE binding. A binding mounts an
 * FsOperations implementation at a mount point and maps kernel requests onto it. fuse-native
 * (libfuse 2, high-level API) is the first; a libfuse3 N-API binding can be added behind --fuse=.
 */
import type { EncryptedFileSystem } from '../src/fs/filesystem.js';

/** What a binding calls. EncryptedFileSystem implements it. */
export type FsOperations = Pick<
  EncryptedFileSystem,
  | 'getattr' | 'fgetattr' | 'readdir' | 'readlink' | 'statfs' | 'access'
  | 'open' | 'create' | 'read' | 'write' | 'flush' | 'fsync' | 'release'
  | 'truncate' | 'ftruncate' | 'unlink' | 'rename' | 'mkdir' | 'rmdir'
  | 'symlink' | 'link' | 'mknod' | 'chmod' | 'chown' | 'utimens' | 'fsyncdir'
> & Partial<Pick<EncryptedFileSystem, 'readParts'>>;

export interface MountOptions {
  /** Let other users access the mount (needs user_allow_other in /etc/fuse.conf for non-root). */
  allowOther?: boolean;
  /** Mount read-only (the kernel refuses writes with EROFS). */
  readOnly?: boolean;
  /** Name shown in /proc/mounts and df (e.g. "s3://bucket/prefix"). */
  fsName?: string;
  /** Largest write request the kernel sends, bytes. Default 128 KiB. */
  maxWrite?: number;
  /** Kernel requests in flight at once (readahead, parallel readers). Default 64. */
  maxBackground?: number;
  /** Kernel attribute/entry cache timeouts in seconds (the kernel's own cache, in front of ours). Default 1. */
  kernelAttrTimeoutSec?: number;
  kernelEntryTimeoutSec?: number;
  /** Let the kernel check permission bits (on with allowOther). */
  defaultPermissions?: boolean;
  /** Remove the mount when the process dies (fusermount's auto_unmount). Default true. */
  autoUnmount?: boolean;
  /**
   * Kernel page cache in writeback mode: the kernel batches writes and owns a file's mtime and size
   * while it caches the file (fuse3 only; fuse-native cannot). Default off.
   */
  writeback?: boolean;
  /** Print every FUSE request (libfuse debug). */
  debug?: boolean;
  /** Called for every errno returned and every handler failure (for logging). */
  onOpError?: (op: string, path: string, errno: number, err: unknown) => void;
}

export interface MountHandle {
  readonly mountpoint: string;
  /**
   * Unmounts. `lazy` detaches at once even while files are open (the kernel keeps serving open
   * descriptors until they are closed); otherwise fails with EBUSY while anything is in use.
   */
  unmount(opts?: { lazy?: boolean }): Promise<void>;
  /**
   * False once the kernel connection is gone (after an unmount, when the last open file was
   * closed). After a lazy unmount the kernel may never send RELEASE for the last files: their
   * close() already got its FLUSH, then the connection is torn down. Optional: without it the
   * unmount drain relies on RELEASE alone.
   */
  connected?(): Promise<boolean>;
}

export interface FuseBinding {
  readonly name: string;
  /** Why this binding cannot mount on this machine, or null when it can. */
  unavailableReason(): Promise<string | null>;
  mount(mountpoint: string, fs: FsOperations, options: MountOptions): Promise<MountHandle>;
  /**
   * Returns memory the C heap holds free to the OS (Buffer memory a GC freed stays resident in
   * malloc's free lists). Optional: only where the binding's native code can reach the allocator.
   */
  releaseFreeMemory?(): void;
}

/** Thrown by bindings when mounting fails, with a reason the CLI maps to a message and exit code. */
export class MountError extends Error {
  override readonly name = 'MountError';
  constructor(
    readonly code: 'FUSE_UNAVAILABLE' | 'MOUNTPOINT_MISSING' | 'MOUNTPOINT_NOT_DIR' | 'MOUNTPOINT_BUSY' | 'MOUNTPOINT_STALE' | 'MOUNT_FAILED',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
