/** Errors raised by the CLI itself (bad arguments, config file problems, local files). */
import type { ExitCodeValue } from './exit-codes.js';

export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(readonly exitCode: ExitCodeValue, message: string) {
    super(message);
  }
}
