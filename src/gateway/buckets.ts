/**
 * The buckets clients may see, each mapped onto an s3cryptfs store (backend bucket + prefix) and
 * opened lazily as an Engine. The master key is loaded per store config (a passphrase key depends
 * on the store's scrypt salt); a key file or S3CRYPTFS_KEY gives the same key for every store.
 */
import { Engine, EngineError, type EngineOptions } from '../engine/index.js';
import { normalizePrefix } from '../engine/paths.js';
import { CONFIG_OBJECT_NAME, newBucketConfig, parseConfig, type BucketConfig, type CipherName, type DerivedKeys } from '../format/index.js';
import { loadKeys, newScryptParams, PassphraseFileSource, type KeySource } from '../keys/index.js';
import { isStoreError } from '../store/errors.js';
import type { ObjectStore } from '../store/store.js';

export interface BucketSpec {
  /** Name clients use. */
  name: string;
  backendBucket: string;
  /** Store prefix inside the backend bucket ("" or "a/b/"). */
  prefix: string;
}

export interface StoreDefaults {
  cipher: CipherName;
  chunkSize: number;
  names: 'plain' | 'aes-siv';
}

export interface OpenBucket {
  spec: BucketSpec;
  engine: Engine;
  /** The backend store the engine uses. */
  store: ObjectStore;
  config: BucketConfig;
  keys: DerivedKeys;
  /** When the store was created (the config object's Last-Modified). */
  created: Date;
}

export type EngineTuning = Pick<EngineOptions, 'cacheBytes' | 'partSize' | 'uploadConcurrency' | 'readaheadMaxBytes' | 'readKeys' | 'awsCse'>;

export class BucketRegistry {
  private readonly specs = new Map<string, BucketSpec>();
  private readonly opened = new Map<string, Promise<OpenBucket>>();
  /** Derived keys by the store's kdf (JSON) or "" for key sources that ignore it. */
  private readonly keyCache = new Map<string, Promise<DerivedKeys>>();
  /** Set once any key load succeeded: /readyz. */
  keyLoaded = false;
  keyError: string | undefined;

  constructor(
    readonly store: ObjectStore,
    specs: BucketSpec[],
    private readonly keySource: KeySource,
    readonly tuning: EngineTuning = {},
    private readonly onWarning?: (message: string) => void,
  ) {
    for (const s of specs) this.specs.set(s.name, { ...s, prefix: normalizePrefix(s.prefix) });
  }

  names(): string[] {
    return [...this.specs.keys()].sort();
  }

  spec(name: string): BucketSpec | undefined {
    return this.specs.get(name);
  }

  /** Loads the key once (for readiness); a passphrase key needs a store config, so it waits for one. */
  async loadKey(): Promise<void> {
    if (this.keySource instanceof PassphraseFileSource) {
      for (const name of this.names()) {
        try {
          await this.open(name);
          return;
        } catch (err) {
          if (!(err instanceof EngineError && err.code === 'NOT_INITIALIZED')) throw err;
        }
      }
      return;
    }
    await this.keysFor(undefined);
  }

  private keysFor(config: BucketConfig | undefined): Promise<DerivedKeys> {
    const id = this.keySource instanceof PassphraseFileSource ? JSON.stringify(config?.kdf ?? null) : '';
    let p = this.keyCache.get(id);
    if (!p) {
      p = loadKeys(this.keySource, config).then(
        (loaded) => {
          this.keyLoaded = true;
          this.keyError = undefined;
          return loaded.keys;
        },
        (err: unknown) => {
          this.keyCache.delete(id);
          this.keyError = err instanceof Error ? err.message : String(err);
          throw err;
        },
      );
      this.keyCache.set(id, p);
    }
    return p;
  }

  /** The opened store; EngineError NOT_INITIALIZED when there is no config object, StoreError NoSuchBucket... */
  open(name: string): Promise<OpenBucket> {
    let p = this.opened.get(name);
    if (!p) {
      const spec = this.specs.get(name);
      if (!spec) return Promise.reject(new EngineError('NOT_FOUND', `bucket ${name} is not served`));
      p = this.doOpen(spec);
      this.opened.set(name, p);
      p.catch(() => this.opened.delete(name));
    }
    return p;
  }

  /** Forgets an opened store (after DeleteBucket). */
  forget(name: string): void {
    this.opened.delete(name);
  }

  private async doOpen(spec: BucketSpec): Promise<OpenBucket> {
    const configKey = spec.prefix + CONFIG_OBJECT_NAME;
    let config: BucketConfig;
    let created: Date;
    try {
      const { body, info } = await this.store.getObject(spec.backendBucket, configKey);
      config = parseConfig(body.toString('utf8'));
      created = info.lastModified;
    } catch (err) {
      if (isStoreError(err, 'NoSuchKey')) {
        throw new EngineError('NOT_INITIALIZED', `s3://${spec.backendBucket}/${configKey} not found: not an s3cryptfs store`, { cause: err });
      }
      throw err;
    }
    const keys = await this.keysFor(config);
    const engine = await Engine.open({
      store: this.store,
      bucket: spec.backendBucket,
      prefix: spec.prefix,
      keys,
      config,
      ...this.tuning,
      onWarning: (w) => this.onWarning?.(w.message),
    });
    return { spec, engine, store: this.store, config, keys, created };
  }

  /**
   * CreateBucket: creates the backend bucket when the store is the whole bucket, then writes a new
   * store config (EngineError ALREADY_INITIALIZED when there is one).
   */
  async create(name: string, defaults: StoreDefaults): Promise<void> {
    const spec = this.specs.get(name);
    if (!spec) throw new EngineError('NOT_FOUND', `bucket ${name} is not served`);
    if (spec.prefix === '') await this.store.createBucket(spec.backendBucket);
    const kdf = this.keySource instanceof PassphraseFileSource ? newScryptParams() : undefined;
    const { keys } = await loadKeys(this.keySource, kdf ? { kdf } : undefined);
    this.keyLoaded = true;
    const config = newBucketConfig(keys, { cipher: defaults.cipher, chunkSize: defaults.chunkSize, names: defaults.names, kdf });
    await Engine.init(this.store, spec.backendBucket, spec.prefix, config);
    this.opened.delete(name);
  }
}
