/**
 * The per-bucket(-prefix) config object written by `s3cryptfs init`. Plain JSON: it holds no secret,
 * only the parameters every object under the prefix is written with and a key-check value.
 */
import { ConfigError } from './errors.js';
import { CIPHER_IDS, isValidChunkSize, type CipherName } from './header.js';

export const CONFIG_OBJECT_NAME = '.s3cryptfs.json';
export const DEFAULT_CHUNK_SIZE = 64 * 1024;
export const DEFAULT_CIPHER: CipherName = 'chacha20-poly1305';

export type NameMode = 'plain' | 'aes-siv';

export interface ScryptParams {
  algorithm: 'scrypt';
  N: number;
  r: number;
  p: number;
  /** hex */
  salt: string;
}

export interface BucketConfig {
  format: 's3cryptfs';
  version: 1;
  cipher: CipherName;
  chunkSize: number;
  names: NameMode;
  /** Key ids (hex) whose objects may be read. The first is the one new objects are written with. */
  keyIds: string[];
  /** Present when the master key comes from a passphrase. */
  kdf?: ScryptParams;
}

export function encodeConfig(config: BucketConfig): string {
  return JSON.stringify(validateConfig(config), null, 2) + '\n';
}

export function parseConfig(text: string): BucketConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new ConfigError('CONFIG_INVALID', 'bucket config is not valid JSON');
  }
  return validateConfig(raw);
}

function validateConfig(raw: unknown): BucketConfig {
  const c = raw as Partial<BucketConfig> | null;
  const bad = (what: string): never => { throw new ConfigError('CONFIG_INVALID', `bucket config: ${what}`); };
  if (!c || typeof c !== 'object') return bad('not an object');
  if (c.format !== 's3cryptfs') return bad('not an s3cryptfs config');
  if (c.version !== 1) throw new ConfigError('CONFIG_UNSUPPORTED', `bucket config version ${String(c.version)} is not supported`);
  if (typeof c.cipher !== 'string' || !Object.hasOwn(CIPHER_IDS, c.cipher)) return bad(`unknown cipher ${String(c.cipher)}`);
  if (typeof c.chunkSize !== 'number' || !isValidChunkSize(c.chunkSize)) return bad(`invalid chunk size ${String(c.chunkSize)}`);
  if (c.names !== 'plain' && c.names !== 'aes-siv') return bad(`unknown name mode ${String(c.names)}`);
  if (!Array.isArray(c.keyIds) || c.keyIds.length === 0 || !c.keyIds.every((k) => typeof k === 'string' && /^[0-9a-f]{32}$/.test(k))) {
    return bad('keyIds must be a non-empty list of 32-hex-digit key ids');
  }
  const config: BucketConfig = { format: 's3cryptfs', version: 1, cipher: c.cipher, chunkSize: c.chunkSize, names: c.names, keyIds: [...c.keyIds] };
  if (c.kdf !== undefined) config.kdf = validateScrypt(c.kdf, bad);
  return config;
}

function validateScrypt(k: Partial<ScryptParams> | null, bad: (what: string) => never): ScryptParams {
  if (!k || typeof k !== 'object' || k.algorithm !== 'scrypt') return bad('kdf.algorithm must be scrypt');
  const pow2 = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n > 1 && (n & (n - 1)) === 0;
  if (!pow2(k.N) || (k.N as number) > 2 ** 24) return bad('kdf.N must be a power of two <= 2^24');
  const small = (n: unknown) => typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 64;
  if (!small(k.r) || !small(k.p)) return bad('kdf.r and kdf.p must be integers 1..64');
  if (typeof k.salt !== 'string' || !/^(?:[0-9a-f]{2}){16,64}$/.test(k.salt)) return bad('kdf.salt must be 16-64 bytes of hex');
  return { algorithm: 'scrypt', N: k.N as number, r: k.r as number, p: k.p as number, salt: k.salt };
}
