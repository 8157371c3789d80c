/**
 * Typed access to the chunk AEAD addon (src/aead.c, built by build.mjs into build/Release/aead.node):
 * sealing and opening runs of chunks on the libuv threadpool, so the event loop stays free.
 * S3CRYPTFS_AEAD_ADDON names another build (the AddressSanitizer one); S3CRYPTFS_NATIVE_AEAD=0 turns
 * the addon off (the engine then seals through node:crypto on the event loop, as without the addon).
 */
import { addonCandidates as candidates, requireAddon } from '../addon-file.js';

import type { ChunkRunPort, CipherName } from '../../src/format/index.js';

/**
 * Arguments: cipher id (1 ChaCha20-Poly1305, 2 AES-256-GCM), key, aadMiddle, aadFinal, first index,
 * chunk size, final, src (null: seal in place), dst.
 */
type RunArgs = [number, Uint8Array, Uint8Array, Uint8Array, number, number, boolean, readonly Uint8Array[] | null, readonly Uint8Array[]];

export interface AeadAddon {
  seal(...a: RunArgs): void;
  /** -1, or the index of the first chunk that failed authentication (dst is then zeroed). */
  open(...a: RunArgs): number;
  /** The buffers must stay untouched until the promise settles. */
  sealAsync(...a: RunArgs): Promise<void>;
  openAsync(...a: RunArgs): Promise<number>;
}

const CIPHER_ID: Record<CipherName, number> = { 'chacha20-poly1305': 1, 'aes-256-gcm': 2 };

/** Where the addon may be (S3CRYPTFS_AEAD_ADDON first). */
export function addonCandidates(): string[] {
  return candidates('aead', 'S3CRYPTFS_AEAD_ADDON');
}

let cached: AeadAddon | null = null;

/** Loads the addon; throws an Error saying why it cannot. */
export function loadAeadAddon(): AeadAddon {
  cached ??= requireAddon<AeadAddon>('aead', 'S3CRYPTFS_AEAD_ADDON', 'the AEAD addon is not built (run `npm run build`; needs a C compiler and Node\'s headers)');
  return cached;
}

/** The addon as src/format's ChunkRunPort. */
export function chunkRunPort(addon: AeadAddon): ChunkRunPort {
  return {
    sealRun: (cipher, key, aadMiddle, aadFinal, index, chunkSize, final, src, dst) =>
      addon.sealAsync(CIPHER_ID[cipher], key, aadMiddle, aadFinal, index, chunkSize, final, src, dst),
    sealRunSync: (cipher, key, aadMiddle, aadFinal, index, chunkSize, final, src, dst) =>
      addon.seal(CIPHER_ID[cipher], key, aadMiddle, aadFinal, index, chunkSize, final, src, dst),
    openRunSync: (cipher, key, aadMiddle, aadFinal, index, chunkSize, final, src, dst) =>
      addon.open(CIPHER_ID[cipher], key, aadMiddle, aadFinal, index, chunkSize, final, src, dst),
    openRun: (cipher, key, aadMiddle, aadFinal, index, chunkSize, final, src, dst) =>
      addon.openAsync(CIPHER_ID[cipher], key, aadMiddle, aadFinal, index, chunkSize, final, src, dst),
  };
}

let port: ChunkRunPort | null | undefined;

/** The port when the addon is built and not turned off, else null (callers use node:crypto). */
export function nativeChunkRunPort(): ChunkRunPort | null {
  if (port !== undefined) return port;
  port = null;
  if (process.env.S3CRYPTFS_NATIVE_AEAD !== '0') {
    try {
      port = chunkRunPort(loadAeadAddon());
    } catch {
      // Not built (or not loadable here): the synchronous node:crypto path serves.
    }
  }
  return port;
}
