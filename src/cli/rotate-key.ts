/**
 * `s3cryptfs rotate-key s3://BUCKET[/PREFIX] --new-key-file NEW`: move every object of a store from
 * the current master key (the usual key options) to a new one by re-wrapping data keys (src/ops/rotate.ts).
 * Resumable: run the same command again after an interruption.
 */
import { EngineError } from '../engine/index.js';
import { normalizePrefix } from '../engine/paths.js';
import { createKeySource, loadKeys, newScryptParams, PassphraseFileSource, wipeKeys } from '../keys/index.js';
import { createCountProgress } from '../ops/progress.js';
import { DEFAULT_COPY_PART_SIZE, DEFAULT_REWRITE_BELOW, readConfig, rotateKeys, RotationError } from '../ops/rotate.js';
import { readBucketConfig } from './bucket.js';
import type { Args, CliCommand } from './command.js';
import { parseSize } from './config.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { humanSize, writeOut } from './output.js';
import { formatS3Url, parseS3Url } from './s3url.js';
import { say } from './say.js';

const GROUP = 'Rotation options:';

export const rotateKeyCommand: CliCommand = {
  command: 'rotate-key <location>',
  describe: 'Move every object of a store to a new master key (re-wraps data keys; resumable)',
  builder: (y) =>
    y
      .positional('location', { type: 'string', describe: 's3://BUCKET[/PREFIX]: the store (where its .s3cryptfs.json is)' })
      .options({
        'new-key-file': { type: 'string', group: GROUP, requiresArg: true, describe: 'The new master key file (s3cryptfs keygen)' },
        'new-passphrase-file': { type: 'string', group: GROUP, requiresArg: true, describe: 'A file holding the new passphrase (uses the store\'s scrypt salt)' },
        'dry-run': { type: 'boolean', group: GROUP, describe: 'Report what would be rotated and the traffic it would take; change nothing' },
        'rewrite-below': { type: 'string', group: GROUP, requiresArg: true, describe: `Objects up to this size are downloaded and rewritten whole; larger ones are rebuilt by server-side copy [default: ${humanSize(DEFAULT_REWRITE_BELOW)}]` },
        'copy-part-size': { type: 'string', group: GROUP, requiresArg: true, describe: `Part size of server-side copies, 5M..5G [default: ${humanSize(DEFAULT_COPY_PART_SIZE)}]` },
        limit: { type: 'number', group: GROUP, requiresArg: true, hidden: true, describe: 'Stop after rotating this many objects (testing)' },
      })
      .example('$0 rotate-key s3://my-bucket --key-file old.key --new-key-file new.key --dry-run', 'what would be done')
      .example('$0 rotate-key s3://my-bucket --key-file old.key --new-key-file new.key', 'rotate (run again to resume)'),
  async run(args, rt) {
    if (!args['new-key-file'] === !args['new-passphrase-file']) {
      throw new CliError(ExitCode.USAGE, 'give the new key: exactly one of --new-key-file and --new-passphrase-file');
    }
    const url = parseS3Url(args.location as string);
    const prefix = normalizePrefix(url.key);
    const store = rt.store();
    const where = formatS3Url(url.bucket, prefix);
    if (!(await readBucketConfig(store, url.bucket, prefix))) {
      throw new EngineError('NOT_INITIALIZED', `no s3cryptfs store at ${where}: give the store's own location (where its .s3cryptfs.json is)`);
    }
    const config = await readConfig(store, url.bucket, prefix);

    const newSource = createKeySource({
      keyFile: args['new-key-file'] as string | undefined,
      passphraseFile: args['new-passphrase-file'] as string | undefined,
      env: rt.env,
    });
    const newKdf = newSource instanceof PassphraseFileSource ? (config.kdf ?? newScryptParams()) : undefined;
    const { keys: newKeys, keyId: newId } = await loadKeys(newSource, { kdf: newKdf });
    rt.onClose(() => wipeKeys(newKeys));
    const oldSource = rt.keySource();
    const { keys: oldKeys, keyId: oldId } = await loadKeys(oldSource, config);
    rt.onClose(() => wipeKeys(oldKeys));
    if (oldId === newId) throw new CliError(ExitCode.USAGE, `the new key is the current key (key id ${newId})`);
    if (!config.keyIds.includes(oldId) && config.keyIds[0] !== newId) {
      throw new EngineError('WRONG_KEY', `wrong key for ${where}: ${oldSource.describe()} has key id ${oldId}, the store lists ${config.keyIds.join(', ')}`);
    }

    const dryRun = args['dry-run'] === true;
    const progress = createCountProgress(dryRun ? 'checking' : 'rotating', rt.progress);
    let done = 0;
    const lines: Promise<void>[] = [];
    try {
      const result = await rotateKeys({
        store, bucket: url.bucket, prefix, oldKeys: [oldKeys, ...(await rt.readKeys())], newKeys, newKdf, dryRun,
        concurrency: rt.concurrency,
        rewriteBelow: sizeOption(args, 'rewrite-below'),
        copyPartSize: sizeOption(args, 'copy-part-size'),
        limit: typeof args.limit === 'number' ? args.limit : undefined,
        signal: rt.signal,
        onEvent: (e) => {
          if (e.type === 'begin') {
            for (const p of e.nested) process.stderr.write(`s3cryptfs: skipping nested store s3://${url.bucket}/${p} (rotate it separately)\n`);
            if (e.resumed && !dryRun) rt.log.debug({ keyId: newId }, 'resuming rotation');
            progress.setTotal(e.total);
          } else if (e.type === 'catch-up') {
            progress.setTotal(done + e.extra);
          } else if (e.type === 'failure') {
            lines.push(writeOut(`FAILED s3://${url.bucket}/${e.key}: ${e.message}\n`));
            progress.update(++done);
          } else {
            progress.update(++done);
          }
        },
      });
      progress.stop();
      await Promise.all(lines);
      const moved = result.rewritten + result.rebuilt;
      const traffic = store.stats.bytesSent + store.stats.bytesReceived;
      if (dryRun) {
        say(rt, `dry run: ${moved} of ${result.total} object(s) (${humanSize(result.objectBytes)}) would move to key ${newId}: ` +
          `${result.rewritten} rewritten whole, ${result.rebuilt} rebuilt by server-side copy; about ${humanSize(result.plannedTransfer)} of traffic; ` +
          `${result.already} already under it; ${result.failures.length} failed`);
      } else {
        say(rt, `rotated ${moved} of ${result.total} object(s) (${humanSize(result.objectBytes)}) to key ${newId}: ` +
          `${result.rewritten} rewritten whole, ${result.rebuilt} rebuilt by server-side copy, ${result.already} already done; ` +
          `${result.failures.length} failed; traffic ${humanSize(traffic)} (sent ${humanSize(store.stats.bytesSent)}, received ${humanSize(store.stats.bytesReceived)})`);
        say(rt, result.finished
          ? `rotation complete: ${where} lists key ${newId} only; the old key no longer opens it`
          : `rotation not complete: ${where} lists keys ${[newId, ...config.keyIds.filter((k) => k !== newId)].join(', ')}; run the command again to finish`);
      }
      if (result.failures.length > 0) return ExitCode.INTEGRITY;
      return ExitCode.OK;
    } catch (err) {
      progress.stop();
      if (err instanceof RotationError) throw new EngineError(err.code, err.message);
      if (err instanceof RangeError) throw new CliError(ExitCode.USAGE, err.message);
      throw err;
    }
  },
};

function sizeOption(args: Args, name: string): number | undefined {
  const v = args[name];
  if (v === undefined) return undefined;
  const n = parseSize(String(v));
  if (!Number.isSafeInteger(n) || n <= 0) throw new CliError(ExitCode.USAGE, `--${name}: expected a size (e.g. 64M), got "${String(v)}"`);
  return n;
}
