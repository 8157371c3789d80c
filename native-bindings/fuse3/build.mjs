#!/usr/bin/env node
// Builds the libfuse3 addon (build/Release/fuse3.node) with node-gyp against the system libfuse3
// (pkg-config fuse3) and Node's own headers (no download). Skips the build when the addon is newer
// than its sources.
//
//   node native-bindings/fuse3/build.mjs [--force] [--optional] [--asan]
//
// --optional: when libfuse3's headers or a compiler are missing, say so and exit 0 (the fuse3
//             binding then reports itself unavailable and the mount falls back to fuse-native).
// --asan:     a separate AddressSanitizer build in build-asan/fuse3.node (npm run test:native-asan).
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildAddon, pkgConfig } from '../build-addon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const words = (s) => s.split(/\s+/).filter(Boolean);

buildAddon({
  name: 'fuse3',
  dir: here,
  sources: [path.join(here, 'src/fuse3.c'), path.join(here, 'src/unmount-guard.c'), path.join(here, 'src/unmount-guard.h'), path.join(here, 'src/unmount-guard-main.c'), path.join(here, 'binding.gyp'), fileURLToPath(import.meta.url)],
  label: 'libfuse3 binding',
  fallback: 'the mount falls back to fuse-native',
  precheck: (fail) => {
    if (pkgConfig('--modversion', 'fuse3') === null) fail('libfuse3 development files not found (Debian/Ubuntu: apt-get install libfuse3-dev pkg-config)');
  },
  programs: { 's3cryptfs-unmount-guard': [path.join(here, 'src/unmount-guard-main.c')] },
  asan: () => ({ cflags: words(pkgConfig('--cflags', 'fuse3')), libs: [...words(pkgConfig('--libs', 'fuse3')), '-ldl'] }),
});
