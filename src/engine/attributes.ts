/** Object attributes in S3 metadata, sealed with the bucket's attribute key (the same under every master key). */
import { ATTRIBUTES_METADATA_KEY, openAttributes, sealAttributes } from '../format/index.js';
import type { EngineContext } from './context.js';

/** Metadata carrying `attrs` sealed for `key` (bound to the key relative to the prefix). */
export function attributesMetadata(ctx: EngineContext, key: string, attrs: Record<string, string>): Record<string, string> {
  return { [ATTRIBUTES_METADATA_KEY]: sealAttributes(ctx.bucketKeys.attrKey, ctx.paths.relativeKey(key), attrs) };
}

/** Opens the attributes of the object at `key`; {} when it has none. Throws IntegrityError ATTRIBUTES_TAMPERED. */
export function readAttributes(ctx: EngineContext, key: string, metadata: Record<string, string> | undefined): Record<string, string> {
  const sealed = metadata?.[ATTRIBUTES_METADATA_KEY];
  if (sealed === undefined) return {};
  const bound = ctx.paths.relativeKey(key);
  return openAttributes(ctx.bucketKeys.attrKey, bound, sealed);
}
