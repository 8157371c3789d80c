/** Shapes shared by the filesystem's modules and its bindings. */
import type { NodeType, PosixMeta } from './attrs.js';

/** A stat(2) result. Times are nanoseconds since the epoch. */
export interface FsStat {
  type: NodeType;
  /** Full st_mode: type bits | permission bits. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  nlink: number;
  ino: number;
  blksize: number;
  blocks: number;
  atimeNs: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/** What we know about one node, from a listing, a HEAD or our own writes. */
export interface NodeInfo {
  type: NodeType;
  size: number;
  /** ETag of the object this came from (files, symlinks, directory markers); undefined for implicit dirs. */
  etag?: string;
  lastModified?: Date;
  /** POSIX fields from the sealed attributes; undefined when not fetched yet (listing only). */
  meta?: PosixMeta;
  /** Non-POSIX attributes of the object (kept across rewrites). */
  foreign?: Record<string, string>;
  /** When this was read from the bucket (Date.now()); undefined for our own writes. */
  fetchedAt?: number;
  /** True when this describes what our own write stored. */
  own?: boolean;
}

/** One directory entry as readdir returns it. `stat` has a zero type when the type is unknown. */
export interface DirEntry {
  name: string;
  stat: FsStat;
}

export interface StatFs {
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  favail: number;
  fsid: number;
  flag: number;
  namemax: number;
}

/** Mount-wide policy for what stat reports and what may be changed. */
export interface FsOptions {
  /** Reject every modification with EROFS. */
  readOnly?: boolean;
  /** Owner reported for every node (overrides stored uid). Default: stored uid, else the process uid. */
  uid?: number;
  /** Group reported for every node (overrides stored gid). Default: stored gid, else the process gid. */
  gid?: number;
  /** Masks the permission bits of every node as reported (e.g. 0o022). Default: none. */
  umask?: number;
  /** Default owner for nodes without stored attributes (when uid/gid are not forced). */
  defaultUid?: number;
  defaultGid?: number;
  /** Attribute cache TTL (ms). Default 60 s. 0 disables. */
  attrTtlMs?: number;
  /** Directory listing cache TTL (ms). Default 30 s. 0 disables. */
  dirTtlMs?: number;
  /** Negative lookup cache TTL (ms). Default 10 s. 0 disables. */
  negativeTtlMs?: number;
  /** Max entries per metadata cache. Default 100k. */
  cacheEntries?: number;
  /** Directory for the encrypted spool files. Default os.tmpdir(). */
  spoolDir?: string;
  /** Sequential writes are buffered in memory up to this many bytes before an upload starts. Default 4 MiB. */
  streamBufferBytes?: number;
  /**
   * chmod/chown/utimens of a closed file are stored after this delay (ms), so that several changes
   * and a following rename cost one server-side copy instead of one each. 0 stores at once.
   * Default 1000. Pending changes are stored at unmount, and before the file is opened again.
   */
  attrWritebackMs?: number;
  /**
   * Directory attribute indexes (docs/semantics.md): readdir reads the directory's index and uses
   * the attributes of every entry it validates, so `ls -l` needs no HEAD per file; the mount
   * rewrites the index after its own changes and after lookups the index could not answer.
   * Default true.
   */
  dirIndex?: boolean;
  /** Delay (ms) between a change in a directory and the rewrite of its index. Default 2000. */
  dirIndexDelayMs?: number;
  /** Called with every unexpected error turned into EIO (for logging). */
  onError?: (op: string, path: string, err: unknown) => void;
}

export const DEFAULT_ATTR_TTL_MS = 60_000;
export const DEFAULT_DIR_TTL_MS = 30_000;
export const DEFAULT_NEGATIVE_TTL_MS = 10_000;
export const DEFAULT_CACHE_ENTRIES = 100_000;
export const DEFAULT_STREAM_BUFFER_BYTES = 4 * 1024 * 1024;
export const DEFAULT_ATTR_WRITEBACK_MS = 1000;
export const DEFAULT_DIR_INDEX_DELAY_MS = 2000;
