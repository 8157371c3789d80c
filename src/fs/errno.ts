/**
 * Linux errno values the filesystem returns, and the error type that carries one. Every op of
 * EncryptedFileSystem either resolves or rejects with an FsError; bindings turn `errno` into the
 * negative return value FUSE expects.
 */

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EIO: 5,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  EFBIG: 27,
  ENOSPC: 28,
  EROFS: 30,
  EMLINK: 31,
  ERANGE: 34,
  ENAMETOOLONG: 36,
  ENOSYS: 38,
  ENOTEMPTY: 39,
  ELOOP: 40,
  ENODATA: 61,
  ENOTSUP: 95,
  ENOTCONN: 107,
  ETIMEDOUT: 110,
} as const;

export type ErrnoName = keyof typeof Errno;

export class FsError extends Error {
  override readonly name = 'FsError';
  readonly errno: number;

  constructor(readonly code: ErrnoName, message?: string, options?: { cause?: unknown }) {
    // Most of these are answers, not failures (ENOENT for every lookup of a missing name): a stack
    // trace is rarely useful and costs more than the rest of the lookup. The cause keeps its own.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message ?? code, options);
    Error.stackTraceLimit = limit;
    this.errno = Errno[code];
  }
}

export function fsError(code: ErrnoName, message?: string): FsError {
  return new FsError(code, message);
}

export function isFsError(err: unknown, code?: ErrnoName): err is FsError {
  return err instanceof FsError && (code === undefined || err.code === code);
}
