/** The FUSE bindings s3cryptfs can mount with (selected by `mount --fuse=NAME`). */
import type { FuseBinding } from './types.js';

/**
 * fuse3: our N-API addon over libfuse3's low-level API. fuse-native (libfuse 2) stays as the
 * fallback: without --fuse, a machine where fuse3 cannot mount (addon not built, no libfuse3)
 * gets fuse-native. docs/semantics.md, "FUSE bindings", lists what differs.
 */
export const DEFAULT_BINDING = 'fuse3';
export const BINDING_NAMES = ['fuse3', 'fuse-native'] as const;

/** The binding `name`; without a name, fuse3 when it can mount here, else fuse-native. */
export async function loadBinding(name?: string): Promise<FuseBinding> {
  switch (name) {
    case undefined: {
      const preferred = await loadBinding(DEFAULT_BINDING);
      if ((await preferred.unavailableReason()) === null) return preferred;
      const fallback = await loadBinding('fuse-native');
      // When neither can mount, report the preferred binding's reason.
      return (await fallback.unavailableReason()) === null ? fallback : preferred;
    }
    case 'fuse3': {
      const { Fuse3Binding } = await import('./fuse3/index.js');
      return new Fuse3Binding();
    }
    case 'fuse-native': {
      const { FuseNativeBinding } = await import('./fuse-native/index.js');
      return new FuseNativeBinding();
    }
    default:
      throw new RangeError(`unknown FUSE binding "${name}" (available: ${BINDING_NAMES.join(', ')})`);
  }
}

export * from './types.js';
