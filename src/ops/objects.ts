/**
 * Raw listing of a store's file objects for the maintenance operations (rotation, scrub): every
 * object under the prefix except the config object, directory markers and nested stores (a
 * sub-prefix with its own .s3cryptfs.json is another store, with its own keys).
 */
import { CONFIG_OBJECT_NAME, DIR_INDEX_ROOT_NAME, parseConfig } from '../format/index.js';
import type { OpsStore } from './store-port.js';

export interface RawObject {
  key: string;
  size: number;
  etag: string;
  lastModified: Date;
}

export interface ObjectListing {
  objects: RawObject[];
  /** Prefixes of nested stores that were left out. */
  nested: string[];
}

/** Lists everything below `prefix` (+ `under`, a raw sub-prefix) into memory, sorted by key. */
export async function listStoreObjects(store: OpsStore, bucket: string, prefix: string, under = ''): Promise<ObjectListing> {
  const all: RawObject[] = [];
  for await (const page of store.listAll(bucket, { prefix: prefix + under })) {
    for (const o of page.objects) all.push({ key: o.key, size: o.size, etag: o.etag, lastModified: o.lastModified });
  }
  const configKey = prefix + CONFIG_OBJECT_NAME;
  const nested: string[] = [];
  for (const o of all) {
    if (o.key === configKey || !o.key.endsWith('/' + CONFIG_OBJECT_NAME)) continue;
    // With plain names a file may be called .s3cryptfs.json: only a parsable config marks a store.
    try {
      parseConfig((await store.getObject(bucket, o.key)).body.toString('utf8'));
      nested.push(o.key.slice(0, -CONFIG_OBJECT_NAME.length));
    } catch {
      // an ordinary file
    }
  }
  const objects = all.filter((o) => o.key !== configKey && o.key !== prefix + DIR_INDEX_ROOT_NAME && !o.key.endsWith('/') && !nested.some((p) => o.key.startsWith(p)));
  return { objects, nested };
}
