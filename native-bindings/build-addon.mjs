// The build steps our N-API addons share: node-gyp against Node's own headers (no download), an
// AddressSanitizer build with the system compiler, and skipping either when it is newer than its
// sources. Each addon's build.mjs describes itself and calls buildAddon().
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** pkg-config output, or null when the package (or pkg-config) is missing. */
export function pkgConfig(...a) {
  try {
    return execFileSync('pkg-config', a, { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

/** The directory that has include/node/node_api.h for the running node (no header download). */
export function nodeDir() {
  const candidates = [
    process.env.npm_config_nodedir,
    path.resolve(path.dirname(process.execPath), '..'),
    '/usr',
    '/usr/local',
  ].filter(Boolean);
  return candidates.find((d) => existsSync(path.join(d, 'include/node/node_api.h'))) ?? null;
}

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

/**
 * Builds `name` in `dir` from `sources` (build/Release/NAME.node, or build-asan/NAME.node with --asan).
 * `precheck(fail, nodedir)` says why it cannot be built; `asan` gives the extra compiler arguments
 * (cflags, libs) of the ASan build. `label` and `fallback` word the messages. `programs` are
 * helper executables (name: C sources) built beside the addon: by binding.gyp normally, by the
 * system compiler for the ASan build.
 */
export function buildAddon({ name, dir, sources, label, fallback, precheck, asan, programs = {} }) {
  const args = new Set(process.argv.slice(2));
  const fail = (msg) => {
    if (args.has('--optional')) {
      console.error(`s3cryptfs: not building the ${label}: ${msg} (${fallback})`);
      process.exit(0);
    }
    console.error(`s3cryptfs: cannot build the ${label}: ${msg}`);
    process.exit(1);
  };
  const newer = (target) => {
    if (Object.keys(programs).some((p) => !existsSync(path.join(path.dirname(target), p)))) return false;
    if (!existsSync(target)) return false;
    const t = statSync(target).mtimeMs;
    return [...sources, fileURLToPath(import.meta.url)].every((s) => statSync(s).mtimeMs <= t);
  };
  const nodedir = nodeDir();
  if (!nodedir) fail(`Node.js headers not found (include/node/node_api.h next to ${process.execPath})`);
  precheck?.(fail, nodedir);

  if (args.has('--asan')) {
    const out = path.join(dir, `build-asan/${name}.node`);
    if (!args.has('--force') && newer(out)) process.exit(0);
    mkdirSync(path.dirname(out), { recursive: true });
    const cc = process.env.CC ?? 'cc';
    const extra = asan?.() ?? { cflags: [], libs: [] };
    const programFiles = new Set(Object.values(programs).flat());
    const addonFiles = sources.filter((s) => s.endsWith('.c') && !programFiles.has(s));
    const cmd = [
      '-std=gnu11', '-shared', '-fPIC', '-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=address,undefined',
      '-Wall', '-Wextra', '-Wno-unused-parameter', '-DNAPI_VERSION=8', `-DNODE_GYP_MODULE_NAME=${name}`,
      `-I${path.join(nodedir, 'include/node')}`, ...extra.cflags, ...addonFiles, '-o', out, ...extra.libs,
    ];
    const r = spawnSync(cc, cmd, { stdio: 'inherit' });
    if (r.status !== 0) fail(`${cc} failed`);
    for (const [program, files] of Object.entries(programs)) {
      const p = spawnSync(cc, ['-std=gnu11', '-g', '-O1', '-Wall', '-Wextra', ...files, '-o', path.join(path.dirname(out), program)], { stdio: 'inherit' });
      if (p.status !== 0) fail(`${cc} failed on ${program}`);
    }
    process.exit(0);
  }

  const target = path.join(dir, `build/Release/${name}.node`);
  if (!args.has('--force') && newer(target)) process.exit(0);
  const gyp = nodeGyp();
  if (!gyp) fail('node-gyp not found (it comes with npm)');
  const r = spawnSync(gyp[0], [...gyp.slice(1), 'rebuild', `--nodedir=${nodedir}`, '--jobs=1', '--loglevel=warn'], { cwd: dir, stdio: 'inherit' });
  if (r.status !== 0) fail('node-gyp rebuild failed');
}
