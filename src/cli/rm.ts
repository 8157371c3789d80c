/** `s3cryptfs rm [-r] s3://BUCKET/KEY...`: delete objects (and, with -r, everything below a directory). */
import type { CliCommand } from './command.js';
import { openBucket, type OpenedBucket } from './bucket.js';
import { CliError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { formatS3Url, parseS3Url } from './s3url.js';
import { say } from './say.js';

const DELETE_BATCH = 1000;

export const rmCommand: CliCommand = {
  command: 'rm <objects..>',
  describe: 'Delete objects (-r: directories and everything below them)',
  builder: (y) =>
    y
      .positional('objects', { type: 'string', array: true, describe: 's3://BUCKET/KEY ...' })
      .option('recursive', { alias: 'r', type: 'boolean', describe: 'Delete directories and their contents' })
      .option('force', { alias: 'f', type: 'boolean', describe: 'Ignore objects that do not exist' })
      .example('$0 rm s3://my-bucket/old.txt', '')
      .example('$0 rm -r s3://my-bucket/tmp/', ''),
  async run(args, rt) {
    const recursive = args.recursive === true;
    for (const arg of args.objects as string[]) {
      const url = parseS3Url(arg, 'object');
      const opened = await openBucket(rt, url, recursive ? 'dir' : 'file');
      const path = opened.path.replace(/\/+$/, '');
      const st = path === '' ? null : await opened.engine.stat(path);
      if (st) {
        await opened.engine.delete(path);
        say(rt, `removed ${arg}`);
        continue;
      }
      const isDir = path === '' || (await opened.engine.dirExists(path));
      if (isDir && !recursive) throw new CliError(ExitCode.USAGE, `${arg} is a directory (use rm -r)`);
      if (!isDir) {
        if (args.force === true) continue;
        throw new CliError(ExitCode.NOT_FOUND, `no such object: ${arg}`);
      }
      const count = await removeTree(opened, path, rt.signal);
      say(rt, `removed ${count} object(s) under ${formatS3Url(opened.bucket, opened.prefix + (path ? path + '/' : ''))}`);
    }
  },
};

async function removeTree(opened: OpenedBucket, dir: string, signal: AbortSignal): Promise<number> {
  const { engine } = opened;
  let removed = 0;
  const markers: string[] = [];
  let batch: string[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const { errors } = await engine.deleteMany(batch);
    if (errors.length) throw new CliError(ExitCode.GENERIC, `could not delete ${errors.length} object(s), first: ${errors[0].path}: ${errors[0].message}`);
    removed += batch.length;
    batch = [];
  };
  for await (const page of engine.listAll(dir, { recursive: true })) {
    if (signal.aborted) throw new CliError(ExitCode.INTERRUPTED, 'interrupted');
    for (const f of page.files) {
      batch.push(f.path);
      if (batch.length >= DELETE_BATCH) await flush();
    }
    markers.push(...page.dirs);
  }
  await flush();
  // Directory markers last, deepest first, then the directory's own marker.
  markers.sort((a, b) => b.length - a.length);
  if (dir !== '') markers.push(dir);
  for (const m of markers) await engine.removeDirMarker(m);
  return removed;
}
