/** The engine: encrypted objects by plaintext path. src/fs, src/gateway and src/cli use only this. */
export * from './types.js';
export { Engine, type EngineOptions, type CopyOptions, DEFAULT_CACHE_BYTES, DEFAULT_PART_SIZE, MIN_PART_SIZE, DEFAULT_UPLOAD_CONCURRENCY, DEFAULT_READAHEAD_MAX_BYTES } from './engine.js';
export { EngineError, isEngineError, type EngineErrorCode } from './errors.js';
export type { EngineWarning } from './context.js';
export type { EngineStats } from './stats.js';
export type { ListOptions } from './listing.js';
export type { ReadStreamOptions } from './read-stream.js';
export type { EngineStore } from './store-port.js';
export type { DirObject } from './dir-index.js';
export { preferredCipher, hostPreferredCipher } from './cipher-choice.js';
