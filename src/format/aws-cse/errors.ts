/**
 * Errors of the AWS S3 Encryption Client (CSE) format. Anything that points at a modified or
 * corrupted object (tag, padding, wrapped key, commitment, malformed envelope) is an IntegrityError,
 * so callers (CLI exit code 7, mount EIO) treat it like tampering with our own format.
 */
import { IntegrityError, type IntegrityCode } from '../errors.js';

export type CseIntegrityCode =
  | 'CSE_ENVELOPE_INVALID'   // metadata / instruction file missing keys, bad base64, bad JSON, mixed versions
  | 'CSE_UNSUPPORTED'        // a content or wrapping algorithm this implementation does not read
  | 'CSE_KEY_UNWRAP_FAILED'  // the wrapped data key does not open with the master key (or was modified)
  | 'CSE_COMMITMENT_MISMATCH'// V3: the stored key commitment does not match the data key
  | 'CSE_TAG_MISMATCH'       // AES-GCM authentication tag wrong: content, IV or tag modified
  | 'CSE_BAD_PADDING'        // AES-CBC padding invalid: content, IV or key modified
  | 'CSE_INVALID_SIZE';      // ciphertext length impossible for the envelope, or not the recorded plaintext length

const GENERIC: Record<CseIntegrityCode, IntegrityCode> = {
  CSE_ENVELOPE_INVALID: 'BAD_FLAGS',
  CSE_UNSUPPORTED: 'UNKNOWN_CIPHER',
  CSE_KEY_UNWRAP_FAILED: 'KEY_UNWRAP_FAILED',
  CSE_COMMITMENT_MISMATCH: 'COMMITMENT_MISMATCH',
  CSE_TAG_MISMATCH: 'CHUNK_TAMPERED',
  CSE_BAD_PADDING: 'CHUNK_TAMPERED',
  CSE_INVALID_SIZE: 'INVALID_SIZE',
};

export class CseIntegrityError extends IntegrityError {
  constructor(readonly cseCode: CseIntegrityCode, message: string) {
    super(GENERIC[cseCode], message);
  }
}

/** The object needs master key material that was not configured (e.g. an RSA-wrapped key and no --aws-cse-rsa-key). */
export class CseKeyMissingError extends Error {
  override readonly name = 'CseKeyMissingError';
}

export function isCseIntegrityError(err: unknown, code?: CseIntegrityCode): err is CseIntegrityError {
  return err instanceof CseIntegrityError && (code === undefined || err.cseCode === code);
}
