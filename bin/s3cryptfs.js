#!/usr/bin/env -S node --initial-old-space-size=128
// The flag: a small initial old generation made V8 run about 60 full collections per GiB streamed
// (buffers of object data promoted, then collected); 64 MiB halves the engine's CPU per GiB read
// (bench:engine get 2.47 -> 1.16 s/GiB) at the same peak RSS. It cannot go in NODE_OPTIONS nor be
// set at run time; `--daemon` and the demo re-run node with process.execArgv, so they keep it.
// s3cryptfs launcher. Runs the compiled CLI (dist/, from `npm run build`) when present; otherwise, in
// a checkout after `npm ci`, runs the TypeScript sources through tsx. S3CRYPTFS_FROM_SOURCE=1 forces
// the sources (used by the tests so they never exercise a stale build).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

// The AWS SDK warns on every start under Node < 22 about its future releases; the version we lock
// supports this Node, and a multi-line warning would break our one-line error messages.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const root = fileURLToPath(new URL('..', import.meta.url));
const compiled = new URL('../dist/src/cli/main.js', import.meta.url);
const source = new URL('../src/cli/main.ts', import.meta.url);

async function load() {
  if (process.env.S3CRYPTFS_FROM_SOURCE !== '1' && existsSync(compiled)) return import(compiled.href);
  if (existsSync(source)) {
    let register;
    try {
      ({ register } = await import('tsx/esm/api'));
    } catch {
      process.stderr.write(`s3cryptfs: not built: run "npm ci && npm run build" in ${root}\n`);
      process.exit(1);
    }
    register();
    return import(pathToFileURL(fileURLToPath(source)).href);
  }
  process.stderr.write(`s3cryptfs: installation is incomplete (no dist/src/cli/main.js in ${root})\n`);
  process.exit(1);
}

const cli = await load();
await cli.main();
