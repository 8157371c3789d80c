/** The shape of one CLI command module. */
import type { Argv } from 'yargs';
import type { Runtime } from './runtime.js';

export type Args = Record<string, unknown> & { _: (string | number)[] };

export interface CliCommand {
  /** yargs command string, e.g. "get <src> <dest>". */
  command: string;
  describe: string;
  builder?: (y: Argv) => Argv;
  /** Returns the exit code (0 when omitted). Errors are mapped by exit-codes.ts. */
  run(args: Args, rt: Runtime): Promise<number | void>;
}
