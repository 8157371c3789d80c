/** Live counters for metrics. Monotonic unless noted. */
export interface EngineStats {
  /** Chunk reads served from the decrypted-chunk cache. */
  cacheHits: number;
  /** Chunk reads that needed a fetch (including joins of an in-flight fetch). */
  cacheMisses: number;
  /** Chunk reads that joined a fetch already in flight (a subset of cacheMisses). */
  inflightJoins: number;
  /** Chunks requested by readahead rather than by a read. */
  chunksPrefetched: number;
  /** Ranged GETs issued for chunks or headers. */
  rangeRequests: number;
  /** Ciphertext bytes received from the store (ranged reads and streams). */
  bytesFetched: number;
  /** Plaintext bytes produced by decryption. */
  bytesDecrypted: number;
  /** Plaintext bytes sealed by writers. */
  bytesEncrypted: number;
  /** Ciphertext bytes handed to the store by writers. */
  bytesUploaded: number;
  /** Parts currently being uploaded (gauge). */
  uploadsInFlight: number;
  partsUploaded: number;
  multipartUploads: number;
  singlePutUploads: number;
  /** Multipart uploads aborted after a failure or abort(). */
  uploadsAborted: number;
  /** Decrypted-chunk cache occupancy in bytes (gauge). */
  cacheBytes: number;
  /** Plaintext bytes the chunk cache evicted to make room (not those a sequential reader released). */
  cacheEvictedBytes: number;
}

export function newStats(): EngineStats {
  return {
    cacheHits: 0, cacheMisses: 0, inflightJoins: 0, chunksPrefetched: 0, rangeRequests: 0, bytesFetched: 0,
    bytesDecrypted: 0, bytesEncrypted: 0, bytesUploaded: 0, uploadsInFlight: 0, partsUploaded: 0,
    multipartUploads: 0, singlePutUploads: 0, uploadsAborted: 0, cacheBytes: 0, cacheEvictedBytes: 0,
  };
}
