/**
 * Maps whatever the engine, the store or the format layer throws onto an errno. Unknown failures
 * become EIO (and are reported through the filesystem's logger), never a crash.
 */
import { IntegrityError } from '../format/errors.js';
import { NameError } from '../format/names.js';
import { StoreError } from '../store/errors.js';
import { FsError, type ErrnoName } from './errno.js';

const ENGINE_ERRNO: Record<string, ErrnoName> = {
  NOT_FOUND: 'ENOENT',
  INVALID_PATH: 'EINVAL',
  NAME_TOO_LONG: 'ENAMETOOLONG',
  OBJECT_CHANGED: 'EIO',
  ABORTED: 'EIO',
  CLOSED: 'EIO',
  NOT_INITIALIZED: 'EIO',
  WRONG_KEY: 'EACCES',
};

const STORE_ERRNO: Record<string, ErrnoName> = {
  NoSuchKey: 'ENOENT',
  AccessDenied: 'EACCES',
  InvalidCredentials: 'EACCES',
};

/** The errno an error stands for; `EIO` when it is not one we know. */
export function errnoOf(err: unknown): ErrnoName {
  if (err instanceof FsError) return err.code;
  if (err instanceof NameError) return err.code === 'NAME_TOO_LONG' ? 'ENAMETOOLONG' : err.code === 'NAME_INVALID' ? 'EINVAL' : 'EIO';
  if (err instanceof IntegrityError) return 'EIO';
  if (err instanceof StoreError) return STORE_ERRNO[err.code] ?? 'EIO';
  if (err instanceof Error && err.name === 'EngineError') {
    const code = String((err as { code?: unknown }).code);
    const mapped = ENGINE_ERRNO[code];
    if (mapped) return mapped;
    const cause = (err as { cause?: unknown }).cause;
    return cause !== undefined && cause !== err ? errnoOf(cause) : 'EIO';
  }
  const sys = (err as { code?: unknown } | null)?.code;
  if (typeof sys === 'string' && /^E[A-Z]+$/.test(sys)) {
    if (sys === 'ENOSPC' || sys === 'EDQUOT') return 'ENOSPC';
    if (sys === 'EMFILE' || sys === 'ENFILE' || sys === 'ENOMEM') return 'ENOMEM';
  }
  return 'EIO';
}

/** Wraps any error into an FsError (keeping the original as `cause`). */
export function toFsError(err: unknown): FsError {
  if (err instanceof FsError) return err;
  const code = errnoOf(err);
  const message = err instanceof Error ? err.message : String(err);
  return new FsError(code, message, { cause: err });
}

/** True when the error is "does not exist" in any layer's vocabulary. */
export function isNotFound(err: unknown): boolean {
  return errnoOf(err) === 'ENOENT';
}
