import type { BucketConfig } from '../format/config.js';

export interface KeyContext {
  /** The bucket config (only its scrypt parameters are used), when known: always, except before `init` has written it. */
  config?: Pick<BucketConfig, 'kdf'>;
}

/**
 * One place a master key can come from. Implementations must never put key material (or a
 * passphrase) in a message, a log line or a temporary file.
 */
export interface KeySource {
  /** Human-readable, secret-free description, e.g. "key file /home/me/.s3cryptfs.key". */
  describe(): string;
  /** Resolves to a fresh 32-byte master key; the caller owns (and should zero) the buffer. */
  load(ctx: KeyContext): Promise<Uint8Array>;
}
