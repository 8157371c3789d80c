#!/usr/bin/env node
// Builds the chunk AEAD addon (build/Release/aead.node) with node-gyp against Node's own headers,
// including the OpenSSL headers Node ships (include/node/openssl): the addon links no library, its
// EVP_* symbols resolve from the running node at load. Skips the build when the addon is newer than
// its sources.
//
//   node native-bindings/aead/build.mjs [--force] [--optional] [--asan]
//
// --optional: when headers or a compiler are missing, say so and exit 0 (the engine then seals on the
//             event loop through node:crypto, as before).
// --asan:     a separate AddressSanitizer build in build-asan/aead.node (npm run test:native-asan).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { buildAddon } from '../build-addon.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));

buildAddon({
  name: 'aead',
  dir: here,
  sources: [path.join(here, 'src/aead.c'), path.join(here, 'binding.gyp'), fileURLToPath(import.meta.url)],
  label: 'AEAD addon',
  fallback: 'chunks are then sealed on the event loop',
  precheck: (fail, nodedir) => {
    // Node's bundled OpenSSL headers; a node linked against the system's OpenSSL (Debian's) uses libssl-dev's.
    if (!existsSync(path.join(nodedir, 'include/node/openssl/evp.h')) && !existsSync('/usr/include/openssl/evp.h')) {
      fail('OpenSSL headers not found (include/node/openssl/evp.h, or apt-get install libssl-dev)');
    }
    if (!process.versions.openssl) fail('this node has no OpenSSL');
  },
});
