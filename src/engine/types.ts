/**
 * The engine's public contract: encrypted objects addressed by plaintext paths relative to the
 * bucket prefix. src/fs, src/gateway and src/cli use only this.
 */

/** A stored object as seen through the encryption: plaintext path and size. */
export interface EntryInfo {
  /** Plaintext path relative to the prefix, no leading slash ("dir/file.txt"). */
  path: string;
  /** Plaintext size in bytes. */
  size: number;
  /** Backend ETag of this version (quoted, as S3 returns it). */
  etag: string;
  lastModified: Date;
}

/** A HEAD result: EntryInfo plus the decrypted user attributes stored with the object. */
export interface ObjectStat extends EntryInfo {
  /** Decrypted attribute map (POSIX attrs for the mount, user metadata/content-type for the gateway). */
  attributes: Record<string, string>;
}

export interface ListPage {
  /** Objects directly under the directory (or all under the prefix when recursive). */
  files: EntryInfo[];
  /** Sub-directory names (plaintext, relative path, ending with "/"). */
  dirs: string[];
  nextToken?: string;
}

export interface ReadOptions {
  signal?: AbortSignal;
}

/** Random-access reader of one object version. Reads are verified per chunk; a bad chunk throws IntegrityError. */
export interface ObjectReader {
  readonly size: number;
  readonly etag: string;
  /** Returns up to `length` bytes from `offset` (fewer only at end of object). May be a view of cached plaintext: read-only. */
  read(offset: number, length: number, opts?: ReadOptions): Promise<Buffer>;
  /** The bytes read() returns, as views of the chunks they span, in order (nothing joined or copied). */
  readParts?(offset: number, length: number, opts?: ReadOptions): Promise<Buffer[]>;
  /** Like read() for a caller that does not want the bytes (a prefetcher): no copy is assembled. */
  prefetch?(offset: number, length: number): Promise<void>;
  close(): void;
}

export interface WriteOptions {
  /** Stored encrypted with the object. */
  attributes?: Record<string, string>;
  signal?: AbortSignal;
}

/**
 * Streaming writer: plaintext in, encrypted (multipart) upload out. Nothing is visible until close()
 * resolves; any failure aborts the upload and rejects close().
 */
export interface ObjectWriter {
  /** Resolves when the data is accepted (sealed or copied: the caller may reuse its buffer then); waits (backpressure) while too many parts are in flight. */
  write(data: Uint8Array): Promise<void>;
  /** Completes the upload; resolves once the object is durably stored. */
  close(): Promise<{ etag: string; size: number }>;
  /** Aborts the upload; nothing becomes visible. */
  abort(): Promise<void>;
  readonly bytesWritten: number;
}
