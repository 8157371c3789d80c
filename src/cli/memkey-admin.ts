/**
 * `s3cryptfs memkey-admin`: the administrator's side of memkey, run on a workstation.
 *
 *   memkey-admin init --server URL --fingerprint HEX   pin the server identity (config, mode 0600)
 *   memkey-admin key generate [--out PATH]             a new master key for the admin's key store
 *   memkey-admin key import --file PATH [--out PATH]   copy an existing key file into it
 *   memkey-admin key send                              deliver the key (challenge, verify, seal)
 *   memkey-admin status                                the server's signed status
 */
import { mkdir, open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { encodeKey, generateKeyFile, KeyFileSource } from '../keys/index.js';
import { AdminClient, type AdminTarget } from '../memkey/admin.js';
import { defaultAdminConfigPath, defaultAdminKeyPath, readAdminConfig, writeAdminConfig, type AdminConfig } from '../memkey/admin-config.js';
import { MemkeyError } from '../memkey/errors.js';
import { keyCheckOf, normalizeFingerprint } from '../memkey/protocol.js';
import type { Args, CliCommand } from './command.js';
import { CliError } from './errors.js';
import { ExitCode, type ExitCodeValue } from './exit-codes.js';
import type { Runtime } from './runtime.js';
import { say } from './say.js';

const GROUP = 'memkey-admin options:';

/** Exit codes for memkey errors (documented in docs/memkey.md). */
const EXIT_OF: Record<string, ExitCodeValue> = {
  UNREACHABLE: ExitCode.UNREACHABLE,
  IDENTITY_MISMATCH: ExitCode.INTEGRITY,
  BAD_SIGNATURE: ExitCode.INTEGRITY,
  BAD_CONFIRMATION: ExitCode.INTEGRITY,
  KEY_MISMATCH: ExitCode.WRONG_KEY,
  LOCKED: ExitCode.ACCESS_DENIED,
  CONFIG: ExitCode.CONFIG,
  IDENTITY_FILE: ExitCode.KEY_SOURCE,
};

/** Runs `fn`, turning a MemkeyError into a CliError with the matching exit code. */
export async function withMemkeyErrors<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof MemkeyError) throw new CliError(EXIT_OF[err.code] ?? ExitCode.GENERIC, err.message);
    throw err;
  }
}

export const memkeyAdminCommand: CliCommand = {
  command: 'memkey-admin <action> [what]',
  describe: 'Deliver the master key to a memkey-server (init, key generate|import|send, status)',
  builder: (y) =>
    y
      .positional('action', { type: 'string', choices: ['init', 'key', 'status'], describe: 'init | key | status' })
      .positional('what', { type: 'string', describe: 'for key: generate | import | send' })
      .options({
        'admin-config': { type: 'string', group: GROUP, requiresArg: true, describe: 'Admin config file [env: S3CRYPTFS_MEMKEY_ADMIN_CONFIG; default: ~/.config/s3cryptfs/memkey-admin.json]' },
        server: { type: 'string', group: GROUP, requiresArg: true, describe: 'Server admin URL, http(s)://HOST:PORT (init; overrides the config elsewhere)' },
        fingerprint: { type: 'string', group: GROUP, requiresArg: true, describe: 'Server identity fingerprint, 64 hex digits, as memkey-server prints it (init)' },
        ca: { type: 'string', group: GROUP, requiresArg: true, describe: 'CA certificate (PEM) for an https:// server with a private certificate' },
        check: { type: 'boolean', group: GROUP, default: true, describe: 'init: contact the server and verify its identity before saving (--no-check: offline)' },
        file: { type: 'string', group: GROUP, requiresArg: true, describe: 'key import: the key file to import' },
        out: { type: 'string', group: GROUP, requiresArg: true, describe: 'key generate/import: where to write the key [default: ~/.config/s3cryptfs/memkey-master.key]' },
        'skip-key-check': { type: 'boolean', group: GROUP, hidden: true, describe: 'key send: send even if the server does not accept the key id (tests)' },
      })
      .example('$0 memkey-admin init --server https://vault1:7431 --fingerprint 3f1a...', 'pin the server (fingerprint from its log)')
      .example('$0 memkey-admin key import --file master.key', 'use an existing key')
      .example('$0 memkey-admin key send', 'deliver the key after the server (re)starts'),
  async run(args, rt) {
    const action = String(args.action);
    const what = args.what === undefined ? undefined : String(args.what);
    if (action === 'key') {
      if (what !== 'generate' && what !== 'import' && what !== 'send') throw new CliError(ExitCode.USAGE, 'memkey-admin key: expected generate, import or send');
    } else if (what !== undefined) {
      throw new CliError(ExitCode.USAGE, `memkey-admin ${action} takes no further argument (got "${what}")`);
    }
    return withMemkeyErrors(async () => {
      if (action === 'init') return init(args, rt);
      if (action === 'status') return status(args, rt);
      if (what === 'generate') return keyGenerate(args, rt);
      if (what === 'import') return keyImport(args, rt);
      return keySend(args, rt);
    });
  },
};

function configPath(args: Args, rt: Runtime): string {
  return args['admin-config'] !== undefined ? path.resolve(String(args['admin-config'])) : defaultAdminConfigPath(rt.env);
}

async function readConfigIfAny(file: string): Promise<AdminConfig | undefined> {
  try {
    await stat(file);
  } catch {
    return undefined;
  }
  return readAdminConfig(file);
}

/** Server, pinned fingerprint and CA: flags override the admin config. */
async function target(args: Args, rt: Runtime): Promise<{ target: AdminTarget; config?: AdminConfig }> {
  const file = configPath(args, rt);
  const config = args.server !== undefined && args.fingerprint !== undefined ? await readConfigIfAny(file) : await readAdminConfig(file);
  const server = args.server !== undefined ? String(args.server) : config!.server;
  const fingerprint = args.fingerprint !== undefined ? String(args.fingerprint) : config!.fingerprint;
  const caFile = args.ca !== undefined ? path.resolve(String(args.ca)) : config?.ca;
  const ca = caFile ? await readFile(caFile).catch((err: NodeJS.ErrnoException) => {
    throw new CliError(ExitCode.CONFIG, `cannot read CA certificate ${caFile}: ${err.code ?? err.message}`);
  }) : undefined;
  return { target: { url: server, fingerprint, ca }, config };
}

async function init(args: Args, rt: Runtime): Promise<number> {
  if (args.server === undefined || args.fingerprint === undefined) {
    throw new CliError(ExitCode.USAGE, 'memkey-admin init needs --server URL and --fingerprint HEX');
  }
  const file = configPath(args, rt);
  const previous = await readConfigIfAny(file).catch(() => undefined);
  const cfg: AdminConfig = { v: 1, server: String(args.server), fingerprint: normalizeFingerprint(String(args.fingerprint)) };
  if (previous?.keyFile) cfg.keyFile = previous.keyFile;
  if (args.ca !== undefined) cfg.ca = path.resolve(String(args.ca));
  if (args.check !== false) {
    const { target: t } = await target({ ...args, server: cfg.server, fingerprint: cfg.fingerprint }, rt);
    const client = new AdminClient(t);
    try {
      const s = await client.status();
      say(rt, `verified ${cfg.server}: identity fingerprint ${cfg.fingerprint} (state: ${s.state}; accepts key id ${s.keyIds.join(', ')})`);
    } finally {
      client.close();
    }
  }
  await writeAdminConfig(file, cfg);
  say(rt, `wrote ${file} (mode 0600): deliveries go to ${cfg.server}, pinned fingerprint ${cfg.fingerprint}`);
  return ExitCode.OK;
}

async function rememberKeyFile(args: Args, rt: Runtime, keyFile: string): Promise<void> {
  const file = configPath(args, rt);
  const cfg = await readConfigIfAny(file).catch(() => undefined);
  if (cfg && cfg.keyFile !== keyFile) await writeAdminConfig(file, { ...cfg, keyFile });
}

async function keyGenerate(args: Args, rt: Runtime): Promise<number> {
  const out = args.out !== undefined ? path.resolve(String(args.out)) : defaultAdminKeyPath(rt.env);
  await ensureDir(out);
  const key = await generateKeyFile(out);
  try {
    await rememberKeyFile(args, rt, out);
    say(rt, `wrote ${out} (mode 0600), key id ${keyCheckOf(key)}\nkeep a copy somewhere safe: without it the data cannot be decrypted`);
  } finally {
    key.fill(0);
  }
  return ExitCode.OK;
}

async function keyImport(args: Args, rt: Runtime): Promise<number> {
  if (args.file === undefined) throw new CliError(ExitCode.USAGE, 'memkey-admin key import needs --file PATH');
  const src = path.resolve(String(args.file));
  const out = args.out !== undefined ? path.resolve(String(args.out)) : defaultAdminKeyPath(rt.env);
  const key = await new KeyFileSource(src).load({});
  try {
    if (out !== src) {
      await ensureDir(out);
      let handle;
      try {
        handle = await open(out, 'wx', 0o600);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new CliError(ExitCode.KEY_SOURCE, `${out} already exists; refusing to overwrite a key file (use --out)`);
        throw err;
      }
      const text = Buffer.from(encodeKey(key, 'hex') + '\n', 'latin1');
      try {
        await handle.chmod(0o600);
        await handle.writeFile(text);
        await handle.sync();
      } finally {
        text.fill(0);
        await handle.close();
      }
    }
    await rememberKeyFile(args, rt, out);
    say(rt, `imported key id ${keyCheckOf(key)} into ${out} (mode 0600)`);
  } finally {
    key.fill(0);
  }
  return ExitCode.OK;
}

async function keySend(args: Args, rt: Runtime): Promise<number> {
  const { target: t, config } = await target(args, rt);
  const keyFile = args['key-file'] !== undefined ? path.resolve(String(args['key-file'])) : config?.keyFile ?? defaultAdminKeyPath(rt.env);
  const key = await new KeyFileSource(keyFile).load({});
  const client = new AdminClient(t);
  try {
    const r = await client.deliver(key, { skipKeyCheck: args['skip-key-check'] === true });
    say(rt, r.alreadyHeld
      ? `${t.url} already holds key id ${r.keyId} (fingerprint ${r.fingerprint}); nothing changed`
      : `delivered key id ${r.keyId} to ${t.url} (fingerprint ${r.fingerprint}); the server confirmed it holds the key`);
  } finally {
    key.fill(0);
    client.close();
  }
  return ExitCode.OK;
}

async function status(args: Args, rt: Runtime): Promise<number> {
  const { target: t } = await target(args, rt);
  const client = new AdminClient(t);
  try {
    const s = await client.status();
    const lines = [
      `server:      ${t.url}`,
      `fingerprint: ${s.fingerprint} (verified, signed status)`,
      `state:       ${s.state}${s.heldKeyId ? ` (key id ${s.heldKeyId})` : ''}${s.lockedForMs ? ` (${Math.ceil(s.lockedForMs / 1000)} s left)` : ''}`,
      `accepts:     key id ${s.keyIds.join(', ')}`,
      `failures:    ${s.failures} of ${s.maxFailures} before a lockout`,
      `consumers:   ${s.consumers} connected`,
      `clock skew:  ${Math.round((s.time - Date.now()) / 1000)} s`,
    ];
    process.stdout.write(lines.join('\n') + '\n');
  } finally {
    client.close();
  }
  return ExitCode.OK;
}

async function ensureDir(file: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
}
