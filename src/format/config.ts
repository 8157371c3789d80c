/**
 * The per-bucket(-prefix) config object written by `s3cryptfs init`. Plain JSON: it holds no secret,
 * only the parameters every object under the prefix is written with and a key-check value.
 */
import { newBucketKeys, unwrapBucketKeys, wrapBucketKeys, WRAPPED_BUCKET_KEYS_SIZE, type BucketKeys } from './bucket-keys.js';
import { ConfigError } from './errors.js';
import { CIPHER_IDS, isValidChunkSize, type CipherName } from './header.js';
import type { DerivedKeys } from './kdf.js';

export const CONFIG_OBJECT_NAME = '.s3cryptfs.json';
/** Smallest size meeting the rule in bench:crypto for both ciphers (see docs/format.md, "Chunk size"). */
export const DEFAULT_CHUNK_SIZE = 128 * 1024;
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
  /** The bucket keys (names, attributes) wrapped under each listed master key: key id (hex) -> entry. */
  bucketKeys: Record<string, string>;
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
  if (new Set(c.keyIds).size !== c.keyIds.length) return bad('keyIds lists a key id twice');
  const bk = c.bucketKeys as Record<string, unknown> | undefined;
  if (!bk || typeof bk !== 'object' || Array.isArray(bk)) return bad('bucketKeys must map every key id to its wrapped bucket keys');
  const wrappedPattern = new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((WRAPPED_BUCKET_KEYS_SIZE * 4) / 3)}}$`);
  const bucketKeys: Record<string, string> = {};
  for (const id of c.keyIds) {
    const entry = Object.hasOwn(bk, id) ? bk[id] : undefined;
    if (typeof entry !== 'string' || !wrappedPattern.test(entry)) return bad(`bucketKeys has no valid entry for key id ${id}`);
    bucketKeys[id] = entry;
  }
  if (Object.keys(bk).length !== c.keyIds.length) return bad('bucketKeys has entries for key ids not in keyIds');
  const config: BucketConfig = { format: 's3cryptfs', version: 1, cipher: c.cipher, chunkSize: c.chunkSize, names: c.names, keyIds: [...c.keyIds], bucketKeys };
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

export interface NewConfigParams {
  cipher?: CipherName;
  chunkSize?: number;
  names?: NameMode;
  kdf?: ScryptParams;
}

/** A config for a new bucket prefix written with `keys`: fresh random bucket keys, wrapped for it. */
export function newBucketConfig(keys: DerivedKeys, params: NewConfigParams = {}, bucketKeys: BucketKeys = newBucketKeys()): BucketConfig {
  const keyId = keys.keyId.toString('hex');
  const config: BucketConfig = {
    format: 's3cryptfs',
    version: 1,
    cipher: params.cipher ?? DEFAULT_CIPHER,
    chunkSize: params.chunkSize ?? DEFAULT_CHUNK_SIZE,
    names: params.names ?? 'aes-siv',
    keyIds: [keyId],
    bucketKeys: { [keyId]: wrapBucketKeys(keys, bucketKeys) },
  };
  if (params.kdf) config.kdf = params.kdf;
  return validateConfig(config);
}

/**
 * The bucket keys, unwrapped with the first of `keys` the config lists. ConfigError CONFIG_INVALID
 * when none is listed; IntegrityError KEY_UNWRAP_FAILED when the entry does not authenticate.
 */
export function openBucketKeys(config: BucketConfig, keys: DerivedKeys[]): BucketKeys {
  for (const k of keys) {
    const entry = config.bucketKeys[k.keyId.toString('hex')];
    if (entry !== undefined) return unwrapBucketKeys(k, entry);
  }
  throw new ConfigError('CONFIG_INVALID', `bucket config has no bucket keys for key id ${keys.map((k) => k.keyId.toString('hex')).join(', ')}`);
}
