/**
 * Wiring an embedded memkey endpoint into a daemon command (mount, serve-s3) in two lines:
 *
 *   .options({ ...MEMKEY_LISTEN_OPTIONS })                 // --memkey-listen, --memkey-identity
 *   const source = daemonKeySource(rt, config.keyIds);     // instead of rt.keySource()
 *
 * With --memkey-listen the key source opens the admin endpoint, prints one line naming the URL
 * and fingerprint to deliver to, waits for the delivery (until SIGINT/SIGTERM), closes the
 * endpoint and hands the key over. Without it, the command's usual key source is returned.
 */
import path from 'node:path';
import type { Options } from 'yargs';
import { CliError } from '../cli/errors.js';
import { ExitCode } from '../cli/exit-codes.js';
import type { Runtime } from '../cli/runtime.js';
import type { KeyContext, KeySource } from '../keys/types.js';
import { startEmbeddedMemkey } from './embedded.js';
import { MemkeyError } from './errors.js';

const GROUP = 'Key options:';

export const MEMKEY_LISTEN_OPTIONS: Record<string, Options> = {
  'memkey-listen': {
    type: 'string',
    group: GROUP,
    requiresArg: true,
    describe: 'Wait for the master key on this memkey admin endpoint, HOST:PORT (instead of --key-file; see docs/memkey.md)',
  },
  'memkey-identity': {
    type: 'string',
    group: GROUP,
    requiresArg: true,
    describe: 'Identity file for --memkey-listen (from `s3cryptfs memkey-server --generate-identity`)',
  },
};

export function daemonKeySource(rt: Runtime, keyIds: string[]): KeySource {
  const listen = rt.args['memkey-listen'];
  if (listen === undefined) return rt.keySource();
  const identity = rt.args['memkey-identity'];
  if (identity === undefined) throw new CliError(ExitCode.USAGE, '--memkey-listen needs --memkey-identity FILE');
  if (rt.args['key-file'] !== undefined || rt.args['passphrase-file'] !== undefined) {
    throw new CliError(ExitCode.USAGE, 'give --memkey-listen or a key/passphrase file, not both');
  }
  return new EmbeddedMemkeySource(String(listen), path.resolve(String(identity)), keyIds, rt.signal);
}

export class EmbeddedMemkeySource implements KeySource {
  constructor(
    readonly listen: string,
    readonly identityFile: string,
    readonly keyIds: string[],
    private readonly signal?: AbortSignal,
    private readonly say: (line: string) => void = (line) => process.stderr.write(`s3cryptfs: ${line}\n`),
  ) {}

  describe(): string {
    return `memkey endpoint ${this.listen}`;
  }

  async load(_ctx: KeyContext): Promise<Uint8Array> {
    let mk;
    try {
      mk = await startEmbeddedMemkey({
        listen: this.listen,
        identityFile: this.identityFile,
        keyIds: this.keyIds,
        log: (level, line) => level === 'warn' && this.say(`memkey: ${line}`),
      });
    } catch (err) {
      if (err instanceof MemkeyError) throw new CliError(err.code === 'IDENTITY_FILE' ? ExitCode.KEY_SOURCE : ExitCode.CONFIG, err.message);
      throw err;
    }
    try {
      this.say(`waiting for the master key: deliver it with \`s3cryptfs memkey-admin key send\` to ${mk.url}, fingerprint ${mk.fingerprint}`);
      return await mk.waitForKey(this.signal);
    } finally {
      await mk.stop();
    }
  }
}
