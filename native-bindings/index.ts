/** The FUSE bindings s3cryptfs can mount with (selected by `mount --fuse=NAME`). */
import type { FuseBinding } from './types.js';

export const DEFAULT_BINDING = 'fuse-native';
export const BINDING_NAMES = ['fuse3', 'fuse-native'] as const;

export async function loadBinding(name: string = DEFAULT_BINDING): Promise<FuseBinding> {
  switch (name) {
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
