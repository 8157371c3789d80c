/** Why a master key could not be obtained. Messages never contain key material. */
export type KeyErrorCode =
  | 'NO_KEY_SOURCE'        // no --key-file / --passphrase-file / S3CRYPTFS_KEY given
  | 'AMBIGUOUS_KEY_SOURCE' // more than one key source given at the same level
  | 'KEY_FILE_MISSING'     // the key or passphrase file does not exist / cannot be read
  | 'KEY_FILE_INSECURE'    // group- or world-readable key or passphrase file
  | 'KEY_FILE_EXISTS'      // keygen refuses to overwrite
  | 'KEY_INVALID'          // not 32 bytes of hex or base64
  | 'PASSPHRASE_EMPTY'
  | 'KDF_MISSING'          // passphrase given but the bucket was initialised with a key file
  | 'KDF_FAILED'           // scrypt refused the bucket's parameters (e.g. too much memory)
  | 'SOURCE_UNAVAILABLE'   // a key source that cannot be used (remote memkey:// URLs)
  | 'KEY_SERVER_UNREACHABLE' // memkey: nothing answers on the Unix socket
  | 'KEY_WAIT_TIMEOUT'     // memkey: no key delivered within the wait limit
  | 'KEY_WAIT_INTERRUPTED'; // memkey: SIGINT/SIGTERM while waiting for the key

export class KeyError extends Error {
  override readonly name = 'KeyError';
  constructor(readonly code: KeyErrorCode, message: string) {
    super(message);
  }
}

export function isKeyError(err: unknown, code?: KeyErrorCode): err is KeyError {
  return err instanceof KeyError && (code === undefined || err.code === code);
}
