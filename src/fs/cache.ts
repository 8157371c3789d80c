/**
 * The metadata caches: attributes per path, directory listings, and negative lookups. Each entry
 * lives for a TTL; our own modifications update or invalidate entries immediately, so within one
 * mount a change is visible at once. Changes made through other mounts or tools show up when the
 * TTL runs out (see docs/semantics.md).
 */
import { baseName, isWithin, parentOf } from './paths.js';
import type { NodeInfo } from './types.js';

/** A Map whose entries expire after `ttlMs` and which keeps at most `maxEntries` (oldest go first). */
export class TtlMap<V> {
  private readonly map = new Map<string, { value: V; expires: number }>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
    private readonly now: () => number = Date.now,
  ) {}

  get enabled(): boolean {
    return this.ttlMs > 0 && this.maxEntries > 0;
  }

  get(key: string): V | undefined {
    const e = this.map.get(key);
    if (!e) return undefined;
    if (e.expires <= this.now()) {
      this.map.delete(key);
      return undefined;
    }
    return e.value;
  }

  set(key: string, value: V): void {
    if (!this.enabled) return;
    this.map.delete(key);
    this.map.set(key, { value, expires: this.now() + this.ttlMs });
    if (this.map.size > this.maxEntries) {
      const oldest = this.map.keys().next().value;
      if (oldest !== undefined) this.map.delete(oldest);
    }
  }

  /** Replaces the value but keeps the entry's expiry (an in-place update of cached knowledge). */
  update(key: string, value: V): void {
    const e = this.map.get(key);
    if (e) e.value = value;
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  deleteWhere(pred: (key: string) => boolean): void {
    for (const key of [...this.map.keys()]) if (pred(key)) this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }

  get size(): number {
    return this.map.size;
  }
}

/** A directory's complete listing: child name -> what the listing said. */
export interface DirListing {
  entries: Map<string, NodeInfo>;
}

export interface CacheOptions {
  attrTtlMs: number;
  dirTtlMs: number;
  negativeTtlMs: number;
  maxEntries: number;
  now?: () => number;
}

export class MetadataCache {
  readonly attrs: TtlMap<NodeInfo>;
  readonly dirs: TtlMap<DirListing>;
  readonly negative: TtlMap<true>;

  constructor(opts: CacheOptions) {
    this.attrs = new TtlMap(opts.attrTtlMs, opts.maxEntries, opts.now);
    this.dirs = new TtlMap(opts.dirTtlMs, Math.max(1, Math.floor(opts.maxEntries / 10)), opts.now);
    this.negative = new TtlMap(opts.negativeTtlMs, opts.maxEntries, opts.now);
  }

  /** Our own write created or changed `path`: remember it, and patch the parent's listing. */
  noteExists(path: string, info: NodeInfo): void {
    this.attrs.set(path, info);
    this.negative.delete(path);
    // Every ancestor exists too.
    for (let p = parentOf(path); p !== ''; p = parentOf(p)) this.negative.delete(p);
    if (path === '') return;
    const listing = this.dirs.get(parentOf(path));
    if (listing) {
      const prev = listing.entries.get(baseName(path));
      // A listing only knows the type and size; keep it lean.
      listing.entries.set(baseName(path), { type: info.type, size: info.size, etag: info.etag ?? prev?.etag, lastModified: info.lastModified, meta: info.meta });
    }
  }

  /** Our own op removed `path` (and, for a directory, everything below it). */
  noteGone(path: string, subtree = false): void {
    if (subtree) {
      this.attrs.deleteWhere((k) => isWithin(k, path));
      this.dirs.deleteWhere((k) => isWithin(k, path));
      this.negative.deleteWhere((k) => isWithin(k, path));
    } else {
      this.attrs.delete(path);
      this.dirs.delete(path);
    }
    this.negative.set(path, true);
    this.dirs.get(parentOf(path))?.entries.delete(baseName(path));
  }

  /** Forgets everything about `path` without claiming anything (after a failed op, state unknown). */
  invalidate(path: string): void {
    this.attrs.delete(path);
    this.negative.delete(path);
    this.dirs.delete(parentOf(path));
  }

  clear(): void {
    this.attrs.clear();
    this.dirs.clear();
    this.negative.clear();
  }
}
