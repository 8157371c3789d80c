/** Option definitions shared by several commands. Defaults are applied in config.ts, not by yargs. */
import type { Argv, Options } from 'yargs';
import { DEFAULT_CHUNK_SIZE } from '../format/config.js';
import { AwsCseConfigError, loadAwsCseOptions } from '../engine/aws-cse/options.js';
import type { AwsCseOptions } from '../engine/aws-cse/index.js';
import { DEFAULT_CONCURRENCY } from './config.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import type { Runtime } from './runtime.js';

export const S3_GROUP = 'S3 options:';
export const KEY_GROUP = 'Key options:';
export const GENERAL_GROUP = 'General options:';
export const AWS_CSE_GROUP = 'AWS S3 Encryption Client interop (docs/aws-cse.md):';

/** Global options: valid for every command and shown in every command's --help. */
export const GLOBAL_OPTIONS: Record<string, Options> = {
  endpoint: {
    type: 'string',
    group: S3_GROUP,
    describe: 'S3 endpoint URL [env: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; default: AWS]',
    requiresArg: true,
  },
  'path-style': {
    type: 'boolean',
    group: S3_GROUP,
    describe: 'Use path-style bucket addressing [default: on for IP/localhost endpoints]',
  },
  region: { type: 'string', group: S3_GROUP, describe: 'AWS region [env: AWS_REGION; default: us-east-1]', requiresArg: true },
  profile: { type: 'string', group: S3_GROUP, describe: 'AWS credentials profile [env: AWS_PROFILE]', requiresArg: true },
  'key-file': {
    type: 'string',
    group: KEY_GROUP,
    describe: 'Master key file (from `s3cryptfs keygen`) [env: S3CRYPTFS_KEY_FILE]',
    requiresArg: true,
  },
  'passphrase-file': {
    type: 'string',
    group: KEY_GROUP,
    describe: 'File holding a passphrase (scrypt) [env: S3CRYPTFS_PASSPHRASE_FILE]',
    requiresArg: true,
  },
  'read-key-file': {
    type: 'string',
    group: KEY_GROUP,
    describe: 'Another master key file objects may be sealed with (during a key rotation: the old key); repeatable [env: S3CRYPTFS_READ_KEY_FILE, comma-separated]',
    requiresArg: true,
  },
  'aws-cse-key-file': {
    type: 'string',
    group: AWS_CSE_GROUP,
    describe: 'Raw 32-byte AES master key of AWS S3EC objects (reads AES/ECB, AESWrap, AES/GCM wraps; writes AES/GCM)',
    requiresArg: true,
  },
  'aws-cse-rsa-key': {
    type: 'string',
    group: AWS_CSE_GROUP,
    describe: 'PEM RSA private key of AWS S3EC objects (reads RSA-OAEP-SHA1 and V1 RSA; writes RSA-OAEP-SHA1)',
    requiresArg: true,
  },
  'aws-cse-kms-key-id': {
    type: 'string',
    group: AWS_CSE_GROUP,
    describe: 'AWS KMS key id/ARN/alias of AWS S3EC objects (reads kms, kms+context; writes kms+context)',
    requiresArg: true,
  },
  'aws-kms-endpoint': {
    type: 'string',
    group: AWS_CSE_GROUP,
    describe: 'AWS KMS endpoint URL [env: AWS_ENDPOINT_URL_KMS; default: AWS]',
    requiresArg: true,
  },
  format: {
    type: 'string',
    group: AWS_CSE_GROUP,
    choices: ['native', 'aws-cse-v2'],
    describe: 'Format new objects are written in: s3cryptfs (native) or the AWS S3 Encryption Client V2 (AES/GCM) [default: native]',
    requiresArg: true,
  },
  config: {
    type: 'string',
    group: GENERAL_GROUP,
    describe: 'JSON config file [env: S3CRYPTFS_CONFIG; default: ~/.config/s3cryptfs/config.json]',
    requiresArg: true,
  },
  concurrency: {
    type: 'string',
    group: GENERAL_GROUP,
    describe: `Parallel object operations (verify, rm -r) [default: ${DEFAULT_CONCURRENCY}]`,
    requiresArg: true,
  },
  progress: { type: 'boolean', group: GENERAL_GROUP, describe: 'Show a progress bar for long transfers on a terminal [default: true]' },
  quiet: { type: 'boolean', alias: 'q', group: GENERAL_GROUP, describe: 'No informational output and no progress bar' },
  verbose: { type: 'boolean', alias: 'v', group: GENERAL_GROUP, describe: 'Debug log (JSON) on stderr' },
};

export const INIT_OPTIONS: Record<string, Options> = {
  cipher: {
    type: 'string',
    choices: ['chacha20-poly1305', 'aes-256-gcm'],
    describe: 'Content cipher [default: aes-256-gcm where the CPU has AES instructions, else chacha20-poly1305]',
    requiresArg: true,
  },
  'chunk-size': {
    type: 'string',
    describe: `Plaintext bytes per authenticated chunk, a multiple of 4096 (e.g. 64K, 1M) [default: ${DEFAULT_CHUNK_SIZE / 1024}K]`,
    requiresArg: true,
  },
  'encrypt-names': { type: 'boolean', describe: 'Encrypt file and directory names (AES-SIV) [default: true]' },
  'kdf-n': {
    type: 'string',
    describe: 'scrypt cost N for --passphrase-file, a power of two [default: 131072 = 2^17]',
    requiresArg: true,
  },
};

export function withOptions<T>(y: Argv<T>, options: Record<string, Options>): Argv<T> {
  return y.options(options) as Argv<T>;
}

/** The --aws-cse-* settings as engine options (undefined when none is given). */
export async function awsCseOptions(rt: Runtime): Promise<AwsCseOptions | undefined> {
  try {
    return await loadAwsCseOptions({
      keyFile: rt.setting<string>('aws-cse-key-file'),
      rsaKeyFile: rt.setting<string>('aws-cse-rsa-key'),
      kmsKeyId: rt.setting<string>('aws-cse-kms-key-id'),
      kmsEndpoint: rt.setting<string>('aws-kms-endpoint'),
      region: rt.setting<string>('region'),
      format: rt.setting<string>('format'),
    });
  } catch (err) {
    if (err instanceof AwsCseConfigError) throw new CliError(ExitCode.USAGE, err.message);
    throw err;
  }
}
