/**
 * Directory objects: the marker of a directory ("<encoded dir>/", or DIR_INDEX_ROOT_NAME for the
 * root) carries the directory's own sealed attributes in its metadata and, as its body, the
 * directory attribute index (src/format/dir-index.ts). Both are caches/extras: an empty body is a
 * plain marker, and a missing or unreadable index only costs HEADs.
 */
import { DIR_INDEX_ROOT_NAME, IntegrityError, openDirIndex, sealDirIndex, type DirIndex } from '../format/index.js';
import { isStoreError } from '../store/errors.js';
import { attributesMetadata, readAttributes } from './attributes.js';
import type { EngineContext } from './context.js';

export const DIR_CONTENT_TYPE = 'application/x-directory';

export interface DirObject {
  /** False when the directory has no marker (it exists only through what is below it, or is the root). */
  exists: boolean;
  /** The directory's own attributes; null when its marker has none. */
  attributes: Record<string, string> | null;
  /** The attribute index; null when there is none or it did not authenticate (then `error` says why). */
  index: DirIndex | null;
  error?: IntegrityError;
}

/** Key of the object holding a directory's attributes and index. */
export function dirObjectKey(ctx: EngineContext, dir: string): string {
  const d = dir.replace(/\/+$/, '');
  return d === '' ? ctx.paths.keyPrefix + DIR_INDEX_ROOT_NAME : ctx.paths.markerKey(d);
}

/**
 * One GET: the directory's attributes and index. Never throws for bad contents (see `error`).
 * An index that fails authentication is read once more first: a server that writes objects in
 * place (s3rver) can hand out a half-written body while the index is being replaced.
 */
export async function readDirObject(ctx: EngineContext, dir: string): Promise<DirObject> {
  const key = dirObjectKey(ctx, dir);
  for (let attempt = 0; ; attempt++) {
    let got;
    try {
      got = await ctx.store.getObject(ctx.bucket, key);
    } catch (err) {
      if (isStoreError(err, 'NoSuchKey')) return { exists: false, attributes: null, index: null };
      throw err;
    }
    const out: DirObject = { exists: true, attributes: attributesOf(ctx, key, got.info.metadata), index: null };
    if (got.body.length === 0) return out;
    try {
      out.index = openDirIndex(ctx.bucketKeys.attrKey, ctx.paths.relativeKey(key), got.body);
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      if (attempt === 0) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      out.error = err;
      ctx.warn({ code: 'BAD_DIR_INDEX', key, message: `ignoring the attribute index of "${dir}": ${err.message}` });
    }
    return out;
  }
}

/** HEAD: the directory's own attributes (null without a marker or attributes). */
export async function readDirAttributes(ctx: EngineContext, dir: string): Promise<Record<string, string> | null> {
  const key = dirObjectKey(ctx, dir);
  const info = await ctx.store.head(ctx.bucket, key);
  return info ? attributesOf(ctx, key, info.metadata) : null;
}

/**
 * Stores the index with the directory's attributes (one PUT). `attributes` undefined keeps the
 * stored ones (one HEAD first).
 */
export async function writeDirIndex(ctx: EngineContext, dir: string, index: DirIndex, attributes?: Record<string, string> | null): Promise<void> {
  const key = dirObjectKey(ctx, dir);
  const attrs = attributes === undefined ? await readDirAttributes(ctx, dir) : attributes;
  const body = sealDirIndex(ctx.bucketKeys.attrKey, ctx.paths.relativeKey(key), index);
  await ctx.store.put(ctx.bucket, key, body, { contentType: DIR_CONTENT_TYPE, metadata: attrs ? attributesMetadata(ctx, key, attrs) : undefined });
}

/** Replaces the directory's attributes, keeping its index (a copy onto itself); creates the marker if missing. */
export async function writeDirAttributes(ctx: EngineContext, dir: string, attributes: Record<string, string>): Promise<void> {
  const key = dirObjectKey(ctx, dir);
  const metadata = attributesMetadata(ctx, key, attributes);
  try {
    await ctx.store.copy(ctx.bucket, key, key, { metadata, metadataDirective: 'REPLACE', contentType: DIR_CONTENT_TYPE });
  } catch (err) {
    if (!isStoreError(err, 'NoSuchKey')) throw err;
    await ctx.store.put(ctx.bucket, key, Buffer.alloc(0), { contentType: DIR_CONTENT_TYPE, metadata });
  }
}

function attributesOf(ctx: EngineContext, key: string, metadata: Record<string, string> | undefined): Record<string, string> | null {
  try {
    const a = readAttributes(ctx, key, metadata);
    return Object.keys(a).length ? a : null;
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    ctx.warn({ code: 'BAD_ATTRIBUTES', key, message: `ignoring the attributes of a directory: ${err.message}` });
    return null;
  }
}
