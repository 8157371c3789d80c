// npm run fuzz [-- --seconds N] [-- --only substring]
// Longer fast-check runs of the properties in test/hostile/fixtures/properties.ts, sharing a time
// budget (default 120 s, or $FUZZ_SECONDS). Each failure is saved, with the seed and shrink path that
// replay it, as test/hostile/regressions/<property>-<seed>.json, which the default test suite replays
// (test/hostile/properties.test.ts). Exits 1 when any property failed.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';

import { PROPERTIES } from '../test/hostile/fixtures/properties.js';

const argv = process.argv.slice(2);
const arg = (name: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const seconds = Number(arg('seconds') ?? process.env.FUZZ_SECONDS ?? 120);
const only = arg('only');
const selected = PROPERTIES.filter((p) => !only || p.name.includes(only));
const perProperty = Math.max(1_000, Math.floor((seconds * 1000) / Math.max(1, selected.length)));
const outDir = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'hostile', 'regressions');

let failed = 0;
for (const p of selected) {
  const started = Date.now();
  const seed = Number(process.env.FC_SEED ?? Date.now() ^ Math.floor(Math.random() * 2 ** 31));
  const details = await fc.check(p.make(), { numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: perProperty, seed });
  const ms = Date.now() - started;
  if (details.failed) {
    failed++;
    const slug = p.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40).replace(/-+$/, '');
    const file = path.join(outDir, `${slug}-${details.seed}.json`);
    await mkdir(outDir, { recursive: true });
    await writeFile(file, JSON.stringify({
      property: p.name,
      seed: details.seed,
      path: details.counterexamplePath ?? undefined,
      counterexample: fc.stringify(details.counterexample),
      error: String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance),
    }, null, 2) + '\n');
    console.log(`FAIL ${p.name}: ${details.numRuns} runs, ${ms} ms; saved ${path.relative(process.cwd(), file)}`);
  } else {
    console.log(`ok   ${p.name}: ${details.numRuns} runs, ${ms} ms (seed ${details.seed})`);
  }
}
console.log(failed ? `${failed} propert${failed === 1 ? 'y' : 'ies'} failed` : 'all properties held');
process.exit(failed ? 1 : 0);
