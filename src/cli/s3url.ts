/** s3://BUCKET[/KEY] arguments. */
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';

export interface S3Url {
  bucket: string;
  /** Everything after "s3://bucket/", possibly empty; a trailing "/" is kept. */
  key: string;
}

export function isS3Url(arg: string): boolean {
  return /^s3:\/\//i.test(arg);
}

export function parseS3Url(arg: string, what = 'location'): S3Url {
  const m = /^s3:\/\/([^/]*)(?:\/(.*))?$/is.exec(arg);
  if (!m) throw new CliError(ExitCode.USAGE, `${what} must be an s3://BUCKET/... URL, got "${arg}"`);
  const bucket = m[1];
  if (!/^[a-z0-9][a-z0-9.\-_]{1,254}$/i.test(bucket)) {
    throw new CliError(ExitCode.USAGE, `invalid bucket name "${bucket}" in ${arg}`);
  }
  const key = (m[2] ?? '').replace(/\/{2,}/g, '/');
  if (key.split('/').some((s) => s === '.' || s === '..')) {
    throw new CliError(ExitCode.USAGE, `"." and ".." are not allowed in ${arg}`);
  }
  return { bucket, key };
}

export function formatS3Url(bucket: string, key = ''): string {
  return `s3://${bucket}/${key}`;
}
