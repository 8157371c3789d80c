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
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = new Set(process.argv.slice(2));
const optional = args.has('--optional');
const sources = [path.join(here, 'src/aead.c'), path.join(here, 'binding.gyp'), fileURLToPath(import.meta.url)];

function fail(msg) {
  if (optional) {
    console.error(`s3cryptfs: not building the AEAD addon: ${msg} (chunks are then sealed on the event loop)`);
    process.exit(0);
  }
  console.error(`s3cryptfs: cannot build the AEAD addon: ${msg}`);
  process.exit(1);
}

function newer(target) {
  if (!existsSync(target)) return false;
  const t = statSync(target).mtimeMs;
  return sources.every((s) => statSync(s).mtimeMs <= t);
}

/** The directory that has include/node/node_api.h for the running node (no header download). */
function nodeDir() {
  const candidates = [
    process.env.npm_config_nodedir,
    path.resolve(path.dirname(process.execPath), '..'),
    '/usr',
    '/usr/local',
  ].filter(Boolean);
  return candidates.find((d) => existsSync(path.join(d, 'include/node/node_api.h'))) ?? null;
}

const nodedir = nodeDir();
if (!nodedir) fail(`Node.js headers not found (include/node/node_api.h next to ${process.execPath})`);
// Node's bundled OpenSSL headers; a node linked against the system's OpenSSL (Debian's) uses libssl-dev's.
if (!existsSync(path.join(nodedir, 'include/node/openssl/evp.h')) && !existsSync('/usr/include/openssl/evp.h')) {
  fail('OpenSSL headers not found (include/node/openssl/evp.h, or apt-get install libssl-dev)');
}
if (!process.versions.openssl) fail('this node has no OpenSSL');

if (args.has('--asan')) {
  const out = path.join(here, 'build-asan/aead.node');
  if (!args.has('--force') && newer(out)) process.exit(0);
  mkdirSync(path.dirname(out), { recursive: true });
  const cc = process.env.CC ?? 'cc';
  const cmd = [
    '-std=gnu11', '-shared', '-fPIC', '-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=address,undefined',
    '-Wall', '-Wextra', '-Wno-unused-parameter', '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=aead',
    `-I${path.join(nodedir, 'include/node')}`, path.join(here, 'src/aead.c'), '-o', out,
  ];
  const r = spawnSync(cc, cmd, { stdio: 'inherit' });
  if (r.status !== 0) fail(`${cc} failed`);
  process.exit(0);
}

const target = path.join(here, 'build/Release/aead.node');
if (!args.has('--force') && newer(target)) process.exit(0);

/** node-gyp: npm puts it on PATH for scripts; else the copy bundled with npm. */
function nodeGyp() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) return [process.execPath, process.env.npm_config_node_gyp];
  const bundled = [
    path.resolve(path.dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ].find((p) => existsSync(p));
  if (bundled) return [process.execPath, bundled];
  const which = spawnSync('sh', ['-c', 'command -v node-gyp'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return [which.stdout.trim()];
  return null;
}
const gyp = nodeGyp();
if (!gyp) fail('node-gyp not found (it comes with npm)');
const r = spawnSync(gyp[0], [...gyp.slice(1), 'rebuild', `--nodedir=${nodedir}`, '--jobs=1', '--loglevel=warn'], { cwd: here, stdio: 'inherit' });
if (r.status !== 0) fail('node-gyp rebuild failed');
