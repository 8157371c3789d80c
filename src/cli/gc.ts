/**
 * `s3cryptfs gc s3://BUCKET[/PREFIX] [--older-than 24h]`: abort multipart uploads that crashed
 * writers (or an interrupted rotation) left behind, and report what was reclaimed. Needs no key.
 */
import { formatDuration, gcUploads, parseDuration } from '../ops/gc.js';
import type { CliCommand } from './command.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { formatDate, writeOut } from './output.js';
import { formatS3Url, parseS3Url } from './s3url.js';
import { say } from './say.js';

const DEFAULT_OLDER_THAN = '24h';

export const gcCommand: CliCommand = {
  command: 'gc <location>',
  describe: 'Abort stale multipart uploads left by crashed writers; report what was reclaimed',
  builder: (y) =>
    y
      .positional('location', { type: 'string', describe: 's3://BUCKET[/PREFIX]' })
      .options({
        'older-than': { type: 'string', requiresArg: true, describe: `Only uploads started longer ago than this (90s, 30m, 24h, 7d) [default: ${DEFAULT_OLDER_THAN}]` },
        'dry-run': { type: 'boolean', describe: 'List what would be aborted; abort nothing' },
      })
      .example('$0 gc s3://my-bucket', 'abort uploads older than a day')
      .example('$0 gc --older-than 2h --dry-run s3://my-bucket/vault', 'what would go'),
  async run(args, rt) {
    const url = parseS3Url(args.location as string);
    const prefix = url.key === '' ? '' : url.key;
    const olderThanText = String(args['older-than'] ?? DEFAULT_OLDER_THAN);
    const olderThanMs = parseDuration(olderThanText);
    if (!Number.isFinite(olderThanMs)) throw new CliError(ExitCode.USAGE, `--older-than: expected a duration such as 90s, 30m, 24h or 7d, got "${olderThanText}"`);
    const dryRun = args['dry-run'] === true;
    const result = await gcUploads({ store: rt.store(), bucket: url.bucket, prefix, olderThanMs, dryRun });
    for (const u of result.reclaimed) {
      await writeOut(`${dryRun ? 'would abort' : 'aborted'} ${formatS3Url(url.bucket, u.key)} upload ${u.uploadId} (started ${formatDate(u.initiated)}, ${formatDuration(u.ageMs)} ago)\n`);
    }
    for (const e of result.errors) await writeOut(`FAILED ${formatS3Url(url.bucket, e.key)} upload ${e.uploadId}: ${e.message}\n`);
    say(rt, `${dryRun ? 'would reclaim' : 'reclaimed'} ${result.reclaimed.length} of ${result.found} multipart upload(s) under ` +
      `${formatS3Url(url.bucket, prefix)} older than ${olderThanText}; ` +
      `${result.kept.length} younger kept${result.errors.length ? `; ${result.errors.length} failed` : ''}`);
    return result.errors.length ? ExitCode.GENERIC : ExitCode.OK;
  },
};
