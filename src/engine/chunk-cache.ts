/**
 * Engine-wide caches shared by every reader: decrypted chunks (byte-bounded LRU, keyed by object
 * key + ETag + chunk index, so a replaced object never serves stale plaintext), fetches in flight
 * (so concurrent reads of one chunk share one GET), and opened headers per object version.
 */
import { LRUCache } from 'lru-cache';
import type { ObjectCipher } from '../format/index.js';
import type { EngineStats } from './stats.js';

const MAX_HEADERS = 4096;

/** Identifies one version of one object. */
export function versionId(key: string, etag: string): string {
  return `${etag}\n${key}`;
}

export class ChunkCache {
  private readonly lru: LRUCache<string, Buffer> | null;
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private readonly headers = new LRUCache<string, Promise<ObjectCipher>>({ max: MAX_HEADERS });

  constructor(readonly maxBytes: number, private readonly stats: EngineStats) {
    this.lru = maxBytes > 0
      ? new LRUCache<string, Buffer>({
          maxSize: maxBytes,
          sizeCalculation: (b) => Math.max(1, b.length),
          dispose: (b, _k, reason) => {
            stats.cacheBytes -= Math.max(1, b.length);
            if (reason === 'evict') stats.cacheEvictedBytes += b.length;
          },
        })
      : null;
  }

  get(version: string, index: number): Buffer | undefined {
    return this.lru?.get(chunkId(version, index));
  }

  set(version: string, index: number, plain: Buffer): void {
    if (!this.lru || plain.length > this.maxBytes) return;
    const id = chunkId(version, index);
    if (this.lru.has(id)) return;
    this.lru.set(id, plain);
    this.stats.cacheBytes += Math.max(1, plain.length);
  }

  /** Forgets one cached chunk (a sequential reader consumed it; see EngineReader). */
  delete(version: string, index: number): void {
    this.lru?.delete(chunkId(version, index));
  }

  has(version: string, index: number): boolean {
    return this.lru?.has(chunkId(version, index)) ?? false;
  }

  pending(version: string, index: number): Promise<Buffer> | undefined {
    return this.inflight.get(chunkId(version, index));
  }

  /** Registers a fetch in flight; it is forgotten when it settles. */
  track(version: string, index: number, fetch: Promise<Buffer>): void {
    const id = chunkId(version, index);
    this.inflight.set(id, fetch);
    const forget = () => { if (this.inflight.get(id) === fetch) this.inflight.delete(id); };
    fetch.then(forget, forget);
  }

  header(version: string): Promise<ObjectCipher> | undefined {
    return this.headers.get(version);
  }

  /** Caches a header (or its fetch); a failed fetch is dropped so the next read retries. */
  setHeader(version: string, header: Promise<ObjectCipher>): void {
    this.headers.set(version, header);
    header.catch(() => { if (this.headers.get(version) === header) this.headers.delete(version); });
  }

  /** Drops everything cached for an object version (e.g. after it was found replaced). */
  clear(): void {
    this.lru?.clear();
    this.headers.clear();
  }
}

function chunkId(version: string, index: number): string {
  return `${index}\n${version}`;
}
