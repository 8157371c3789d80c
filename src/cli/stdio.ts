/**
 * "-" as a file argument means stdin/stdout. yargs turns a bare "-" positional into "", so main.ts
 * swaps it for this token (a NUL byte can never be part of a real argument) before parsing.
 */
export const STDIO = '\u0000-';

export function isStdio(arg: unknown): boolean {
  return arg === STDIO || arg === '-';
}

/** For messages: the argument as the user typed it. */
export function shown(arg: string): string {
  return arg === STDIO ? '-' : arg;
}
