/** Option definitions shared by several commands. Defaults are applied in config.ts, not by yargs. */
import type { Argv, Options } from 'yargs';
import { DEFAULT_CHUNK_SIZE, DEFAULT_CIPHER } from '../format/config.js';
import { DEFAULT_CONCURRENCY } from './config.js';

export const S3_GROUP = 'S3 options:';
export const KEY_GROUP = 'Key options:';
export const GENERAL_GROUP = 'General options:';

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
    describe: `Content cipher [default: ${DEFAULT_CIPHER}]`,
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
