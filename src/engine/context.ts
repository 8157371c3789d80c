/** What the engine's modules share: store, bucket, keys, codecs, caches and counters. */
import type { BucketConfig, BucketKeys, DerivedKeys, KeyRing } from '../format/index.js';
import type { AwsCse } from './aws-cse/index.js';
import type { ChunkCache } from './chunk-cache.js';
import type { PathCodec } from './paths.js';
import type { EngineStats } from './stats.js';
import type { EngineStore } from './store-port.js';
import type { PartPool } from './writer.js';

export interface EngineWarning {
  code: 'INVALID_SIZE' | 'BAD_NAME' | 'BAD_ATTRIBUTES' | 'BAD_DIR_INDEX';
  /** The raw S3 key concerned. */
  key: string;
  message: string;
}

export interface EngineContext {
  readonly store: EngineStore;
  readonly bucket: string;
  readonly config: BucketConfig;
  /** Keys new objects are written with. */
  readonly keys: DerivedKeys;
  /** Every key objects may be read with (keys first, then readKeys). */
  readonly readKeys: DerivedKeys[];
  /** The bucket's name and attribute keys (from the config, unwrapped with one of the master keys). */
  readonly bucketKeys: BucketKeys;
  readonly ring: KeyRing;
  readonly paths: PathCodec;
  readonly cache: ChunkCache;
  readonly stats: EngineStats;
  readonly partSize: number;
  readonly uploadConcurrency: number;
  /** This engine's own pool of finished part buffers (else the process-wide one). */
  readonly partPool?: PartPool;
  readonly readaheadMaxBytes: number;
  readonly warn: (w: EngineWarning) => void;
  /** AWS S3 Encryption Client objects (set when S3EC keys are configured; plain-name stores only). */
  cse?: AwsCse;
}
