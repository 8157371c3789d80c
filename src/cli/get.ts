/** `s3cryptfs get s3://BUCKET/KEY LOCAL`: download, authenticate and decrypt one object ("-" writes stdout). */
import path from 'node:path';
import type { CliCommand } from './command.js';
import { openBucket } from './bucket.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { createProgress } from './progress.js';
import { parseS3Url } from './s3url.js';
import { say } from './say.js';
import { isStdio } from './stdio.js';
import { inContext, resolveLocalDest, toFile, toStdout } from './transfer.js';

export const getCommand: CliCommand = {
  command: 'get <src> [local]',
  describe: 'Download and decrypt an object ("-" writes stdout)',
  builder: (y) =>
    y
      .positional('src', { type: 'string', describe: 's3://BUCKET/KEY' })
      .positional('local', { type: 'string', describe: 'Local file or directory, or - for stdout [default: ./NAME]' })
      .example('$0 get s3://my-bucket/docs/report.pdf .', 'download into the current directory')
      .example('$0 get s3://my-bucket/backup.tar - | tar x', 'stream to stdout'),
  async run(args, rt) {
    const url = parseS3Url(args.src as string, 'source');
    if (url.key === '' || url.key.endsWith('/')) throw new CliError(ExitCode.USAGE, `${args.src as string} names a directory, not an object`);
    const opened = await openBucket(rt, url, 'file');
    const name = path.posix.basename(url.key);
    const local = isStdio(args.local) ? '-' : ((args.local as string | undefined) ?? name);
    // The size is only needed for the progress bar; skip the HEAD when no bar can be shown.
    let total: number | undefined;
    if (rt.progress && process.stderr.isTTY) {
      const st = await opened.engine.stat(opened.path);
      if (!st) throw new CliError(ExitCode.NOT_FOUND, `no such object: ${args.src as string}`);
      total = st.size;
    }
    const progress = createProgress(`get ${name}`, total, rt.progress);
    // The stream is opened only once a consumer is ready: an error it emits meanwhile would go unhandled.
    if (local === '-') {
      await inContext(args.src as string, toStdout(opened.engine.readStream(opened.path), progress, rt.signal));
      return;
    }
    const dest = await resolveLocalDest(local, name);
    const bytes = await inContext(args.src as string, toFile(opened.engine.readStream(opened.path), dest, progress, rt.signal));
    say(rt, `${args.src as string} -> ${dest} (${bytes} bytes)`);
  },
};
