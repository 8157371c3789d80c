/** Errors the engine itself raises. Store failures stay StoreError; tampering stays IntegrityError. */

export type EngineErrorCode =
  | 'NOT_INITIALIZED'     // no config object under the prefix
  | 'ALREADY_INITIALIZED' // init over an existing config object
  | 'WRONG_KEY'           // master key id not listed in the bucket config
  | 'NOT_FOUND'           // no object at this path
  | 'INVALID_PATH'        // empty segment, ".", "..", leading "/", reserved name
  | 'NAME_TOO_LONG'       // segment or whole key over the limits
  | 'OBJECT_CHANGED'      // the object was replaced while it was being read
  | 'ABORTED'             // writer aborted or its signal fired
  | 'TOO_LARGE'           // more data than 10,000 parts of partSize hold
  | 'CLOSED';             // use after close()

export class EngineError extends Error {
  override readonly name = 'EngineError';
  constructor(readonly code: EngineErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export function isEngineError(err: unknown, code?: EngineErrorCode): err is EngineError {
  return err instanceof EngineError && (code === undefined || err.code === code);
}
