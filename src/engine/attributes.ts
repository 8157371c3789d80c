/** Object attributes in S3 metadata: sealed with the write key, opened with any read key. */
import { ATTRIBUTES_METADATA_KEY, IntegrityError, openAttributes, sealAttributes } from '../format/index.js';
import type { EngineContext } from './context.js';

/** Metadata carrying `attrs` sealed for `key` (bound to the key relative to the prefix). */
export function attributesMetadata(ctx: EngineContext, key: string, attrs: Record<string, string>): Record<string, string> {
  return { [ATTRIBUTES_METADATA_KEY]: sealAttributes(ctx.keys.attrKey, ctx.paths.relativeKey(key), attrs) };
}

/** Opens the attributes of the object at `key`; {} when it has none. Throws IntegrityError ATTRIBUTES_TAMPERED. */
export function readAttributes(ctx: EngineContext, key: string, metadata: Record<string, string> | undefined): Record<string, string> {
  const sealed = metadata?.[ATTRIBUTES_METADATA_KEY];
  if (sealed === undefined) return {};
  const bound = ctx.paths.relativeKey(key);
  let failure: unknown = null;
  for (const keys of ctx.readKeys) {
    try {
      return openAttributes(keys.attrKey, bound, sealed);
    } catch (err) {
      failure ??= err;
    }
  }
  throw failure ?? new IntegrityError('ATTRIBUTES_TAMPERED', 'object attributes failed authentication');
}
