/**
 * Finding and loading one of our built addons (native-bindings/NAME/build/Release/NAME.node): next to
 * the module, or, when running from dist/, next to the sources; an environment variable may name
 * another build (the AddressSanitizer one).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** Where addon `name` may be, in the order tried. */
export function addonCandidates(name: string, envVar: string): string[] {
  const out: string[] = [];
  const chosen = process.env[envVar];
  if (chosen) out.push(path.resolve(chosen));
  out.push(path.join(here, name, `build/Release/${name}.node`));
  out.push(path.resolve(here, `../../native-bindings/${name}/build/Release/${name}.node`));
  return out;
}

/** Loads addon `name`; throws an Error with `notBuilt` when no build is found. */
export function requireAddon<T>(name: string, envVar: string, notBuilt: string): T {
  const file = addonCandidates(name, envVar).find((p) => existsSync(p));
  if (!file) throw new Error(notBuilt);
  return createRequire(import.meta.url)(file) as T;
}
