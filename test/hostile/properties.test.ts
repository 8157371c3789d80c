// Bounded property-based runs (fast-check) of test/hostile/fixtures/properties.ts, plus a replay of
// every counterexample `npm run fuzz` saved under test/hostile/regressions/.
import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';

import { PROPERTIES } from './fixtures/properties.js';

const SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);

for (const p of PROPERTIES) {
  t.test(p.name, async (t) => {
    const started = Date.now();
    await fc.assert(p.make(), { numRuns: p.numRuns, seed: SEED, interruptAfterTimeLimit: 20_000 });
    t.pass(`${p.numRuns} runs in ${Date.now() - started} ms`);
  });
}

t.test('saved fuzz regressions replay clean', async (t) => {
  const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'regressions');
  const files = (await readdir(dir).catch(() => [] as string[])).filter((f) => f.endsWith('.json'));
  for (const f of files) {
    const saved = JSON.parse(await readFile(path.join(dir, f), 'utf8')) as { property: string; seed: number; path?: string };
    const p = PROPERTIES.find((q) => q.name === saved.property);
    if (!p) {
      t.fail(`${f}: unknown property ${saved.property}`);
      continue;
    }
    await fc.assert(p.make(), { seed: saved.seed, path: saved.path, numRuns: 1, endOnFailure: true });
    t.pass(`${f} replays clean`);
  }
  if (files.length === 0) t.pass('no saved regressions');
});
