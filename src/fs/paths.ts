/**
 * Paths as the kernel hands them to us ("/a/b") and as the engine wants them ("a/b", "" = root),
 * plus the inode table: a stable inode number per path for the lifetime of the mount.
 */
import { MAX_NAME_BYTES } from '../format/names.js';
import { FsError } from './errno.js';

/** "/a/b/" -> "a/b"; "/" -> "". Rejects "." / ".." segments and over-long names. */
export function toRelative(fusePath: string): string {
  const p = fusePath.replace(/^\/+/, '').replace(/\/+$/, '');
  if (p === '') return '';
  for (const segment of p.split('/')) {
    if (segment === '' || segment === '.' || segment === '..') throw new FsError('EINVAL', `invalid path ${fusePath}`);
    if (Buffer.byteLength(segment, 'utf8') > MAX_NAME_BYTES) throw new FsError('ENAMETOOLONG', `name longer than ${MAX_NAME_BYTES} bytes`);
  }
  return p;
}

export function parentOf(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? '' : path.slice(0, i);
}

export function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i < 0 ? path : path.slice(i + 1);
}

export function join(dir: string, name: string): string {
  return dir === '' ? name : `${dir}/${name}`;
}

/** True when `path` is `dir` itself or lies below it. */
export function isWithin(path: string, dir: string): boolean {
  if (dir === '') return true;
  return path === dir || path.startsWith(dir + '/');
}

/** Rewrites `path` (at or below `from`) to lie below `to` instead. */
export function rebase(path: string, from: string, to: string): string {
  if (path === from) return to;
  return join(to, path.slice(from.length + 1));
}

/**
 * Stable inode numbers per path. Root is 1. A rename moves the number; an unlink forgets it. The table
 * is bounded: past `maxEntries` the least recently assigned numbers are forgotten (a path seen again
 * later gets a new number; nothing in the mount depends on st_ino, libfuse 2 even replaces it).
 */
export class InodeTable {
  private readonly byPath = new Map<string, number>();
  private next = 2;

  constructor(private readonly maxEntries = 1_000_000) {}

  ino(path: string): number {
    if (path === '') return 1;
    let n = this.byPath.get(path);
    if (n === undefined) {
      n = this.next++;
      if (this.next > 0xffffffff) this.next = 2;
      this.byPath.set(path, n);
      if (this.byPath.size > this.maxEntries) {
        const oldest = this.byPath.keys().next().value;
        if (oldest !== undefined) this.byPath.delete(oldest);
      }
    }
    return n;
  }

  forget(path: string): void {
    this.byPath.delete(path);
  }

  /** Moves `from` (and, for a directory, everything below it when `subtree`) to `to`. */
  rename(from: string, to: string, subtree = true): void {
    if (!subtree) {
      const n = this.byPath.get(from);
      this.byPath.delete(from);
      this.byPath.delete(to);
      if (n !== undefined) this.byPath.set(to, n);
      return;
    }
    const moved: [string, number][] = [];
    for (const [p, n] of this.byPath) if (isWithin(p, from)) moved.push([p, n]);
    for (const [p] of moved) this.byPath.delete(p);
    for (const [p] of [...this.byPath]) if (isWithin(p, to)) this.byPath.delete(p);
    for (const [p, n] of moved) this.byPath.set(rebase(p, from, to), n);
  }

  get size(): number {
    return this.byPath.size;
  }
}
