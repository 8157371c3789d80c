/**
 * `s3cryptfs mount s3://BUCKET[/PREFIX] MOUNTPOINT`: the bucket as a directory (FUSE). Runs in the
 * foreground until SIGINT/SIGTERM or an external unmount; pending uploads are flushed first.
 * `--daemon` detaches once the mount is ready (or reports why it could not mount).
 */
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { loadBinding, BINDING_NAMES, DEFAULT_BINDING, MountError, type MountHandle } from '../../native-bindings/index.js';
import { DEFAULT_PART_SIZE, Engine, EngineError, type EngineWarning } from '../engine/index.js';
import { EncryptedFileSystem } from '../fs/filesystem.js';
import { DEFAULT_ATTR_TTL_MS, DEFAULT_DIR_TTL_MS, DEFAULT_NEGATIVE_TTL_MS, type FsOptions } from '../fs/types.js';
import { loadKeys } from '../keys/index.js';
import { startMountOps, type MountOps } from '../ops/mount-ops.js';
import { startGcValve } from '../engine/gc-valve.js';
import { daemonKeySource, MEMKEY_LISTEN_OPTIONS } from '../memkey/cli-support.js';
import { candidatePrefixes, openReadKeys, readBucketConfig } from './bucket.js';
import type { Args, CliCommand } from './command.js';
import { parseSize } from './config.js';
import { awsCseOptions } from './options.js';
import { CliError } from './errors.js';
import { classifyError, ExitCode } from './exit-codes.js';
import type { Runtime } from './runtime.js';
import { formatS3Url, parseS3Url } from './s3url.js';

const DEFAULT_UNMOUNT_TIMEOUT_S = 60;
/** Default --upload-memory: 3 parts of 8 MiB (2 in flight), docs/semantics.md "Reads, readahead and memory". */
export const DEFAULT_UPLOAD_MEMORY = 24 * 1024 * 1024;
/**
 * Default --cache-size of a mount (the engine's own default is 32 MiB): the kernel's page cache
 * keeps what was read, and sequential readers release what they consumed, so 16 MiB (an 8 MiB
 * readahead window plus random reads' chunks) keeps the daemon's peak RSS lower at no read speed.
 */
export const DEFAULT_MOUNT_CACHE = 16 * 1024 * 1024;

/**
 * The mount's upload memory budget: a file being written holds the part it fills plus the parts in
 * flight, and the pool of finished part buffers (kept for the next big file) holds at most as much.
 * At least 2 parts, so one part can upload while the next fills.
 */
export function uploadBudget(bytes: number, partSize: number): { uploadConcurrency: number; partPoolBytes: number } {
  const parts = Math.max(2, Math.floor(bytes / partSize));
  return { uploadConcurrency: parts - 1, partPoolBytes: parts * partSize };
}
const MOUNT_GROUP = 'Mount options:';

export const mountCommand: CliCommand = {
  command: 'mount <location> <mountpoint>',
  describe: 'Mount an encrypted bucket (prefix) as a directory (FUSE)',
  builder: (y) =>
    y
      .positional('location', { type: 'string', describe: 's3://BUCKET[/PREFIX] (an initialised store)' })
      .positional('mountpoint', { type: 'string', describe: 'Existing directory to mount on' })
      .options({
        daemon: { type: 'boolean', group: MOUNT_GROUP, describe: 'Run in the background once the mount is ready' },
        'log-file': { type: 'string', group: MOUNT_GROUP, requiresArg: true, describe: 'With --daemon: append messages here [default: discard]' },
        'read-only': { type: 'boolean', group: MOUNT_GROUP, describe: 'Mount read-only' },
        'allow-other': { type: 'boolean', group: MOUNT_GROUP, describe: 'Let other users access the mount (non-root: needs user_allow_other in /etc/fuse.conf); enables permission checks' },
        uid: { type: 'number', group: MOUNT_GROUP, requiresArg: true, describe: 'Owner reported for every file [default: stored owner, else yours]' },
        gid: { type: 'number', group: MOUNT_GROUP, requiresArg: true, describe: 'Group reported for every file [default: stored group, else yours]' },
        umask: { type: 'string', group: MOUNT_GROUP, requiresArg: true, describe: 'Octal mask applied to reported permissions, e.g. 022 [default: none]' },
        'attr-ttl': { type: 'number', group: MOUNT_GROUP, requiresArg: true, describe: `Seconds file attributes are cached [default: ${DEFAULT_ATTR_TTL_MS / 1000}]` },
        'dir-ttl': { type: 'number', group: MOUNT_GROUP, requiresArg: true, describe: `Seconds directory listings are cached [default: ${DEFAULT_DIR_TTL_MS / 1000}]` },
        'negative-ttl': { type: 'number', group: MOUNT_GROUP, requiresArg: true, describe: `Seconds "no such file" answers are cached [default: ${DEFAULT_NEGATIVE_TTL_MS / 1000}]` },
        'upload-memory': { type: 'string', group: MOUNT_GROUP, requiresArg: true, describe: `Ciphertext buffered per file being uploaded (the part being filled and those in flight, 8 MiB each, at least 2); also the most kept for reuse [default: ${DEFAULT_UPLOAD_MEMORY / 2 ** 20}M]` },
        'cache-size': { type: 'string', group: MOUNT_GROUP, requiresArg: true, describe: 'Decrypted chunk cache shared by all readers, e.g. 256M [default: 16M]' },
        'spool-dir': { type: 'string', group: MOUNT_GROUP, requiresArg: true, describe: 'Directory for the (encrypted) spool files of files being modified [default: $TMPDIR]' },
        'unmount-timeout': { type: 'number', group: MOUNT_GROUP, requiresArg: true, describe: `Seconds to wait at unmount for files still open for writing [default: ${DEFAULT_UNMOUNT_TIMEOUT_S}]` },
        fuse: { type: 'string', group: MOUNT_GROUP, choices: [...BINDING_NAMES], requiresArg: true, describe: `FUSE binding [default: ${DEFAULT_BINDING}, else fuse-native when it cannot mount here]` },
        'writeback-cache': { type: 'boolean', group: MOUNT_GROUP, describe: 'Let the kernel cache and batch writes (fuse3 only; the kernel owns an open file\'s mtime and size: see docs/semantics.md) [default: off]' },
        'admin-listen': { type: 'string', group: MOUNT_GROUP, requiresArg: true, describe: 'Serve Prometheus /metrics and a live dashboard on HOST:PORT (e.g. 127.0.0.1:9464) [default: off]' },
        'control-socket': { type: 'string', group: MOUNT_GROUP, requiresArg: true, describe: 'Unix socket `s3cryptfs status` asks; "" disables it [default: $XDG_RUNTIME_DIR/s3cryptfs/<mount point>.sock]' },
        'fuse-debug': { type: 'boolean', group: MOUNT_GROUP, hidden: true, describe: 'Print every FUSE request' },
        ...MEMKEY_LISTEN_OPTIONS,
      })
      .example('$0 mount s3://my-bucket ~/vault', 'mount in the foreground (Ctrl-C unmounts)')
      .example('$0 mount --daemon s3://my-bucket/team ~/team', 'mount in the background; `fusermount -u ~/team` unmounts'),
  async run(args, rt) {
    if (args.daemon === true && process.env.S3CRYPTFS_MOUNT_CHILD !== '1') return daemonize(args);
    const child = process.env.S3CRYPTFS_MOUNT_CHILD === '1' && typeof process.send === 'function';
    try {
      return await mountForeground(args, rt, child);
    } catch (err) {
      if (child) await notifyParent({ type: 'error', ...classifyError(err) });
      throw err;
    }
  },
};

type ParentMessage = { type: 'ready'; mountpoint: string; pid: number } | { type: 'error'; exitCode: number; message: string };

function notifyParent(msg: ParentMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send) return resolve();
    process.send(msg, undefined, {}, () => resolve());
  });
}

function secondsOption(args: Args, name: string): number | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new CliError(ExitCode.USAGE, `--${name} must be a number of seconds >= 0`);
  return Math.round(v * 1000);
}

function idOption(args: Args, name: string): number | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xfffffffe) throw new CliError(ExitCode.USAGE, `--${name} must be a numeric id`);
  return v;
}

function fsOptions(args: Args): FsOptions {
  let umask: number | undefined;
  if (args.umask !== undefined) {
    const text = String(args.umask);
    if (!/^[0-7]{1,4}$/.test(text)) throw new CliError(ExitCode.USAGE, `--umask must be octal (e.g. 022), got "${text}"`);
    umask = parseInt(text, 8);
  }
  return {
    readOnly: args['read-only'] === true,
    uid: idOption(args, 'uid'),
    gid: idOption(args, 'gid'),
    umask,
    attrTtlMs: secondsOption(args, 'attr-ttl'),
    dirTtlMs: secondsOption(args, 'dir-ttl'),
    negativeTtlMs: secondsOption(args, 'negative-ttl'),
    spoolDir: args['spool-dir'] === undefined ? undefined : path.resolve(String(args['spool-dir'])),
  };
}

/** Config lookup and key check as the other commands do it, with the mount's engine options. */
async function openEngine(rt: Runtime, bucket: string, key: string, cacheBytes: number | undefined, uploadMemory: number): Promise<{ engine: Engine; prefix: string; path: string }> {
  const store = rt.store();
  const candidates = candidatePrefixes(key.endsWith('/') || key === '' ? key : key + '/', 'dir');
  const configs = await Promise.all(candidates.map((p) => readBucketConfig(store, bucket, p)));
  let i = candidates.length - 1;
  while (i >= 0 && !configs[i]) i--;
  if (i < 0) {
    throw new EngineError('NOT_INITIALIZED', `no s3cryptfs store at ${formatS3Url(bucket, key)} (run \`s3cryptfs init s3://${bucket}[/PREFIX]\` first)`);
  }
  const prefix = candidates[i];
  const config = configs[i]!;
  const source = daemonKeySource(rt, config.keyIds);
  const { keys, keyId } = await loadKeys(source, config);
  if (!config.keyIds.includes(keyId)) {
    throw new EngineError('WRONG_KEY', `wrong key for ${formatS3Url(bucket, prefix)}: ${source.describe()} has key id ${keyId}, the bucket expects ${config.keyIds.join(' or ')}`);
  }
  const readKeys = await openReadKeys(rt, config, formatS3Url(bucket, prefix));
  const engine = await Engine.open({
    store, bucket, prefix, keys, readKeys, config, cacheBytes, ...uploadBudget(uploadMemory, DEFAULT_PART_SIZE), awsCse: await awsCseOptions(rt),
    onWarning: (w: EngineWarning) => rt.log.debug({ warning: w.code, key: w.key }, w.message),
  });
  const rest = (key.endsWith('/') || key === '' ? key : key + '/').slice(prefix.length).replace(/\/+$/, '');
  return { engine, prefix, path: rest };
}

function stamp(line: string): void {
  process.stderr.write(`${new Date().toISOString()} s3cryptfs: ${line}\n`);
}

async function mountForeground(args: Args, rt: Runtime, child: boolean): Promise<number> {
  const url = parseS3Url(String(args.location), 'location');
  const mnt = path.resolve(String(args.mountpoint));
  const opts = fsOptions(args);
  let cacheBytes = DEFAULT_MOUNT_CACHE;
  if (args['cache-size'] !== undefined) {
    cacheBytes = parseSize(String(args['cache-size']));
    if (!Number.isSafeInteger(cacheBytes) || cacheBytes < 0) throw new CliError(ExitCode.USAGE, `--cache-size: expected a size (e.g. 256M), got "${String(args['cache-size'])}"`);
  }
  let uploadMemory = DEFAULT_UPLOAD_MEMORY;
  if (args['upload-memory'] !== undefined) {
    uploadMemory = parseSize(String(args['upload-memory']));
    if (!Number.isSafeInteger(uploadMemory) || uploadMemory < 0) throw new CliError(ExitCode.USAGE, `--upload-memory: expected a size (e.g. 32M), got "${String(args['upload-memory'])}"`);
  }
  const unmountTimeoutMs = secondsOption(args, 'unmount-timeout') ?? DEFAULT_UNMOUNT_TIMEOUT_S * 1000;

  // Fail fast, before any network traffic, when this machine cannot mount at all.
  const binding = await loadBinding(args.fuse === undefined ? undefined : String(args.fuse));
  const reason = await binding.unavailableReason();
  if (reason) throw new CliError(ExitCode.FUSE_UNAVAILABLE, `FUSE is not available: ${reason}`);
  if (args['writeback-cache'] === true && binding.name !== 'fuse3') throw new CliError(ExitCode.USAGE, `--writeback-cache needs the fuse3 binding (this mount uses ${binding.name})`);
  const { checkMountpoint } = await import('../../native-bindings/fuse-native/index.js');
  await checkMountpoint(mnt).catch(mountErrorToCli);

  const { engine, prefix, path: subdir } = await openEngine(rt, url.bucket, url.key, cacheBytes, uploadMemory);
  if (subdir !== '') {
    throw new CliError(ExitCode.USAGE, `${formatS3Url(url.bucket, url.key)} is a directory inside the store ${formatS3Url(url.bucket, prefix)}: mount the store itself (mounting a subdirectory is not supported yet)`);
  }
  // Metrics/dashboard, the control socket of `s3cryptfs status`, log lines without plaintext names.
  const ops = await startMountOps({ engine, store: rt.store(), mountpoint: mnt, source: formatS3Url(url.bucket, prefix), adminListen: args['admin-listen'] as string | undefined, controlSocket: args['control-socket'] as string | undefined, cacheCapacity: cacheBytes, log: rt.log });
  rt.onClose(() => ops.close());
  // Bounds the garbage the launcher's large initial old generation lets V8 keep (engine/gc-valve.ts).
  const gcValve = startGcValve(engine.stats, { afterGc: binding.releaseFreeMemory?.bind(binding) });
  rt.onClose(() => gcValve?.stop());
  const fs = await EncryptedFileSystem.create(engine, {
    ...opts,
    onError: (op, p, err) => {
      ops.recordError(op, p, err);
      stamp(`${op} ${ops.logPath(p)}: ${ops.logMessage(p, err instanceof Error ? err.message : String(err))}`);
    },
  });
  let handle: MountHandle;
  try {
    handle = await binding.mount(mnt, fs, {
      allowOther: args['allow-other'] === true,
      readOnly: opts.readOnly,
      fsName: formatS3Url(url.bucket, prefix),
      debug: args['fuse-debug'] === true,
      writeback: args['writeback-cache'] === true,
    });
  } catch (err) {
    await fs.close();
    return mountErrorToCli(err);
  }

  const where = formatS3Url(url.bucket, prefix);
  if (child) {
    await notifyParent({ type: 'ready', mountpoint: mnt, pid: process.pid });
    process.disconnect?.();
  } else if (args.quiet !== true) {
    process.stdout.write(`mounted ${where} at ${mnt} (Ctrl-C or \`fusermount -u ${mnt}\` to unmount)\n`);
  }

  const why = await waitForShutdown(rt.signal, mnt);
  return shutdown(fs, handle, why, unmountTimeoutMs, ops);
}

function mountErrorToCli(err: unknown): never {
  if (err instanceof MountError) {
    throw new CliError(err.code === 'FUSE_UNAVAILABLE' ? ExitCode.FUSE_UNAVAILABLE : ExitCode.GENERIC, err.message);
  }
  throw err;
}

/** Resolves on SIGINT/SIGTERM ('signal') or when the mount disappears ('unmounted', e.g. fusermount -u). */
function waitForShutdown(signal: AbortSignal, mnt: string): Promise<'signal' | 'unmounted'> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      void isMounted(mnt).then((mounted) => {
        if (!mounted) finish('unmounted');
      });
    }, 1000);
    const onAbort = () => finish('signal');
    function finish(why: 'signal' | 'unmounted') {
      clearInterval(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(why);
    }
    if (signal.aborted) return finish('signal');
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function isMounted(mnt: string): Promise<boolean> {
  try {
    const info = await readFile('/proc/self/mountinfo', 'utf8');
    const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    return info.split('\n').some((line) => unescape(line.split(' ')[4] ?? '') === mnt);
  } catch {
    return true;
  }
}

/**
 * Unmount order: store what is pending; unmount (plain, or lazily when files are still open, then
 * wait for writers to close them); store anything left. Files still open for writing when the
 * timeout runs out are not uploaded half-written: their writers get errors and we say which.
 */
async function shutdown(fs: EncryptedFileSystem, handle: MountHandle, why: 'signal' | 'unmounted', timeoutMs: number, names: Pick<MountOps, 'logPath' | 'logMessage'>): Promise<number> {
  let code: number = ExitCode.OK;
  // Paths go through logPath(): with encrypted names a log line never holds a plaintext name.
  const report = (failures: { path: string; error: unknown }[]) => {
    for (const f of failures) {
      stamp(`could not store ${names.logPath(f.path)}: ${names.logMessage(f.path, f.error instanceof Error ? f.error.message : String(f.error))}`);
      code = ExitCode.GENERIC;
    }
  };
  report(await fs.flushAll({ skipOpenForWriting: true }));
  if (why === 'signal') {
    try {
      await handle.unmount();
    } catch {
      const open = fs.writablePaths();
      stamp(`${handle.mountpoint} is busy${open.length ? ` (${open.length} file(s) open for writing)` : ''}: detaching it and waiting up to ${Math.round(timeoutMs / 1000)} s for open files to be closed`);
      await handle.unmount({ lazy: true }).catch((err: unknown) => stamp(`lazy unmount failed: ${(err as Error).message}`));
    }
  }
  // Detached (by us, or externally, possibly lazily): writers may still hold files open.
  const connected = handle.connected?.bind(handle);
  const left = await fs.drain(timeoutMs, { gone: connected ? async () => !(await connected()) : undefined });
  if (left.length) {
    stamp(`giving up on ${left.length} file(s) still open for writing; their unsaved changes are discarded: ${left.map((p) => names.logPath(p)).join(', ')}`);
    await fs.abortWrites();
    code = ExitCode.GENERIC;
  }
  report(await fs.close());
  return code;
}

/** Parent side of --daemon: start the mount in a detached child, wait until it is ready or failed. */
async function daemonize(args: Args): Promise<number> {
  const argv = process.argv.slice(2).filter((a) => a !== '--daemon' && a !== '--daemon=true');
  const logFile = args['log-file'] === undefined ? undefined : path.resolve(String(args['log-file']));
  const out = logFile ? openSync(logFile, 'a', 0o600) : 'ignore';
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], ...argv], {
    detached: true,
    stdio: ['ignore', out, out, 'ipc'],
    env: { ...process.env, S3CRYPTFS_MOUNT_CHILD: '1' },
  });
  return new Promise<number>((resolve) => {
    let settled = false;
    const settle = (code: number) => {
      if (settled) return;
      settled = true;
      child.removeAllListeners();
      if (child.connected) child.disconnect();
      child.unref();
      resolve(code);
    };
    child.on('message', (msg: ParentMessage) => {
      if (msg.type === 'ready') {
        if (args.quiet !== true) process.stdout.write(`mounted ${String(args.location)} at ${msg.mountpoint} (daemon pid ${msg.pid}; \`fusermount -u ${msg.mountpoint}\` to unmount)\n`);
        settle(ExitCode.OK);
      } else {
        process.stderr.write(`s3cryptfs: ${msg.message}\n`);
        settle(msg.exitCode);
      }
    });
    child.on('error', (err) => {
      process.stderr.write(`s3cryptfs: cannot start the mount daemon: ${err.message}\n`);
      settle(ExitCode.GENERIC);
    });
    child.on('exit', (code, signal) => {
      if (!settled) process.stderr.write(`s3cryptfs: the mount daemon exited before the mount was ready (${signal ?? `exit code ${code}`})${logFile ? `; see ${logFile}` : ''}\n`);
      settle(code ?? ExitCode.GENERIC);
    });
  });
}
