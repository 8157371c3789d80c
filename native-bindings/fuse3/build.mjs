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
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = new Set(process.argv.slice(2));
const optional = args.has('--optional');
const sources = [path.join(here, 'src/fuse3.c'), path.join(here, 'binding.gyp'), fileURLToPath(import.meta.url)];

function fail(msg) {
  if (optional) {
    console.error(`s3cryptfs: not building the libfuse3 binding: ${msg} (the mount falls back to fuse-native)`);
    process.exit(0);
  }
  console.error(`s3cryptfs: cannot build the libfuse3 binding: ${msg}`);
  process.exit(1);
}

function newer(target) {
  if (!existsSync(target)) return false;
  const t = statSync(target).mtimeMs;
  return sources.every((s) => statSync(s).mtimeMs <= t);
}

function pkgConfig(...a) {
  try {
    return execFileSync('pkg-config', a, { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
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

if (pkgConfig('--modversion', 'fuse3') === null) fail('libfuse3 development files not found (Debian/Ubuntu: apt-get install libfuse3-dev pkg-config)');
const nodedir = nodeDir();
if (!nodedir) fail(`Node.js headers not found (include/node/node_api.h next to ${process.execPath})`);

if (args.has('--asan')) {
  const out = path.join(here, 'build-asan/fuse3.node');
  if (!args.has('--force') && newer(out)) process.exit(0);
  mkdirSync(path.dirname(out), { recursive: true });
  const cc = process.env.CC ?? 'cc';
  const cmd = [
    '-std=gnu11', '-shared', '-fPIC', '-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=address,undefined',
    '-Wall', '-Wextra', '-Wno-unused-parameter', '-DNAPI_VERSION=8', '-DNODE_GYP_MODULE_NAME=fuse3',
    `-I${path.join(nodedir, 'include/node')}`, ...pkgConfig('--cflags', 'fuse3').split(/\s+/).filter(Boolean),
    path.join(here, 'src/fuse3.c'), '-o', out, ...pkgConfig('--libs', 'fuse3').split(/\s+/).filter(Boolean),
  ];
  const r = spawnSync(cc, cmd, { stdio: 'inherit' });
  if (r.status !== 0) fail(`${cc} failed`);
  process.exit(0);
}

const target = path.join(here, 'build/Release/fuse3.node');
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
