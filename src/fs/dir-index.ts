/**
 * Keeps the directory attribute indexes (src/format/dir-index.ts) up to date. What the mount
 * learns about entries (its own writes, HEADs the index could not spare) is collected per
 * directory and, after a delay, merged with the stored index and validated against a fresh
 * listing, then stored. Only entries the listing confirms are written, so the index never claims
 * attributes for a version it did not see. See docs/semantics.md, "Directory attribute index".
 */
import { emptyDirIndex, lastModifiedSeconds, type DirIndex, type DirIndexFile } from '../format/index.js';
import type { FsEngine } from './engine-port.js';
import { baseName, isWithin, parentOf } from './paths.js';

export interface DirIndexStats {
  /** Index reads (readdir). */
  reads: number;
  /** Entries whose attributes readdir took from an index. */
  hits: number;
  /** Files a readdir listed that its index could not answer (missing, stale). */
  misses: number;
  /** Indexes that failed authentication or were malformed (treated as missing). */
  invalid: number;
  writes: number;
  writeErrors: number;
}

export interface DirIndexKeeperOptions {
  delayMs: number;
  /** True while `path` has changes not stored yet (its entry waits for the next rewrite). */
  busy: (path: string) => boolean;
  onError: (dir: string, err: unknown) => void;
}

/** Whether the listing entry `f` is the version `e` describes. */
export function sameVersion(e: DirIndexFile | undefined, f: { etag: string; size: number; lastModified: Date }): e is DirIndexFile {
  return !!e && e.etag === f.etag && e.size === f.size && (e.mtimeSec === null || e.mtimeSec === lastModifiedSeconds(f.lastModified));
}

export class DirIndexKeeper {
  readonly stats: DirIndexStats = { reads: 0, hits: 0, misses: 0, invalid: 0, writes: 0, writeErrors: 0 };
  /** dir -> entry name -> learned version and attributes. */
  private readonly files = new Map<string, Map<string, DirIndexFile>>();
  /** dir -> subdirectory name -> its attributes. */
  private readonly dirs = new Map<string, Map<string, Record<string, string>>>();
  /** dir -> its own attributes as we last stored them (wins over a concurrently read copy). */
  private readonly own = new Map<string, Record<string, string>>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** When the first change still waiting for a rewrite of each directory was noted. */
  private readonly since = new Map<string, number>();
  private readonly running = new Map<string, Promise<void>>();

  constructor(private readonly engine: FsEngine, private readonly opts: DirIndexKeeperOptions) {}

  noteFile(path: string, e: DirIndexFile): void {
    const dir = parentOf(path);
    let m = this.files.get(dir);
    if (!m) this.files.set(dir, (m = new Map()));
    m.set(baseName(path), e);
    this.schedule(dir);
  }

  forgetFile(path: string): void {
    this.files.get(parentOf(path))?.delete(baseName(path));
  }

  noteDir(path: string, attrs: Record<string, string>): void {
    if (path === '') return;
    const dir = parentOf(path);
    let m = this.dirs.get(dir);
    if (!m) this.dirs.set(dir, (m = new Map()));
    m.set(baseName(path), attrs);
    this.schedule(dir);
  }

  noteOwnAttributes(dir: string, attrs: Record<string, string>): void {
    this.own.set(dir, attrs);
  }

  /** Drops everything pending for `dir` and below (removed or moved) and waits for a running rewrite. */
  async cancel(dir: string): Promise<void> {
    for (const map of [this.files, this.dirs, this.own, this.timers, this.since] as Map<string, unknown>[]) {
      for (const k of [...map.keys()]) {
        if (!isWithin(k, dir)) continue;
        if (map === this.timers) clearTimeout(this.timers.get(k));
        map.delete(k);
      }
    }
    for (const [k, p] of [...this.running]) if (isWithin(k, dir)) await p.catch(() => {});
  }

  /** Rewrites every index with pending changes now. */
  async flushAll(): Promise<void> {
    const dirs = new Set([...this.timers.keys(), ...this.files.keys(), ...this.dirs.keys()]);
    await Promise.all([...dirs].map((d) => this.flush(d).catch(() => {})));
  }

  close(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  /**
   * A rewrite follows `delayMs` after the last change in the directory (a burst of writes or
   * lookups costs one), but no later than 10 x delayMs after the first.
   */
  private schedule(dir: string): void {
    const first = this.since.get(dir);
    if (first === undefined) this.since.set(dir, Date.now());
    else if (Date.now() - first >= 9 * this.opts.delayMs) return; // the pending timer fires soon enough
    clearTimeout(this.timers.get(dir));
    const t = setTimeout(() => {
      this.flush(dir).catch(() => {}); // reported through onError
    }, this.opts.delayMs);
    t.unref();
    this.timers.set(dir, t);
  }

  async flush(dir: string): Promise<void> {
    const prev = this.running.get(dir);
    if (prev) await prev.catch(() => {});
    clearTimeout(this.timers.get(dir));
    this.timers.delete(dir);
    this.since.delete(dir);
    const files = this.files.get(dir) ?? new Map<string, DirIndexFile>();
    const dirs = this.dirs.get(dir) ?? new Map<string, Record<string, string>>();
    this.files.delete(dir);
    this.dirs.delete(dir);
    const p = this.rewrite(dir, files, dirs);
    this.running.set(dir, p);
    try {
      await p;
    } catch (err) {
      this.stats.writeErrors++;
      this.opts.onError(dir, err);
      throw err;
    } finally {
      if (this.running.get(dir) === p) this.running.delete(dir);
    }
  }

  private async rewrite(dir: string, files: Map<string, DirIndexFile>, dirs: Map<string, Record<string, string>>): Promise<void> {
    try {
      await this.merge(dir, files, dirs);
    } catch (err) {
      // Not stored: keep what was learned (newer notes win) for the next attempt.
      for (const [name, e] of files) if (!this.files.get(dir)?.has(name)) this.noteFile(dir === '' ? name : `${dir}/${name}`, e);
      for (const [name, a] of dirs) if (!this.dirs.get(dir)?.has(name)) this.noteDir(dir === '' ? name : `${dir}/${name}`, a);
      throw err;
    }
  }

  private async merge(dir: string, files: Map<string, DirIndexFile>, dirs: Map<string, Record<string, string>>): Promise<void> {
    const [stored, listing] = await Promise.all([
      this.engine.readDirObject(dir),
      (async () => {
        const out: { files: { path: string; etag: string; size: number; lastModified: Date }[]; dirs: string[] } = { files: [], dirs: [] };
        for await (const page of this.engine.listAll(dir)) {
          out.files.push(...page.files);
          out.dirs.push(...page.dirs);
        }
        return out;
      })(),
    ]);
    // An empty (removed, moved) directory gets no index: writing one would recreate its marker.
    if (listing.files.length === 0 && listing.dirs.length === 0 && dir !== '') return;
    const index: DirIndex = emptyDirIndex();
    for (const f of listing.files) {
      if (this.opts.busy(f.path)) continue;
      const name = baseName(f.path);
      const learned = files.get(name);
      const old = stored?.index?.files.get(name);
      const e = sameVersion(learned, f) ? learned : sameVersion(old, f) ? old : undefined;
      if (e) index.files.set(name, { etag: f.etag, size: f.size, mtimeSec: lastModifiedSeconds(f.lastModified), attrs: e.attrs });
    }
    for (const d of listing.dirs) {
      const name = baseName(d.replace(/\/+$/, ''));
      const attrs = dirs.get(name) ?? stored?.index?.dirs.get(name);
      if (attrs) index.dirs.set(name, attrs);
    }
    const ownAttrs = this.own.get(dir);
    const attrs = ownAttrs ?? (stored ? stored.attributes : undefined);
    if (stored?.index && ownAttrs === undefined && sameIndex(stored.index, index)) return;
    await this.engine.writeDirIndex(dir, index, attrs);
    if (this.own.get(dir) === ownAttrs) this.own.delete(dir);
    this.stats.writes++;
  }
}

function sameIndex(a: DirIndex, b: DirIndex): boolean {
  if (a.files.size !== b.files.size || a.dirs.size !== b.dirs.size) return false;
  for (const [name, e] of b.files) {
    const o = a.files.get(name);
    if (!o || o.etag !== e.etag || o.size !== e.size || o.mtimeSec !== e.mtimeSec || JSON.stringify(o.attrs) !== JSON.stringify(e.attrs)) return false;
  }
  for (const [name, attrs] of b.dirs) if (JSON.stringify(a.dirs.get(name)) !== JSON.stringify(attrs)) return false;
  return true;
}
