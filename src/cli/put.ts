/** `s3cryptfs put LOCAL s3://BUCKET/KEY`: encrypt and upload one file (or stdin with "-"). */
import type { CliCommand } from './command.js';
import { openBucket } from './bucket.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { createProgress } from './progress.js';
import { formatS3Url, parseS3Url } from './s3url.js';
import { say } from './say.js';
import { isStdio } from './stdio.js';
import { openLocalInput, upload } from './transfer.js';

export const putCommand: CliCommand = {
  command: 'put <local> <dest>',
  describe: 'Encrypt and upload a file ("-" reads stdin)',
  builder: (y) =>
    y
      .positional('local', { type: 'string', describe: 'Local file, or - for stdin' })
      .positional('dest', { type: 'string', describe: 's3://BUCKET/KEY (a trailing / appends the file name)' })
      .example('$0 put report.pdf s3://my-bucket/docs/', 'upload as docs/report.pdf')
      .example('tar c dir | $0 put - s3://my-bucket/backup.tar', 'upload from stdin'),
  async run(args, rt) {
    const local = isStdio(args.local) ? '-' : (args.local as string);
    const url = parseS3Url(args.dest as string, 'destination');
    if (url.key === '' || url.key.endsWith('/')) {
      if (local === '-') throw new CliError(ExitCode.USAGE, 'put from stdin needs a full object name: s3://BUCKET/KEY');
    }
    const input = await openLocalInput(local);
    const key = url.key === '' || url.key.endsWith('/') ? url.key + input.name : url.key;
    try {
      const opened = await openBucket(rt, { bucket: url.bucket, key }, 'file');
      const writer = opened.engine.createWriter(opened.path);
      const progress = createProgress(`put ${input.name}`, input.size, rt.progress);
      const { size } = await upload(input.stream, writer, progress, rt.signal);
      say(rt, `${local} -> ${formatS3Url(url.bucket, key)} (${size} bytes)`);
    } finally {
      if (input.stream !== process.stdin) input.stream.destroy();
    }
  },
};
