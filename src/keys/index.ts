/** Master key sources behind one seam (KeySource), and turning a master key into derived keys. */
import type { BucketConfig } from '../format/config.js';
import { deriveKeys, type DerivedKeys } from '../format/kdf.js';
import { EnvKeySource, KEY_ENV_VAR } from './env.js';
import { KeyError } from './errors.js';
import { KeyFileSource } from './key-file.js';
import { isMemkeyUrl, MemkeySource } from './memkey.js';
import { PassphraseFileSource } from './passphrase.js';
import type { KeySource } from './types.js';

export * from './errors.js';
export * from './types.js';
export * from './encoding.js';
export * from './key-file.js';
export * from './passphrase.js';
export * from './env.js';
export * from './memkey.js';

export interface KeySourceOptions {
  /** Path of a key file, or a `memkey:` URL. */
  keyFile?: string;
  passphraseFile?: string;
  /** Use the key in this environment variable (S3CRYPTFS_KEY). */
  keyEnv?: string;
  env?: NodeJS.ProcessEnv;
}

/** Exactly one of the options must be set. */
export function createKeySource(opts: KeySourceOptions): KeySource {
  const given = [opts.keyFile && '--key-file', opts.passphraseFile && '--passphrase-file', opts.keyEnv && opts.keyEnv].filter(Boolean);
  if (given.length > 1) throw new KeyError('AMBIGUOUS_KEY_SOURCE', `give only one key source (got ${given.join(' and ')})`);
  if (opts.keyFile) return isMemkeyUrl(opts.keyFile) ? new MemkeySource(opts.keyFile) : new KeyFileSource(opts.keyFile);
  if (opts.passphraseFile) return new PassphraseFileSource(opts.passphraseFile);
  if (opts.keyEnv) return new EnvKeySource(opts.keyEnv, opts.env);
  throw new KeyError(
    'NO_KEY_SOURCE',
    `no key given: use --key-file PATH, --passphrase-file PATH, or set ${KEY_ENV_VAR} (see s3cryptfs keygen --help)`,
  );
}

/** Key id (hex) of a master key, as recorded in the bucket config and object headers. */
export function keyIdOf(masterKey: Uint8Array): string {
  return deriveKeys(masterKey).keyId.toString('hex');
}

export interface LoadedKeys {
  keys: DerivedKeys;
  keyId: string;
  source: string;
}

/** Loads the master key, derives the working keys and zeroes the master key. */
export async function loadKeys(source: KeySource, config?: Pick<BucketConfig, 'kdf'>): Promise<LoadedKeys> {
  const master = await source.load({ config });
  try {
    const keys = deriveKeys(master);
    return { keys, keyId: keys.keyId.toString('hex'), source: source.describe() };
  } finally {
    master.fill(0);
  }
}

/** Best-effort wipe of derived keys once they are no longer needed. */
export function wipeKeys(keys: DerivedKeys): void {
  keys.keyId.fill(0);
  keys.kek.fill(0);
}
