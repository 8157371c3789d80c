/**
 * Master key derived from a passphrase with scrypt. The parameters and salt live in the bucket
 * config (`kdf`), written by `init`; they are not secret.
 */
import { randomBytes } from 'node:crypto';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import type { ScryptParams } from '../format/config.js';
import { MASTER_KEY_SIZE } from '../format/kdf.js';
import { KeyError } from './errors.js';
import { readSecretFile } from './secure-file.js';
import type { KeyContext, KeySource } from './types.js';

export const DEFAULT_SCRYPT_N = 2 ** 17;
export const DEFAULT_SCRYPT_R = 8;
export const DEFAULT_SCRYPT_P = 1;
const SALT_BYTES = 32;
const MAX_PASSPHRASE_FILE_BYTES = 64 * 1024;

/** Fresh scrypt parameters for `init`. N must be a power of two between 2 and 2^24. */
export function newScryptParams(opts: { N?: number } = {}): ScryptParams {
  const N = opts.N ?? DEFAULT_SCRYPT_N;
  if (!Number.isInteger(N) || N < 2 || N > 2 ** 24 || (N & (N - 1)) !== 0) {
    throw new RangeError('scrypt N must be a power of two between 2 and 2^24');
  }
  return { algorithm: 'scrypt', N, r: DEFAULT_SCRYPT_R, p: DEFAULT_SCRYPT_P, salt: randomBytes(SALT_BYTES).toString('hex') };
}

/** scrypt(passphrase, salt) -> 32-byte master key. */
export async function deriveFromPassphrase(passphrase: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  try {
    return await scryptAsync(passphrase, Buffer.from(params.salt, 'hex'), {
      N: params.N,
      r: params.r,
      p: params.p,
      dkLen: MASTER_KEY_SIZE,
      maxmem: 2 ** 32,
    });
  } catch (err) {
    throw new KeyError('KDF_FAILED', `scrypt with N=${params.N}, r=${params.r}, p=${params.p} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

export class PassphraseFileSource implements KeySource {
  constructor(readonly path: string) {}

  describe(): string {
    return `passphrase file ${this.path}`;
  }

  async load(ctx: KeyContext): Promise<Uint8Array> {
    const kdf = ctx.config?.kdf;
    if (!kdf) {
      throw new KeyError('KDF_MISSING', 'this bucket was initialised with a key file, not a passphrase; use --key-file');
    }
    const raw = await readSecretFile(this.path, 'passphrase file', MAX_PASSPHRASE_FILE_BYTES);
    // One trailing newline (as editors and `echo` write it) is not part of the passphrase.
    let end = raw.length;
    if (end > 0 && raw[end - 1] === 0x0a) end--;
    if (end > 0 && raw[end - 1] === 0x0d) end--;
    const passphrase = raw.subarray(0, end);
    try {
      if (passphrase.length === 0) throw new KeyError('PASSPHRASE_EMPTY', `passphrase file ${this.path} is empty`);
      return await deriveFromPassphrase(passphrase, kdf);
    } finally {
      raw.fill(0);
    }
  }
}
