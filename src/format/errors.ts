/** Why a ciphertext was refused. Each tamper class has its own code so callers and tests can tell them apart. */
export type IntegrityCode =
  | 'HEADER_TRUNCATED'     // fewer bytes than a header
  | 'BAD_MAGIC'            // not an s3cryptfs object
  | 'UNSUPPORTED_VERSION'
  | 'UNKNOWN_CIPHER'
  | 'BAD_CHUNK_SIZE'
  | 'BAD_FLAGS'
  | 'KEY_ID_MISMATCH'      // sealed under a master key we do not hold
  | 'KEY_UNWRAP_FAILED'    // wrapped data key or header fields modified
  | 'COMMITMENT_MISMATCH'  // header does not commit to this data key
  | 'INVALID_SIZE'         // ciphertext length no valid object can have
  | 'TRUNCATED'            // cut at a chunk boundary: last chunk is not marked final
  | 'EXTENDED'             // a final chunk is followed by more data
  | 'CHUNK_REORDERED'      // a valid chunk of this object sits at the wrong index
  | 'CHUNK_TAMPERED'       // a chunk (or the header it is bound to) fails authentication
  | 'ATTRIBUTES_TAMPERED'  // sealed object attributes fail authentication
  | 'DIR_INDEX_TAMPERED';  // a directory's attribute index fails authentication or is malformed

export class IntegrityError extends Error {
  override readonly name = 'IntegrityError';
  constructor(readonly code: IntegrityCode, message: string, readonly chunkIndex?: number) {
    super(message);
  }
}

export type ConfigErrorCode = 'CONFIG_INVALID' | 'CONFIG_UNSUPPORTED';

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(readonly code: ConfigErrorCode, message: string) {
    super(message);
  }
}
