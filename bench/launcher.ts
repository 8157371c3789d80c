/**
 * How benchmarks start the CLI the way users do: the node flags of bin/s3cryptfs.js's shebang line
 * (`#!/usr/bin/env -S node FLAGS`), which an executable launch applies and `node bin/s3cryptfs.js` would not.
 */
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// bench/ under tsx, dist/bench/ when compiled.
export const LAUNCHER = ['../bin/s3cryptfs.js', '../../bin/s3cryptfs.js']
  .map((rel) => fileURLToPath(new URL(rel, import.meta.url)))
  .find((p) => existsSync(p))!;

/** The shebang's flags, plus BENCH_NODE_FLAGS (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`, which NODE_OPTIONS refuses). */
export function launcherNodeFlags(): string[] {
  const extra = (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  if (process.env.BENCH_LAUNCHER_FLAGS === '0') return extra; // for comparisons
  const first = readFileSync(LAUNCHER, 'utf8').split('\n', 1)[0]!;
  const m = /^#!\/usr\/bin\/env -S node(.*)$/.exec(first);
  return [...(m ? m[1]!.trim().split(/\s+/).filter(Boolean) : []), ...extra];
}
