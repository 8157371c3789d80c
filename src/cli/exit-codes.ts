/**
 * The CLI's exit codes and the one place that turns any error into (exit code, one-line message).
 * The table is documented in docs/cli.md and README.md; keep them in sync.
 */
import { EngineError, type EngineErrorCode } from '../engine/errors.js';
import { ConfigError, IntegrityError } from '../format/errors.js';
import { NameError } from '../format/names.js';
import { KeyError } from '../keys/errors.js';
import { StoreError, type StoreErrorCode } from '../store/errors.js';
import { CliError } from './errors.js';

export const ExitCode = {
  OK: 0,
  /** Anything not covered below (server errors, local I/O errors, bugs). */
  GENERIC: 1,
  /** Bad command line: unknown command/option, missing or invalid argument. */
  USAGE: 2,
  /** The master key does not match the bucket. */
  WRONG_KEY: 3,
  /** The bucket does not exist. */
  NO_BUCKET: 4,
  /** The S3 endpoint cannot be reached. */
  UNREACHABLE: 5,
  /** Access denied or credentials rejected. */
  ACCESS_DENIED: 6,
  /** A ciphertext failed authentication (tampered, truncated, corrupted). */
  INTEGRITY: 7,
  /** The object (or local input file) does not exist. */
  NOT_FOUND: 8,
  /** The bucket/prefix is not initialised, or `init` found it already initialised. */
  INIT_STATE: 9,
  /** Invalid config file, bucket config, or option value from the config file. */
  CONFIG: 10,
  /** FUSE is not available (reserved for `mount`). */
  FUSE_UNAVAILABLE: 11,
  /** The key source failed: missing/insecure/invalid key file, empty passphrase, unavailable source. */
  KEY_SOURCE: 12,
  /** Interrupted by SIGINT/SIGTERM (uploads in progress are aborted). */
  INTERRUPTED: 130,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** For docs and `s3cryptfs --help`: code, name, meaning. */
export const EXIT_CODE_TABLE: ReadonlyArray<[ExitCodeValue, string]> = [
  [ExitCode.OK, 'success'],
  [ExitCode.GENERIC, 'other error (server error, local I/O error)'],
  [ExitCode.USAGE, 'usage error (unknown command or option, bad argument)'],
  [ExitCode.WRONG_KEY, 'wrong key for this bucket'],
  [ExitCode.NO_BUCKET, 'bucket does not exist'],
  [ExitCode.UNREACHABLE, 'S3 endpoint unreachable'],
  [ExitCode.ACCESS_DENIED, 'access denied or invalid credentials'],
  [ExitCode.INTEGRITY, 'integrity failure (tampered or corrupted object)'],
  [ExitCode.NOT_FOUND, 'object or local file not found'],
  [ExitCode.INIT_STATE, 'not initialised / already initialised'],
  [ExitCode.CONFIG, 'config error (config file, bucket config)'],
  [ExitCode.FUSE_UNAVAILABLE, 'FUSE unavailable (mount)'],
  [ExitCode.KEY_SOURCE, 'key source error (key file, passphrase, S3CRYPTFS_KEY)'],
  [ExitCode.INTERRUPTED, 'interrupted (Ctrl-C)'],
];

const STORE_CODES: Partial<Record<StoreErrorCode, ExitCodeValue>> = {
  NoSuchBucket: ExitCode.NO_BUCKET,
  NoSuchKey: ExitCode.NOT_FOUND,
  AccessDenied: ExitCode.ACCESS_DENIED,
  InvalidCredentials: ExitCode.ACCESS_DENIED,
  EndpointUnreachable: ExitCode.UNREACHABLE,
};

const ENGINE_CODES: Partial<Record<EngineErrorCode, ExitCodeValue>> = {
  NOT_INITIALIZED: ExitCode.INIT_STATE,
  ALREADY_INITIALIZED: ExitCode.INIT_STATE,
  WRONG_KEY: ExitCode.WRONG_KEY,
  NOT_FOUND: ExitCode.NOT_FOUND,
  INVALID_PATH: ExitCode.USAGE,
  NAME_TOO_LONG: ExitCode.USAGE,
};

const NODE_FS_CODES: Record<string, ExitCodeValue> = {
  ENOENT: ExitCode.NOT_FOUND,
};

export interface ClassifiedError {
  exitCode: ExitCodeValue;
  /** One line, no stack, no secrets. */
  message: string;
}

export function classifyError(err: unknown): ClassifiedError {
  const message = oneLine(err instanceof Error ? err.message : String(err));
  if (err instanceof CliError) return { exitCode: err.exitCode, message };
  if (err instanceof KeyError) return { exitCode: ExitCode.KEY_SOURCE, message };
  if (err instanceof IntegrityError) {
    // Tampering, or a reader without the key (mid-rotation without the old one): say how to tell.
    if (err.code === 'KEY_ID_MISMATCH') return { exitCode: ExitCode.INTEGRITY, message: `integrity check failed: ${message} (if it is the old key of an unfinished rotation, give it with --read-key-file)` };
    return { exitCode: ExitCode.INTEGRITY, message: `integrity check failed: ${message}` };
  }
  if (err instanceof NameError) {
    return err.code === 'NAME_TAMPERED'
      ? { exitCode: ExitCode.INTEGRITY, message: `integrity check failed: ${message}` }
      : { exitCode: ExitCode.USAGE, message };
  }
  if (err instanceof ConfigError) return { exitCode: ExitCode.CONFIG, message };
  if (err instanceof StoreError) return { exitCode: STORE_CODES[err.code] ?? ExitCode.GENERIC, message };
  if (err instanceof EngineError) {
    const mapped = ENGINE_CODES[err.code];
    // An engine error that wraps a store/integrity error exits like the cause would.
    if (mapped === undefined && err.cause instanceof Error) return { exitCode: classifyError(err.cause).exitCode, message };
    return { exitCode: mapped ?? ExitCode.GENERIC, message };
  }
  const sysCode = (err as { code?: unknown } | null)?.code;
  if (typeof sysCode === 'string' && (err as { syscall?: unknown }).syscall !== undefined) {
    return { exitCode: NODE_FS_CODES[sysCode] ?? ExitCode.GENERIC, message: describeSystemError(err as NodeJS.ErrnoException) };
  }
  return { exitCode: ExitCode.GENERIC, message };
}

function describeSystemError(err: NodeJS.ErrnoException): string {
  const what: Record<string, string> = {
    ENOENT: 'no such file or directory',
    EACCES: 'permission denied',
    EISDIR: 'is a directory',
    ENOTDIR: 'not a directory',
    EEXIST: 'already exists',
    ENOSPC: 'no space left on device',
    EPIPE: 'broken pipe',
  };
  const text = (err.code && what[err.code]) ?? oneLine(err.message);
  return err.path ? `${err.path}: ${text}` : text;
}

export function oneLine(text: string): string {
  return text.replace(/\s+/g, ' ').trim();
}
