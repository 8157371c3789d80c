/** The in-bucket format: pure functions, no I/O. See docs/format.md. */
export * from './errors.js';
export * from './header.js';
export * from './layout.js';
export * from './kdf.js';
export * from './chunk.js';
export * from './envelope.js';
export * from './stream.js';
export * from './names.js';
export * from './bucket-keys.js';
export * from './config.js';
export * from './attributes.js';
export * from './dir-index.js';
