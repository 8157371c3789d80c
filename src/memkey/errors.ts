/** Why a memkey operation failed. Messages name what went wrong and never contain key material. */
export type MemkeyErrorCode =
  | 'BAD_MESSAGE'         // malformed request or response (wrong lengths, bad JSON, unknown version)
  | 'IDENTITY_MISMATCH'   // the server's identity key does not have the pinned fingerprint
  | 'BAD_SIGNATURE'       // the challenge (or status) signature does not verify
  | 'STALE_CHALLENGE'     // the challenge timestamp is outside the admin's window
  | 'CHALLENGE_UNKNOWN'   // never issued, already used (replay) or evicted
  | 'CHALLENGE_EXPIRED'   // issued, but older than the server's challenge lifetime
  | 'DECRYPT_FAILED'      // the sealed key does not authenticate
  | 'KEY_MISMATCH'        // the key's key-check value is not one the server accepts
  | 'KEY_ALREADY_HELD'    // a different (valid) key is already held
  | 'LOCKED'              // too many failed deliveries; retry later
  | 'BAD_CONFIRMATION'    // the server's acceptance proof does not verify
  | 'UNREACHABLE'         // cannot connect (admin endpoint or consumer socket)
  | 'TIMEOUT'             // no key within the wait limit
  | 'IDENTITY_FILE'       // identity file missing, insecure, invalid, or already present
  | 'CONFIG'              // admin config missing or invalid
  | 'PROTOCOL';           // unexpected answer from the peer

export class MemkeyError extends Error {
  override readonly name = 'MemkeyError';
  constructor(
    readonly code: MemkeyErrorCode,
    message: string,
    /** For LOCKED: milliseconds until deliveries are accepted again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

export function isMemkeyError(err: unknown, code?: MemkeyErrorCode): err is MemkeyError {
  return err instanceof MemkeyError && (code === undefined || err.code === code);
}
