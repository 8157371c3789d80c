/** Informational output on stdout, suppressed by --quiet. */
import type { Runtime } from './runtime.js';

export function say(rt: Runtime, line: string): void {
  if (rt.args.quiet === true) return;
  process.stdout.write(line + '\n');
}
