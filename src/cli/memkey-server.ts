/**
 * `s3cryptfs memkey-server`: holds the master key in memory only. Administrators deliver it over
 * the admin protocol (HTTP or HTTPS, --listen); local daemons fetch it from a Unix socket
 * (--socket, mode 0600). Runs in the foreground until SIGINT/SIGTERM, then wipes the key.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { DEFAULT_CHALLENGE_TTL_MS, DEFAULT_LOCKOUT_MS, DEFAULT_MAX_FAILURES, type MemkeyLogLevel } from '../memkey/core.js';
import { generateIdentityFile, loadIdentityFile } from '../memkey/identity.js';
import { normalizeKeyId } from '../memkey/protocol.js';
import { startMemkeyServer } from '../memkey/server.js';
import { DEFAULT_SOCKET_MODE } from '../memkey/socket.js';
import { candidatePrefixes, readBucketConfig } from './bucket.js';
import type { Args, CliCommand } from './command.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { withMemkeyErrors } from './memkey-admin.js';
import type { Runtime } from './runtime.js';
import { formatS3Url, parseS3Url } from './s3url.js';
import { say } from './say.js';

const GROUP = 'memkey-server options:';
export const DEFAULT_MEMKEY_LISTEN = '127.0.0.1:7431';
export const DEFAULT_MEMKEY_SOCKET = '/run/memkey/memkey.sock';

export const memkeyServerCommand: CliCommand = {
  command: 'memkey-server',
  describe: 'Hold the master key in memory; administrators deliver it, local daemons fetch it',
  builder: (y) =>
    y
      .options({
        identity: { type: 'string', group: GROUP, requiresArg: true, demandOption: true, describe: 'Ed25519 identity file (mode 0600)' },
        'generate-identity': { type: 'boolean', group: GROUP, describe: 'Create the --identity file, print its fingerprint and exit' },
        listen: { type: 'string', group: GROUP, requiresArg: true, describe: `Admin protocol address HOST:PORT [default: ${DEFAULT_MEMKEY_LISTEN}]` },
        socket: { type: 'string', group: GROUP, requiresArg: true, describe: `Unix socket for local consumers [default: ${DEFAULT_MEMKEY_SOCKET}]` },
        'socket-mode': { type: 'string', group: GROUP, requiresArg: true, describe: 'Octal permissions of the socket [default: 600]' },
        'key-id': { type: 'string', array: true, group: GROUP, requiresArg: true, describe: 'Accept only a key with this key id (hex; repeatable)' },
        bucket: { type: 'string', group: GROUP, requiresArg: true, describe: 'Accept only keys listed in the config of this store, s3://BUCKET[/PREFIX]' },
        'tls-cert': { type: 'string', group: GROUP, requiresArg: true, describe: 'Serve HTTPS with this certificate (PEM)' },
        'tls-key': { type: 'string', group: GROUP, requiresArg: true, describe: 'Private key (PEM) for --tls-cert' },
        'max-failures': { type: 'number', group: GROUP, requiresArg: true, describe: `Failed deliveries before a lockout [default: ${DEFAULT_MAX_FAILURES}]` },
        lockout: { type: 'number', group: GROUP, requiresArg: true, describe: `Seconds deliveries stay locked [default: ${DEFAULT_LOCKOUT_MS / 1000}]` },
        'challenge-ttl': { type: 'number', group: GROUP, requiresArg: true, describe: `Seconds a challenge stays valid [default: ${DEFAULT_CHALLENGE_TTL_MS / 1000}]` },
      })
      .example('$0 memkey-server --identity /etc/s3cryptfs/memkey.id --generate-identity', 'create the identity once; pin the printed fingerprint')
      .example('$0 memkey-server --identity /etc/s3cryptfs/memkey.id --listen 0.0.0.0:7431 --bucket s3://my-bucket', 'serve; then mount with --key-file memkey:/run/memkey/memkey.sock'),
  async run(args, rt) {
    return withMemkeyErrors(() => (args['generate-identity'] === true ? generate(args, rt) : serve(args, rt)));
  },
};

async function generate(args: Args, rt: Runtime): Promise<number> {
  const file = path.resolve(String(args.identity));
  const identity = await generateIdentityFile(file);
  identity.seed.fill(0);
  say(rt, `wrote ${file} (mode 0600); identity fingerprint ${identity.fingerprint}\npin it on the admin workstation: s3cryptfs memkey-admin init --server URL --fingerprint ${identity.fingerprint}`);
  return ExitCode.OK;
}

function stamp(line: string): void {
  process.stderr.write(`${new Date().toISOString()} s3cryptfs memkey-server: ${line}\n`);
}

function positive(args: Args, name: string, integer: boolean): number | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || (integer && (!Number.isInteger(v) || v < 1))) {
    throw new CliError(ExitCode.USAGE, `--${name} must be ${integer ? 'an integer >= 1' : 'a number of seconds >= 0'}`);
  }
  return v;
}

/** Key ids from --key-id, or from the bucket config of --bucket (nearest enclosing store). */
async function acceptedKeyIds(args: Args, rt: Runtime): Promise<{ keyIds: string[]; from: string }> {
  const flags = (args['key-id'] as string[] | undefined) ?? [];
  if (flags.length > 0 && args.bucket !== undefined) throw new CliError(ExitCode.USAGE, 'give --key-id or --bucket, not both');
  if (flags.length > 0) {
    try {
      return { keyIds: flags.map(normalizeKeyId), from: '--key-id' };
    } catch (err) {
      throw new CliError(ExitCode.USAGE, `--key-id: ${(err as Error).message}`);
    }
  }
  if (args.bucket === undefined) {
    throw new CliError(ExitCode.USAGE, 'memkey-server needs --key-id HEX or --bucket s3://BUCKET[/PREFIX] to check delivered keys against');
  }
  const url = parseS3Url(String(args.bucket), '--bucket');
  const store = rt.store();
  const candidates = candidatePrefixes(url.key.endsWith('/') || url.key === '' ? url.key : url.key + '/', 'dir');
  const configs = await Promise.all(candidates.map((p) => readBucketConfig(store, url.bucket, p)));
  for (let i = candidates.length - 1; i >= 0; i--) {
    const c = configs[i];
    if (c) return { keyIds: c.keyIds, from: `the config of ${formatS3Url(url.bucket, candidates[i])}` };
  }
  throw new CliError(ExitCode.INIT_STATE, `no s3cryptfs store at ${formatS3Url(url.bucket, url.key)} (run \`s3cryptfs init\` first)`);
}

async function serve(args: Args, rt: Runtime): Promise<number> {
  const maxFailures = positive(args, 'max-failures', true);
  const lockoutS = positive(args, 'lockout', false);
  const ttlS = positive(args, 'challenge-ttl', false);
  let socketMode = DEFAULT_SOCKET_MODE;
  if (args['socket-mode'] !== undefined) {
    const text = String(args['socket-mode']);
    if (!/^0?[0-7]{3}$/.test(text)) throw new CliError(ExitCode.USAGE, `--socket-mode must be octal, e.g. 600 or 660, got "${text}"`);
    socketMode = parseInt(text, 8);
  }
  if ((args['tls-cert'] === undefined) !== (args['tls-key'] === undefined)) throw new CliError(ExitCode.USAGE, '--tls-cert and --tls-key go together');
  const tls = args['tls-cert'] !== undefined
    ? { cert: await readPem(String(args['tls-cert'])), key: await readPem(String(args['tls-key'])) }
    : undefined;

  const identity = await loadIdentityFile(path.resolve(String(args.identity)));
  const { keyIds, from } = await acceptedKeyIds(args, rt);
  const quiet = args.quiet === true;
  const log = (level: MemkeyLogLevel, line: string) => {
    if (level === 'warn' || !quiet) stamp(line);
  };
  const server = await startMemkeyServer({
    identity,
    keyIds,
    listen: args.listen !== undefined ? String(args.listen) : DEFAULT_MEMKEY_LISTEN,
    tls,
    socketPath: path.resolve(args.socket !== undefined ? String(args.socket) : DEFAULT_MEMKEY_SOCKET),
    socketMode,
    maxFailures,
    lockoutMs: lockoutS === undefined ? undefined : lockoutS * 1000,
    challengeTtlMs: ttlS === undefined ? undefined : ttlS * 1000,
    log,
  });
  rt.onClose(() => server.stop());
  log('info', `identity fingerprint ${server.fingerprint}`);
  log('info', `admin protocol on ${server.url}${tls ? '' : ' (plain HTTP: the protocol is authenticated and encrypted end to end; TLS is optional)'}`);
  log('info', `consumer socket ${server.socketPath} (mode ${socketMode.toString(8).padStart(4, '0')})`);
  log('info', `waiting for the master key (accepting key id ${keyIds.join(' or ')}, from ${from})`);

  await new Promise<void>((resolve) => {
    if (rt.signal.aborted) return resolve();
    rt.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  await server.stop();
  log('info', 'stopped; the key is wiped from memory');
  return ExitCode.OK;
}

async function readPem(file: string): Promise<Buffer> {
  try {
    return await readFile(path.resolve(file));
  } catch (err) {
    throw new CliError(ExitCode.CONFIG, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
