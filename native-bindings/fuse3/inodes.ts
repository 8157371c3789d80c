/**
 * Inode numbers for the low-level API: the kernel names files by the numbers we hand out in lookup,
 * mkdir, create, symlink, mknod and readdirplus replies, and gives each one back with FORGET once it
 * drops its references. This table maps numbers <-> paths for src/fs (which is path-based), counts
 * lookups, and follows renames and unlinks.
 *
 * Rules:
 *  - Root is 1. Numbers are never reused (64-bit space, JS safe integers: 2^53 ≈ 9e15 lookups).
 *  - A path has at most one live number. Unlinking or replacing a path detaches its inode from the
 *    path; the kernel may still use the number (open files) until it forgets it.
 *  - An inode the kernel does not reference (lookup count 0, no open handle) is kept as "weak" so
 *    that a path keeps its number across forget/lookup (find, du, tar compare st_ino); weak entries
 *    past `maxWeak` are dropped, oldest first.
 *  - A path whose type changed (replaced by another client) gets a new number: the kernel refuses an
 *    inode whose type changes.
 */
export const ROOT_INO = 1;
export const S_IFMT = 0o170000;

export interface Inode {
  readonly ino: number;
  /** FUSE-style path ("/", "/a/b"); for a detached inode, the path it had. */
  path: string;
  /** S_IFMT bits; 0 when not known yet. */
  type: number;
  /** Kernel references (lookups not yet forgotten). */
  nlookup: number;
  /** Open file or directory handles on this inode. */
  open: number;
  /** No longer reachable by its path (unlinked, replaced or renamed over). */
  detached: boolean;
}

export function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}

export function parentPath(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? '/' : p.slice(0, i);
}

function isWithin(p: string, dir: string): boolean {
  return dir === '/' || p === dir || p.startsWith(dir + '/');
}

export class InodeTable {
  private readonly byIno = new Map<number, Inode>();
  private readonly byPath = new Map<string, Inode>();
  /** Inodes with no kernel reference and no open handle, oldest first. */
  private readonly weak = new Set<Inode>();
  private next: number;

  constructor(private readonly maxWeak = 100_000, firstIno = 2) {
    this.next = firstIno;
    const root: Inode = { ino: ROOT_INO, path: '/', type: 0o040000, nlookup: 1, open: 0, detached: false };
    this.byIno.set(ROOT_INO, root);
    this.byPath.set('/', root);
  }

  get(ino: number): Inode | undefined {
    return this.byIno.get(ino);
  }

  /** The live inode at `path`, if any. */
  peek(path: string): Inode | undefined {
    return this.byPath.get(path);
  }

  /** The inode at `path` (created weak when there is none), with its type brought up to date. */
  ensure(path: string, type: number): Inode {
    let node = this.byPath.get(path);
    type &= S_IFMT;
    if (node && type !== 0 && node.type !== 0 && node.type !== type) {
      this.detach(node);
      node = undefined;
    }
    if (!node) {
      if (this.next > Number.MAX_SAFE_INTEGER) throw new RangeError('inode numbers exhausted');
      node = { ino: this.next++, path, type, nlookup: 0, open: 0, detached: false };
      this.byIno.set(node.ino, node);
      this.byPath.set(path, node);
      this.markWeak(node);
    } else if (type !== 0) {
      node.type = type;
    }
    return node;
  }

  /** Counts one kernel reference (a lookup-type reply the kernel received). */
  ref(node: Inode): void {
    node.nlookup++;
    this.weak.delete(node);
  }

  /** ensure() + ref(). */
  lookup(path: string, type: number): Inode {
    const node = this.ensure(path, type);
    this.ref(node);
    return node;
  }

  /** FORGET: the kernel dropped `n` references. */
  forget(ino: number, n: number): void {
    const node = this.byIno.get(ino);
    if (!node || ino === ROOT_INO) return;
    node.nlookup = Math.max(0, node.nlookup - n);
    this.settle(node);
  }

  opened(node: Inode): void {
    node.open++;
    this.weak.delete(node);
  }

  closed(node: Inode): void {
    node.open = Math.max(0, node.open - 1);
    this.settle(node);
  }

  /** `path` was removed (unlink, rmdir). */
  removed(path: string): void {
    const node = this.byPath.get(path);
    if (node) this.detach(node);
  }

  /** `from` (and, for a directory, everything below it) is now at `to`; what was at `to` is gone. */
  renamed(from: string, to: string): void {
    if (from === to) return;
    const replaced = this.byPath.get(to);
    if (replaced) this.detach(replaced);
    const moved: Inode[] = [];
    for (const [p, node] of this.byPath) if (isWithin(p, from)) moved.push(node);
    // Anything below the target that was still known is gone too (the target was an empty dir).
    for (const [p, node] of this.byPath) if (p.startsWith(to + '/')) this.detach(node);
    for (const node of moved) this.byPath.delete(node.path);
    for (const node of moved) {
      node.path = node.path === from ? to : to + node.path.slice(from.length);
      this.byPath.set(node.path, node);
    }
  }

  get size(): number {
    return this.byIno.size;
  }

  /** Inodes the kernel holds references to (for tests and stats). */
  get referenced(): number {
    let n = 0;
    for (const node of this.byIno.values()) if (node.nlookup > 0) n++;
    return n;
  }

  private detach(node: Inode): void {
    if (node.ino === ROOT_INO) return;
    if (this.byPath.get(node.path) === node) this.byPath.delete(node.path);
    node.detached = true;
    this.weak.delete(node);
    this.settle(node);
  }

  /** Drops or weakens an inode nobody references. */
  private settle(node: Inode): void {
    if (node.nlookup > 0 || node.open > 0 || node.ino === ROOT_INO) return;
    if (node.detached) {
      this.byIno.delete(node.ino);
      this.weak.delete(node);
      return;
    }
    this.markWeak(node);
  }

  private markWeak(node: Inode): void {
    this.weak.delete(node);
    this.weak.add(node);
    while (this.weak.size > this.maxWeak) {
      const oldest = this.weak.values().next().value as Inode;
      this.weak.delete(oldest);
      this.byIno.delete(oldest.ino);
      if (this.byPath.get(oldest.path) === oldest) this.byPath.delete(oldest.path);
    }
  }
}
