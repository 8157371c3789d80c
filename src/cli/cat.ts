/** `s3cryptfs cat s3://BUCKET/KEY...`: decrypt objects to stdout. */
import type { CliCommand } from './command.js';
import { openBucket } from './bucket.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { createProgress } from './progress.js';
import { parseS3Url } from './s3url.js';
import { inContext, toStdout } from './transfer.js';

export const catCommand: CliCommand = {
  command: 'cat <objects..>',
  describe: 'Decrypt objects to stdout',
  builder: (y) =>
    y
      .positional('objects', { type: 'string', array: true, describe: 's3://BUCKET/KEY ...' })
      .example('$0 cat s3://my-bucket/notes.txt', ''),
  async run(args, rt) {
    for (const arg of args.objects as string[]) {
      const url = parseS3Url(arg, 'object');
      if (url.key === '' || url.key.endsWith('/')) throw new CliError(ExitCode.USAGE, `${arg} names a directory, not an object`);
      const opened = await openBucket(rt, url, 'file');
      await inContext(arg, toStdout(opened.engine.readStream(opened.path), createProgress('', undefined, false), rt.signal));
    }
  },
};
