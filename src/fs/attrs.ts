/**
 * POSIX metadata kept in an object's sealed attributes (encrypted and authenticated with the object,
 * bound to its key). Other attributes on the same object (e.g. a content-type set through the
 * gateway) are left untouched by the mount.
 *
 *   posix:type    "symlink" for symbolic links; absent for regular files (and on directory markers "dir")
 *   posix:target  symlink target
 *   posix:mode    permission bits, octal ("644", "4755")
 *   posix:uid     decimal
 *   posix:gid     decimal
 *   posix:mtime   nanoseconds since the epoch, decimal
 *   posix:atime   nanoseconds since the epoch, decimal
 *   posix:ctime   nanoseconds since the epoch, decimal
 */

export type NodeType = 'file' | 'dir' | 'symlink';

export const ATTR_TYPE = 'posix:type';
export const ATTR_TARGET = 'posix:target';
export const ATTR_MODE = 'posix:mode';
export const ATTR_UID = 'posix:uid';
export const ATTR_GID = 'posix:gid';
export const ATTR_MTIME = 'posix:mtime';
export const ATTR_ATIME = 'posix:atime';
export const ATTR_CTIME = 'posix:ctime';

const POSIX_KEYS = [ATTR_TYPE, ATTR_TARGET, ATTR_MODE, ATTR_UID, ATTR_GID, ATTR_MTIME, ATTR_ATIME, ATTR_CTIME];

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;
export const PERM_MASK = 0o7777;

/** What the sealed attributes say about a node; absent fields fall back to mount defaults. */
export interface PosixMeta {
  type?: NodeType;
  target?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtimeNs?: bigint;
  atimeNs?: bigint;
  ctimeNs?: bigint;
}

export function typeBits(type: NodeType): number {
  return type === 'dir' ? S_IFDIR : type === 'symlink' ? S_IFLNK : S_IFREG;
}

export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

export function msToNs(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}

export function nsToMs(ns: bigint): number {
  return Number(ns / 1000n) / 1000;
}

function parseIntAttr(v: string | undefined, radix: number): number | undefined {
  if (v === undefined) return undefined;
  if (!(radix === 8 ? /^[0-7]{1,7}$/ : /^\d{1,10}$/).test(v)) return undefined;
  const n = parseInt(v, radix);
  return Number.isSafeInteger(n) ? n : undefined;
}

function parseNs(v: string | undefined): bigint | undefined {
  if (v === undefined || !/^-?\d{1,21}$/.test(v)) return undefined;
  return BigInt(v);
}

/** Reads the POSIX fields out of an attribute map; malformed values are ignored (defaults apply). */
export function decodePosix(attrs: Record<string, string> | undefined): PosixMeta {
  const a = attrs ?? {};
  const meta: PosixMeta = {};
  const t = a[ATTR_TYPE];
  if (t === 'symlink' || t === 'dir' || t === 'file') meta.type = t;
  if (typeof a[ATTR_TARGET] === 'string') meta.target = a[ATTR_TARGET];
  const mode = parseIntAttr(a[ATTR_MODE], 8);
  if (mode !== undefined) meta.mode = mode & PERM_MASK;
  const uid = parseIntAttr(a[ATTR_UID], 10);
  if (uid !== undefined) meta.uid = uid;
  const gid = parseIntAttr(a[ATTR_GID], 10);
  if (gid !== undefined) meta.gid = gid;
  const mtime = parseNs(a[ATTR_MTIME]);
  if (mtime !== undefined) meta.mtimeNs = mtime;
  const atime = parseNs(a[ATTR_ATIME]);
  if (atime !== undefined) meta.atimeNs = atime;
  const ctime = parseNs(a[ATTR_CTIME]);
  if (ctime !== undefined) meta.ctimeNs = ctime;
  return meta;
}

/**
 * Writes `meta` into a copy of `base`: the POSIX keys are replaced as a whole (a field absent from
 * `meta` is removed), every other key of `base` is kept.
 */
export function encodePosix(meta: PosixMeta, base: Record<string, string> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(base)) if (!POSIX_KEYS.includes(k)) out[k] = v;
  if (meta.type && meta.type !== 'file') out[ATTR_TYPE] = meta.type;
  if (meta.target !== undefined) out[ATTR_TARGET] = meta.target;
  if (meta.mode !== undefined) out[ATTR_MODE] = (meta.mode & PERM_MASK).toString(8);
  if (meta.uid !== undefined) out[ATTR_UID] = String(meta.uid);
  if (meta.gid !== undefined) out[ATTR_GID] = String(meta.gid);
  if (meta.mtimeNs !== undefined) out[ATTR_MTIME] = meta.mtimeNs.toString();
  if (meta.atimeNs !== undefined) out[ATTR_ATIME] = meta.atimeNs.toString();
  if (meta.ctimeNs !== undefined) out[ATTR_CTIME] = meta.ctimeNs.toString();
  return out;
}

/** The non-POSIX part of an attribute map (kept across rewrites of the object). */
export function foreignAttributes(attrs: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs ?? {})) if (!POSIX_KEYS.includes(k)) out[k] = v;
  return out;
}
