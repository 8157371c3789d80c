/**
 * Opening an initialised bucket prefix for a command: find the prefix that holds the config object,
 * load the key (after the config: a passphrase needs the config's scrypt parameters), open the engine.
 */
import { Engine, EngineError, type EngineWarning } from '../engine/index.js';
import { normalizePrefix } from '../engine/paths.js';
import { CONFIG_OBJECT_NAME, parseConfig, type BucketConfig } from '../format/config.js';
import type { DerivedKeys } from '../format/kdf.js';
import { loadKeys } from '../keys/index.js';
import { isStoreError } from '../store/errors.js';
import type { ObjectStore } from '../store/store.js';
import { awsCseOptions } from './options.js';
import type { Runtime } from './runtime.js';
import { formatS3Url, type S3Url } from './s3url.js';

export interface OpenedBucket {
  engine: Engine;
  store: ObjectStore;
  bucket: string;
  /** "" or "prefix/". */
  prefix: string;
  /** Plaintext path relative to the prefix ("" = the prefix itself; a trailing "/" kept). */
  path: string;
  config: BucketConfig;
  keyId: string;
  /** Entries that listings skipped (not readable with this key, impossible sizes). */
  warnings: EngineWarning[];
}

/**
 * Candidate prefixes for a location, shortest first: "" then each leading directory of the key.
 * For a file the last segment is the file itself, so it is never a candidate.
 */
export function candidatePrefixes(key: string, kind: 'file' | 'dir'): string[] {
  const segments = key.split('/').filter((s) => s !== '');
  const dirs = kind === 'file' && !key.endsWith('/') ? segments.slice(0, -1) : segments;
  const out = [''];
  for (let i = 1; i <= dirs.length; i++) out.push(dirs.slice(0, i).join('/') + '/');
  return out;
}

export async function readBucketConfig(store: ObjectStore, bucket: string, prefix: string): Promise<BucketConfig | null> {
  try {
    const { body } = await store.getObject(bucket, normalizePrefix(prefix) + CONFIG_OBJECT_NAME);
    return parseConfig(body.toString('utf8'));
  } catch (err) {
    if (isStoreError(err, 'NoSuchKey')) return null;
    throw err;
  }
}

export async function openBucket(rt: Runtime, url: S3Url, kind: 'file' | 'dir'): Promise<OpenedBucket> {
  const store = rt.store();
  // The nearest enclosing store wins (like nested git repositories). The candidates are few, so
  // they are probed in parallel.
  const candidates = candidatePrefixes(url.key, kind);
  const configs = await Promise.all(candidates.map((prefix) => readBucketConfig(store, url.bucket, prefix)));
  let found: { prefix: string; config: BucketConfig } | undefined;
  for (let i = candidates.length - 1; i >= 0 && !found; i--) {
    const config = configs[i];
    if (config) found = { prefix: candidates[i], config };
  }
  if (!found) {
    const where = candidates.map((p) => formatS3Url(url.bucket, p)).join(', ');
    throw new EngineError('NOT_INITIALIZED', `no s3cryptfs store at ${where} (run \`s3cryptfs init s3://${url.bucket}[/PREFIX]\` first)`);
  }
  const { prefix, config } = found;
  rt.log.debug({ bucket: url.bucket, prefix, cipher: config.cipher, names: config.names }, 'bucket config');
  const source = rt.keySource();
  const { keys, keyId } = await loadKeys(source, config);
  if (!config.keyIds.includes(keyId)) {
    const hint = config.kdf && !source.describe().startsWith('passphrase')
      ? ' (this bucket was initialised with a passphrase: use --passphrase-file)'
      : '';
    throw new EngineError('WRONG_KEY', `wrong key for ${formatS3Url(url.bucket, prefix)}: ${source.describe()} has key id ${keyId}, the bucket expects ${config.keyIds.join(' or ')}${hint}`);
  }
  const warnings: EngineWarning[] = [];
  const readKeys = await openReadKeys(rt, config, formatS3Url(url.bucket, prefix));
  const engine = await Engine.open({
    store,
    bucket: url.bucket,
    prefix,
    keys,
    readKeys,
    config,
    awsCse: await awsCseOptions(rt),
    onWarning: (w) => {
      warnings.push(w);
      rt.log.debug({ warning: w.code, key: w.key }, w.message);
    },
  });
  return { engine, store, bucket: url.bucket, prefix, path: url.key.slice(prefix.length), config, keyId, warnings };
}

/**
 * The --read-key-file keys for a store. During a rotation the config lists the old and the new key
 * id: with the new key as --key-file and the old one as a read key, every object opens. A read key
 * the config does not list is still used (objects may outlive a finished rotation's config) but said.
 */
export async function openReadKeys(rt: Runtime, config: BucketConfig, where: string): Promise<DerivedKeys[]> {
  const readKeys = await rt.readKeys();
  for (const k of readKeys) {
    const id = k.keyId.toString('hex');
    if (!config.keyIds.includes(id)) rt.log.debug({ keyId: id, store: where, listed: config.keyIds }, 'read key not listed in the store config');
  }
  return readKeys;
}
