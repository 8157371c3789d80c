/**
 * s3cryptfs command line. `run(argv)` parses and executes one command and resolves to the exit code;
 * it never throws and never prints a stack trace (unless S3CRYPTFS_DEBUG=1).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import type { Args, CliCommand } from './command.js';
import { COMMANDS } from './commands.js';
import { CliError } from './errors.js';
import { classifyError, EXIT_CODE_TABLE, ExitCode } from './exit-codes.js';
import { isDebug } from './log.js';
import { GLOBAL_OPTIONS } from './options.js';
import { Runtime } from './runtime.js';
import { STDIO } from './stdio.js';
import { packageVersion } from './version.js';

export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let exitCode: number = ExitCode.OK;
  let runtime: Runtime | undefined;
  // The AWS SDK's Node-version notice would break the one-line-on-stderr contract.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

  const unknown = argv.includes('--get-yargs-completions') ? undefined : unknownCommand(argv);
  if (unknown !== undefined) {
    // Checked before yargs, which would print the general help for `s3cryptfs bogus --help`.
    return reportError(new CliError(ExitCode.USAGE, `unknown command "${unknown}" (see s3cryptfs --help)`), env);
  }

  const parser = yargs(argv.map((a) => (a === '-' ? STDIO : a)))
    .scriptName('s3cryptfs')
    .usage('$0 <command> [options]\n\nClient-side encrypted access to an S3 bucket: the storage provider only ever sees ciphertext.')
    .options(GLOBAL_OPTIONS)
    .demandCommand(1, 'no command given')
    .strict()
    .recommendCommands()
    .exitProcess(false)
    .showHelpOnFail(false)
    .fail((msg, err) => {
      if (err && err.name !== 'YError') throw err;
      throw new CliError(ExitCode.USAGE, `${msg || err?.message || 'invalid command line'} (see --help)`);
    })
    .completion('completion', 'Print a bash/zsh completion script (e.g. s3cryptfs completion >> ~/.bashrc)')
    .help()
    .alias('h', 'help')
    .version(packageVersion())
    .env(false)
    .epilogue(epilogue())
    .wrap(Math.min(110, process.stdout.columns || 100));

  for (const cmd of COMMANDS) {
    parser.command(cmd.command, cmd.describe, cmd.builder ?? ((y) => y), async (args) => {
      runtime = await Runtime.create(args as Args, env);
      exitCode = (await cmd.run(args as Args, runtime)) ?? ExitCode.OK;
    });
  }

  try {
    await parser.parseAsync();
  } catch (err) {
    exitCode = reportError(err, env);
  } finally {
    await runtime?.close();
  }
  return exitCode;
}

/** Prints "s3cryptfs: <message>" (one line) and returns the exit code for `err`. */
export function reportError(err: unknown, env: NodeJS.ProcessEnv = process.env): number {
  const { exitCode, message } = classifyError(err);
  process.stderr.write(`s3cryptfs: ${message}\n`);
  if (isDebug(env) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  return exitCode;
}

/** The first positional argument when it is not a command name; undefined otherwise. */
export function unknownCommand(argv: string[]): string | undefined {
  const names = new Set([...COMMANDS.map((c) => c.command.split(' ')[0]), 'completion']);
  const takesValue = new Set(
    Object.entries(GLOBAL_OPTIONS)
      .filter(([, o]) => o.type === 'string' || o.type === 'number')
      .flatMap(([name, o]) => [`--${name}`, ...[o.alias ?? []].flat().map((a) => (a.length === 1 ? `-${a}` : `--${a}`))]),
  );
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') return argv[i + 1] !== undefined && !names.has(argv[i + 1]) ? argv[i + 1] : undefined;
    if (a.startsWith('-') && a !== '-') {
      if (takesValue.has(a)) i++;
      continue;
    }
    return names.has(a) ? undefined : a;
  }
  return undefined;
}

function epilogue(): string {
  const codes = EXIT_CODE_TABLE.map(([code, text]) => `  ${String(code).padStart(2)}  ${text}`).join('\n');
  return `Exit codes:\n${codes}\n\nSet S3CRYPTFS_DEBUG=1 for stack traces. Documentation: docs/cli.md`;
}

/** Entry point used by bin/s3cryptfs.js: runs, flushes stdout, exits with the command's code. */
export async function main(): Promise<never> {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    // The reader went away (`s3cryptfs cat ... | head`): stop quietly.
    if (err.code === 'EPIPE') process.exit(ExitCode.OK);
    throw err;
  });
  const code = await run(hideBin(process.argv));
  if (process.stdout.writableNeedDrain) await new Promise((r) => process.stdout.once('drain', r));
  process.exit(code);
}

function isEntryModule(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

export type { CliCommand };

if (isEntryModule()) void main();
