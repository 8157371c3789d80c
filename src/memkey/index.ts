/** Network delivery of the master key into memory (memkey). See docs/memkey.md. */
export * from './errors.js';
export * from './protocol.js';
export * from './identity.js';
export * from './state.js';
export * from './core.js';
export * from './frames.js';
export * from './http.js';
export * from './socket.js';
export * from './server.js';
export * from './embedded.js';
export * from './client.js';
export * from './admin.js';
export * from './admin-config.js';
